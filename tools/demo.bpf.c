// The demo's tail-call chain: entry -> jmp_table[0] = stage_one ->
// jmp_table[1] = stage_two. Each program returns a number that says how
// far the chain got, so a run shows whether the tail calls still land.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define STAGE_TWO 2
#define MISSED_FIRST 100   // entry's tail call into jmp_table[0] fell through
#define MISSED_SECOND 101  // stage_one's tail call into jmp_table[1] fell through

int stage_one(struct __sk_buff *skb);
int stage_two(struct __sk_buff *skb);

struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(max_entries, 4);
  __uint(key_size, sizeof(__u32));
  __array(values, int(struct __sk_buff *));
} jmp_table SEC(".maps") = {
    .values = {[0] = (void *)&stage_one, [1] = (void *)&stage_two},
};

SEC("socket")
int entry(struct __sk_buff *skb) {
  bpf_tail_call(skb, &jmp_table, 0);
  return MISSED_FIRST;
}

SEC("socket")
int stage_one(struct __sk_buff *skb) {
  bpf_tail_call(skb, &jmp_table, 1);
  return MISSED_SECOND;
}

SEC("socket")
int stage_two(struct __sk_buff *skb) {
  return STAGE_TWO;
}

char LICENSE[] SEC("license") = "GPL";
