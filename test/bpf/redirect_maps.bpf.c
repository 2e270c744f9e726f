// XDP programs that redirect through each kind of redirect map, and a
// socket filter that routes by an LPM trie (redirect_maps_test.cc). The
// packets are Ethernet + IPv4 + UDP; the first payload byte is the map key.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define KEY_OFFSET (14 + 20 + 8)

struct {
  __uint(type, BPF_MAP_TYPE_DEVMAP);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, __u32);
} tx_port SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, __u32);
} tx_hash SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_CPUMAP);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, struct bpf_cpumap_val);
} cpus SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_XSKMAP);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, __u32);
} xsks SEC(".maps");

static __always_inline int key_of(struct xdp_md *ctx, __u32 *key) {
  __u8 *data = (void *)(long)ctx->data;
  __u8 *end = (void *)(long)ctx->data_end;
  if (data + KEY_OFFSET + 1 > end) return -1;
  *key = data[KEY_OFFSET];
  return 0;
}

// Each falls back to a different action when the key's slot is empty: the
// low bits of bpf_redirect_map's flags.
SEC("xdp")
int to_devmap(struct xdp_md *ctx) {
  __u32 key;
  if (key_of(ctx, &key)) return XDP_ABORTED;
  return bpf_redirect_map(&tx_port, key, XDP_PASS);
}

SEC("xdp")
int to_devmap_hash(struct xdp_md *ctx) {
  __u32 key;
  if (key_of(ctx, &key)) return XDP_ABORTED;
  return bpf_redirect_map(&tx_hash, key, XDP_DROP);
}

SEC("xdp")
int to_cpumap(struct xdp_md *ctx) {
  __u32 key;
  if (key_of(ctx, &key)) return XDP_ABORTED;
  return bpf_redirect_map(&cpus, key, XDP_TX);
}

SEC("xdp")
int to_xskmap(struct xdp_md *ctx) {
  __u32 key;
  if (key_of(ctx, &key)) return XDP_ABORTED;
  return bpf_redirect_map(&xsks, key, XDP_PASS);
}

// Frames that reach a cpumap entry carrying this program: counted on the
// CPU that runs it, then passed on to the network stack.
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} on_cpu_count SEC(".maps");

SEC("xdp/cpumap")
int on_cpu(struct xdp_md *ctx) {
  __u32 zero = 0;
  __u64 *n = bpf_map_lookup_elem(&on_cpu_count, &zero);
  if (n) *n += 1;
  return XDP_PASS;
}

// Longest-prefix match on the packet's IPv4 destination: the value of the
// best prefix, or 0 if none matches.
struct lpm_key {
  __u32 prefixlen;
  __u8 addr[4];
};

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 16);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct lpm_key);
  __type(value, __u32);
} routes SEC(".maps");

// Destinations the program saw, as /32 keys with a count: a trie that the
// program writes.
struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 16);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct lpm_key);
  __type(value, __u64);
} seen SEC(".maps");

SEC("socket")
int route(struct __sk_buff *skb) {
  // A socket filter's test skb starts after the Ethernet header: the IPv4
  // destination is at 16.
  struct lpm_key k = {32, {0}};
  if (bpf_skb_load_bytes(skb, 16, k.addr, 4)) return 0;
  __u64 one = 1;
  if (bpf_map_update_elem(&seen, &k, &one, BPF_NOEXIST)) {
    __u64 *n = bpf_map_lookup_elem(&seen, &k);
    if (n) __sync_fetch_and_add(n, 1);
  }
  __u32 *v = bpf_map_lookup_elem(&routes, &k);
  return v ? *v : 0;
}

char LICENSE[] SEC("license") = "GPL";
