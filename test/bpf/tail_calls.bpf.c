// The tail-call set behind the lifetime-policy proofs (graph_test.cc): a
// caller that tail-calls jmp_table[0] and falls through to 7 on a miss, a
// target that returns 42, and a program that tail-calls the array it may
// sit in (a cycle). The tests load them with jmp_table replaced by a
// ProgramArray of their own, whose policy is what they test.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, __u32);
} jmp_table SEC(".maps");

SEC("socket")
int target_q(struct __sk_buff *skb) { return 42; }

SEC("socket")
int caller_p(struct __sk_buff *skb) {
  bpf_tail_call(skb, &jmp_table, 0);
  return 7;  // the miss: the array slot is empty, or the kernel cleared it
}

SEC("socket")
int recurse(struct __sk_buff *skb) {
  bpf_tail_call(skb, &jmp_table, 0);
  return 7;  // after 33 nested tail calls into itself, the kernel stops
}

char _license[] SEC("license") = "GPL";
