// Twelve programs for the parallel-load tests: each returns 1000 + its
// number and counts its runs in `hits`, every other one tail-calls into an
// empty slot (so each has a miss counter of its own), and the ones whose
// bit is set in `fail_mask` (a constant: .rodata is frozen before programs
// load, so the verifier sees its value) read past the context and are
// refused. Generated shape, written out so that the object is plain C.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 16);
  __type(key, __u32);
  __type(value, __u64);
} hits SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(max_entries, 4);
  __uint(key_size, sizeof(__u32));
  __uint(value_size, sizeof(__u32));
} empty_slots SEC(".maps");

const volatile __u32 fail_mask = 0;  // set by tests before load

static __noinline int count(__u32 k) {
  __u64 *v = bpf_map_lookup_elem(&hits, &k);
  if (v) __sync_fetch_and_add(v, 1);
  return 0;
}

SEC("socket")
int p00(struct __sk_buff *skb) {
  if (fail_mask & (1u << 0)) return *(volatile int *)((char *)skb + 4000);
  count(0);
  bpf_tail_call(skb, &empty_slots, 3);  // always misses
  return 1000;
}

SEC("socket")
int p01(struct __sk_buff *skb) {
  if (fail_mask & (1u << 1)) return *(volatile int *)((char *)skb + 4000);
  count(1);
  return 1001;
}

SEC("socket")
int p02(struct __sk_buff *skb) {
  if (fail_mask & (1u << 2)) return *(volatile int *)((char *)skb + 4000);
  count(2);
  bpf_tail_call(skb, &empty_slots, 3);  // always misses
  return 1002;
}

SEC("socket")
int p03(struct __sk_buff *skb) {
  if (fail_mask & (1u << 3)) return *(volatile int *)((char *)skb + 4000);
  count(3);
  return 1003;
}

SEC("socket")
int p04(struct __sk_buff *skb) {
  if (fail_mask & (1u << 4)) return *(volatile int *)((char *)skb + 4000);
  count(4);
  bpf_tail_call(skb, &empty_slots, 3);  // always misses
  return 1004;
}

SEC("socket")
int p05(struct __sk_buff *skb) {
  if (fail_mask & (1u << 5)) return *(volatile int *)((char *)skb + 4000);
  count(5);
  return 1005;
}

SEC("socket")
int p06(struct __sk_buff *skb) {
  if (fail_mask & (1u << 6)) return *(volatile int *)((char *)skb + 4000);
  count(6);
  bpf_tail_call(skb, &empty_slots, 3);  // always misses
  return 1006;
}

SEC("socket")
int p07(struct __sk_buff *skb) {
  if (fail_mask & (1u << 7)) return *(volatile int *)((char *)skb + 4000);
  count(7);
  return 1007;
}

SEC("socket")
int p08(struct __sk_buff *skb) {
  if (fail_mask & (1u << 8)) return *(volatile int *)((char *)skb + 4000);
  count(8);
  bpf_tail_call(skb, &empty_slots, 3);  // always misses
  return 1008;
}

SEC("socket")
int p09(struct __sk_buff *skb) {
  if (fail_mask & (1u << 9)) return *(volatile int *)((char *)skb + 4000);
  count(9);
  return 1009;
}

SEC("socket")
int p10(struct __sk_buff *skb) {
  if (fail_mask & (1u << 10)) return *(volatile int *)((char *)skb + 4000);
  count(10);
  bpf_tail_call(skb, &empty_slots, 3);  // always misses
  return 1010;
}

SEC("socket")
int p11(struct __sk_buff *skb) {
  if (fail_mask & (1u << 11)) return *(volatile int *)((char *)skb + 4000);
  count(11);
  return 1011;
}

char LICENSE[] SEC("license") = "GPL";
