// BTF-defined maps placed on a NUMA node (map_flags BPF_F_NUMA_NODE).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 8);
  __type(key, __u32);
  __type(value, __u64);
  __uint(map_flags, BPF_F_NUMA_NODE);
  __uint(numa_node, 0);
} on_node0 SEC(".maps");

// Node 1: the kernel refuses it where there is no such node.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, __u32);
  __uint(map_flags, BPF_F_NUMA_NODE);
  __uint(numa_node, 1);
} on_node1 SEC(".maps");

SEC("socket")
int count_on_node0(struct __sk_buff *skb) {
  __u32 key = 1;
  __u64 one = 1;
  __u64 *v = bpf_map_lookup_elem(&on_node0, &key);
  if (!v) {
    bpf_map_update_elem(&on_node0, &key, &one, BPF_NOEXIST);
    return 1;
  }
  return ++*v;
}

char _license[] SEC("license") = "GPL";
