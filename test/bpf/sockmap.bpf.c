// Programs that a sockmap and a sockhash run on the sockets they hold
// (sockmap_test.cc). The stream verdict sends what arrives on a socket out
// of the socket at sock_map[1]; the msg verdict counts each sendmsg in the
// sender's socket storage and puts the data on the receive queue of the
// socket at sock_hash[2].
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, __u64);
} sock_map SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, __u64);
} sock_hash SEC(".maps");

struct msg_stats {
  __u64 msgs;
  __u64 bytes;
};

struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, struct msg_stats);
} msg_stats SEC(".maps");

// [0]: stream verdicts run, [1]: bytes they saw.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, __u64);
} verdicts SEC(".maps");

SEC("sk_skb/stream_verdict")
int skb_redirect(struct __sk_buff *skb) {
  __u32 k = 0;
  __u64 *n = bpf_map_lookup_elem(&verdicts, &k);
  if (n) __sync_fetch_and_add(n, 1);
  k = 1;
  n = bpf_map_lookup_elem(&verdicts, &k);
  if (n) __sync_fetch_and_add(n, skb->len);
  return bpf_sk_redirect_map(skb, &sock_map, 1, 0);
}

SEC("sk_msg")
int msg_redirect(struct sk_msg_md *msg) {
  struct bpf_sock *sk = msg->sk;
  if (sk) {
    struct msg_stats *s = bpf_sk_storage_get(&msg_stats, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
    if (s) {
      s->msgs++;
      s->bytes += msg->size;
    }
  }
  __u32 key = 2;
  return bpf_msg_redirect_hash(msg, &sock_hash, &key, BPF_F_INGRESS);
}

char LICENSE[] SEC("license") = "GPL";
