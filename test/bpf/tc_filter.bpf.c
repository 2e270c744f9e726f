// A cls_bpf filter in direct-action mode (tc_filter_test.cc): counts the
// packets it sees and drops them while state[0] is 1.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, __u64);
} tc_state SEC(".maps");  // [0]: drop?  [1]: packets seen

SEC("tc")
int tc_count(struct __sk_buff *skb) {
  __u32 drop_key = 0, seen_key = 1;
  __u64 *seen = bpf_map_lookup_elem(&tc_state, &seen_key);
  if (seen) __sync_fetch_and_add(seen, 1);
  __u64 *drop = bpf_map_lookup_elem(&tc_state, &drop_key);
  return drop && *drop ? TC_ACT_SHOT : TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
