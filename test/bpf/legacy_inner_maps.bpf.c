// Legacy "maps" definitions of map-in-map, in both old layouts:
// samples/bpf's 28-byte bpf_map_def names the inner template by index;
// iproute2's 36-byte bpf_elf_map has the inner map name its outer map by
// id (inner_id) and the slot it goes in (inner_idx).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct samples_map_def {
  __u32 type, key_size, value_size, max_entries, map_flags;
  __u32 inner_map_idx, numa_node;
};

struct iproute2_map_def {
  __u32 type, size_key, size_value, max_elem, flags;
  __u32 id, pinning, inner_id, inner_idx;
};

// Index 0: the samples-style template, index 1: its outer map.
struct samples_map_def samples_inner SEC("maps") = {
    .type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 8, .max_entries = 2,
};
struct samples_map_def samples_outer SEC("maps") = {
    .type = BPF_MAP_TYPE_ARRAY_OF_MAPS, .key_size = 4, .value_size = 4, .max_entries = 4,
    .inner_map_idx = 0,
};

// The iproute2 pair: the outer map has id 7; the inner map goes in slot 3.
struct samples_map_def pad SEC("maps") = {  // keeps the two layouts apart
    .type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 4, .max_entries = 1,
};
struct iproute2_map_def ip_outer SEC("maps") = {
    .type = BPF_MAP_TYPE_ARRAY_OF_MAPS, .size_key = 4, .size_value = 4, .max_elem = 4, .id = 7,
};
struct iproute2_map_def ip_inner SEC("maps") = {
    .type = BPF_MAP_TYPE_ARRAY, .size_key = 4, .size_value = 8, .max_elem = 2,
    .inner_id = 7, .inner_idx = 3,
};

// Reads ip_outer[3][0]: the value the test wrote through the inner map.
SEC("socket")
int read_through_outer(struct __sk_buff *skb) {
  __u32 slot = 3, zero = 0;
  void *inner = bpf_map_lookup_elem(&ip_outer, &slot);
  if (!inner) return 1;
  __u64 *v = bpf_map_lookup_elem(inner, &zero);
  return v ? (int)*v : 2;
}

// Uses the samples pair so that its outer map is created with its template.
SEC("socket")
int read_samples(struct __sk_buff *skb) {
  __u32 slot = 0, zero = 0;
  void *inner = bpf_map_lookup_elem(&samples_outer, &slot);
  if (!inner) return 1;
  __u64 *v = bpf_map_lookup_elem(inner, &zero);
  return v ? (int)*v : 2;
}

char _license[] SEC("license") = "GPL";
