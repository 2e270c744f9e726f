// A tail-call pipeline for the live-replacement proof
// (pipeline_replace_test.cc): entry -> stages[0] = stage_one ->
// stages[1] = stage_two -> finals[0] = stage_three, which counts the packet
// under its build's version. finals has no static entry: the test fills
// it at run time, so a replacement must carry the running build's slots
// over. Each tail call that falls through counts a miss at its call site,
// by hand, as Cilium does.
//
// Built twice: as XDP (pipeline.bpf.o), and with PIPELINE_TCX defined as
// tcx ingress programs (pipeline_tcx.bpf.o), which the test uses where
// XDP program swaps are unsafe to run at its rate (see the test).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#ifdef PIPELINE_TCX
#define PIPELINE_SEC "tcx/ingress"
#define PIPELINE_CTX struct __sk_buff
#define PIPELINE_DROP 2 /* TC_ACT_SHOT */
#else
#define PIPELINE_SEC "xdp"
#define PIPELINE_CTX struct xdp_md
#define PIPELINE_DROP XDP_DROP
#endif

#define MAX_VERSIONS 4096

#ifdef PIPELINE_TCX
// The tcx build runs under QEMU's TCG only. There, a tail call whose index
// the verifier knows is JITed as a direct jump that the kernel patches in
// place (text_poke) on every update of its slot, and a CI run of the
// thousand replacements panicked the 6.12 guest with RIP in the middle of
// such a jump in stage_one. An index read from .bss is unknown to the
// verifier, so the JIT emits an indirect tail call that reads the slot at
// run time: what the test checks (no slot is ever empty) is unchanged.
__u32 slot_base = 0;
#define SLOT(i) (slot_base + (i))
#else
#define SLOT(i) (i)
#endif

// Set per build with CollectionSpec::SetVariable.
const volatile __u32 version = 0;

int stage_one(PIPELINE_CTX *ctx);
int stage_two(PIPELINE_CTX *ctx);

struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(max_entries, 4);
  __uint(key_size, sizeof(__u32));
  __array(values, int(PIPELINE_CTX *));
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

SEC(PIPELINE_SEC)
int entry(PIPELINE_CTX *ctx) {
  bump(&seen, 0);
  bpf_tail_call(ctx, &stages, SLOT(0));
  bump(&misses, 0);
  return PIPELINE_DROP;
}

SEC(PIPELINE_SEC)
int stage_one(PIPELINE_CTX *ctx) {
  bpf_tail_call(ctx, &stages, SLOT(1));
  bump(&misses, 1);
  return PIPELINE_DROP;
}

SEC(PIPELINE_SEC)
int stage_two(PIPELINE_CTX *ctx) {
  bpf_tail_call(ctx, &finals, SLOT(0));
  bump(&misses, 2);
  return PIPELINE_DROP;
}

SEC(PIPELINE_SEC)
int stage_three(PIPELINE_CTX *ctx) {
  __u32 v = version;
  bump(&counters, v < MAX_VERSIONS ? v : MAX_VERSIONS - 1);
  return PIPELINE_DROP;
}

char _license[] SEC("license") = "GPL";
