// An object as older toolchains left them (samples/bpf, Suricata, gobpf):
// test/meson.build compiles it without BTF (-g0) and strips the programs'
// function symbols with llvm-objcopy, so each program section is code with
// no function symbol; the section is the program. Every legacy map lives in
// a section of its own, "maps/<name>", and one of them is the inner-map
// template of a map-in-map, named by its index (samples/bpf's inner_map_idx).
// The spare map's symbol is stripped too: its section names it.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// samples/bpf's struct bpf_map_def (28 bytes).
struct bpf_map_def_legacy {
  unsigned int type;
  unsigned int key_size;
  unsigned int value_size;
  unsigned int max_entries;
  unsigned int map_flags;
  unsigned int inner_map_idx;
  unsigned int numa_node;
};

// Legacy index 0.
struct bpf_map_def_legacy SEC("maps/counters") counters = {
    .type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 8, .max_entries = 4,
};
// Legacy index 1: the template of outer's inner maps.
struct bpf_map_def_legacy SEC("maps/inner_template") inner_template = {
    .type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 8, .max_entries = 1,
};
struct bpf_map_def_legacy SEC("maps/outer") outer = {
    .type = BPF_MAP_TYPE_ARRAY_OF_MAPS, .key_size = 4, .value_size = 4, .max_entries = 2,
    .inner_map_idx = 1,
};
// Not referenced by code; its symbol is stripped.
struct bpf_map_def_legacy SEC("maps/spare_map") spare_symbol = {
    .type = BPF_MAP_TYPE_HASH, .key_size = 4, .value_size = 4, .max_entries = 8,
};

// Counts into counters[0] and returns 7, so a test run shows it ran.
SEC("socket1")
int count_packets(struct __sk_buff *skb) {
  __u32 key = 0;
  __u64 *value = bpf_map_lookup_elem(&counters, &key);
  if (value) __sync_fetch_and_add(value, 1);
  return 7;
}

// Reads through the map-in-map: 2 when outer[0] holds an inner map whose
// [0] is 5, 1 otherwise.
SEC("xdp_inner")
int read_inner(struct xdp_md *ctx) {
  __u32 key = 0;
  void *inner = bpf_map_lookup_elem(&outer, &key);
  if (!inner) return 1;
  __u64 *value = bpf_map_lookup_elem(inner, &key);
  return value && *value == 5 ? 2 : 1;
}

char _license[] SEC("license") = "GPL";
