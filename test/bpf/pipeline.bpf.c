// A tail-call pipeline for the live-replacement proof
// (pipeline_replace_test.cc): entry -> stages[0] = stage_one ->
// stages[1] = stage_two -> finals[0] = stage_three, which counts the packet
// under its build's version. finals has no static entry: the test fills
// it at run time, so a replacement must carry the running build's slots
// over. Each tail call that falls through counts a miss at its call site,
// by hand, as Cilium does.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define MAX_VERSIONS 4096

// Set per build with CollectionSpec::SetVariable.
const volatile __u32 version = 0;

int stage_one(struct xdp_md *ctx);
int stage_two(struct xdp_md *ctx);

struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(max_entries, 4);
  __uint(key_size, sizeof(__u32));
  __array(values, int(struct xdp_md *));
} stages SEC(".maps") = {
    .values = {[0] = (void *)&stage_one, [1] = (void *)&stage_two},
};

struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, __u32);
} finals SEC(".maps");

// counters[version]: packets that reached the end of the chain.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, MAX_VERSIONS);
  __type(key, __u32);
  __type(value, __u64);
} counters SEC(".maps");

// misses[site]: 0 entry, 1 stage_one, 2 stage_two.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, __u64);
} misses SEC(".maps");

// seen[0]: packets the entry ran on.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} seen SEC(".maps");

static __always_inline void bump(void *map, __u32 key) {
  __u64 *v = bpf_map_lookup_elem(map, &key);
  if (v) __sync_fetch_and_add(v, 1);
}

SEC("xdp")
int entry(struct xdp_md *ctx) {
  bump(&seen, 0);
  bpf_tail_call(ctx, &stages, 0);
  bump(&misses, 0);
  return XDP_DROP;
}

SEC("xdp")
int stage_one(struct xdp_md *ctx) {
  bpf_tail_call(ctx, &stages, 1);
  bump(&misses, 1);
  return XDP_DROP;
}

SEC("xdp")
int stage_two(struct xdp_md *ctx) {
  bpf_tail_call(ctx, &finals, 0);
  bump(&misses, 2);
  return XDP_DROP;
}

SEC("xdp")
int stage_three(struct xdp_md *ctx) {
  __u32 v = version;
  bump(&counters, v < MAX_VERSIONS ? v : MAX_VERSIONS - 1);
  return XDP_DROP;
}

char _license[] SEC("license") = "GPL";
