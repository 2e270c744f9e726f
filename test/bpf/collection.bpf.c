// A small agent for the collection tests: a tail-call chain through a
// statically initialised program array, global data in .rodata, .data and
// .bss, and a map pinned by name.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} shared_counter SEC(".maps");

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

const volatile __u32 stage_two_result = 42;  // rewritten by tests before load
__u64 runs = 0;                              // .data... zero goes to .bss
__u32 seed = 5;                              // .data

static __always_inline void count(void) {
  __u32 key = 0;
  __u64 *v = bpf_map_lookup_elem(&shared_counter, &key);
  if (v) __sync_fetch_and_add(v, 1);
}

SEC("socket")
int entry(struct __sk_buff *skb) {
  count();
  runs++;
  bpf_tail_call(skb, &jmp_table, 0);
  return 100;  // missed the tail call into stage_one
}

SEC("socket")
int stage_one(struct __sk_buff *skb) {
  bpf_tail_call(skb, &jmp_table, 1);
  return 101;  // missed the tail call into stage_two
}

SEC("socket")
int stage_two(struct __sk_buff *skb) {
  return stage_two_result + seed - 5;
}

char LICENSE[] SEC("license") = "GPL";
