// A netfilter hook (6.4) that counts the packets it sees and drops them
// while verdict[0] is 1 (NF_DROP is 0, NF_ACCEPT 1).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, __u64);
} nf_state SEC(".maps");  // [0]: drop?  [1]: packets seen

SEC("netfilter")
int count_and_filter(void *ctx) {
  __u32 drop_key = 0, seen_key = 1;
  __u64 *seen = bpf_map_lookup_elem(&nf_state, &seen_key);
  if (seen) __sync_fetch_and_add(seen, 1);
  __u64 *drop = bpf_map_lookup_elem(&nf_state, &drop_key);
  return drop && *drop ? 0 : 1;
}

char LICENSE[] SEC("license") = "GPL";
