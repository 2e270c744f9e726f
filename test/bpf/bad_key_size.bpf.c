// A hash map with key_size 0, used by a program: parses (the sizes are the
// kernel's business), but the load must refuse it with one precise error.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(key_size, 0);
  __uint(value_size, 8);
  __uint(max_entries, 16);
} keyless SEC(".maps");

SEC("socket")
int use_keyless(struct __sk_buff *skb) {
  __u32 key = 0;
  return bpf_map_lookup_elem(&keyless, &key) != 0;
}

char _license[] SEC("license") = "GPL";
