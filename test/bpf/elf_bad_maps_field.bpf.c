// A .maps definition with a field no loader knows: must be refused.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __type(key, int);
  __type(value, int);
  __uint(max_entries, 1);
  __uint(frobnicate, 3);
} odd SEC(".maps");

char _license[] SEC("license") = "GPL";
