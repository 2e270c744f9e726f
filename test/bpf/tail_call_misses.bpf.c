// The tail calls behind test/tail_call_misses_test.cc: one program per
// cause of a miss, a sub-program with its own site, a callee-saved value
// live across a missed call, and a program that tail-calls itself until
// the kernel's 33-call limit stops it. Each bpf_tail_call line carries a
// "SITE:<name>" marker: the test finds the line numbers from them.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, __u32);
} tcm_table SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} tcm_self SEC(".maps");

SEC("socket")
int tcm_target(struct __sk_buff *skb) { return 42; }

// Slot 1 stays empty.
SEC("socket")
int tcm_empty(struct __sk_buff *skb) {
  bpf_tail_call(skb, &tcm_table, 1);  // SITE:empty
  return 7;
}

// tcm_table has 4 slots.
SEC("socket")
int tcm_range(struct __sk_buff *skb) {
  bpf_tail_call(skb, &tcm_table, 9);  // SITE:range
  return 8;
}

// Slot 0 holds tcm_target until the array is cleared.
SEC("socket")
int tcm_hit(struct __sk_buff *skb) {
  bpf_tail_call(skb, &tcm_table, 0);  // SITE:hit
  return 9;
}

// tcm_self[0] holds this program: 33 tail calls succeed, the 34th misses.
SEC("socket")
int tcm_recurse(struct __sk_buff *skb) {
  bpf_tail_call(skb, &tcm_self, 0);  // SITE:recurse
  return 5;
}

static __attribute__((noinline)) int tcm_sub_call(struct __sk_buff *skb) {
  bpf_tail_call(skb, &tcm_table, 2);  // SITE:sub
  return skb->len == 0 ? 1 : 11;
}

// Two calls of the sub-program's site, one site of its own.
SEC("socket")
int tcm_sub(struct __sk_buff *skb) {
  int a = tcm_sub_call(skb);
  int b = tcm_sub_call(skb);
  bpf_tail_call(skb, &tcm_table, 3);  // SITE:main
  return a + b;
}

// A value computed before the call must survive the miss (callee-saved).
SEC("socket")
int tcm_saved(struct __sk_buff *skb) {
  __u32 v = skb->len * 3 + 1;
  bpf_tail_call(skb, &tcm_table, 1);  // SITE:saved
  return v;
}

// No tail call: a collection of only this gets no counters.
SEC("socket")
int tcm_plain(struct __sk_buff *skb) { return 1; }

char _license[] SEC("license") = "GPL";
