// An sk_reuseport program (reuseport_test.cc) that picks the socket of a
// UDP reuseport group by the first payload byte, the key of the socket in
// reuse_socks; a datagram whose key has no socket is dropped.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, __u64);
} reuse_socks SEC(".maps");

// [0]: selections made, [1]: keys without a socket.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, __u64);
} picks SEC(".maps");

static void bump(__u32 slot) {
  __u64 *n = bpf_map_lookup_elem(&picks, &slot);
  if (n) __sync_fetch_and_add(n, 1);
}

SEC("sk_reuseport")
int pick_by_payload(struct sk_reuseport_md *md) {
  // For UDP, data starts at the UDP header.
  __u8 *data = md->data;
  __u8 *end = md->data_end;
  if (data + 8 + 1 > end) return SK_DROP;
  __u32 key = data[8];
  if (bpf_sk_select_reuseport(md, &reuse_socks, &key, 0)) {
    bump(1);
    return SK_DROP;
  }
  bump(0);
  return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
