// TCP congestion control written in BPF, registered through struct_ops.
//
// The kernel types are declared here, not taken from a vmlinux.h: only the
// members this object sets. The loader matches members by name against
// the running kernel's `struct tcp_congestion_ops` (whose layout differs
// between 6.1 and 6.12), and CO-RE moves the tcp_sock reads.
//
// tether_ca (.struct_ops) registers when the collection loads (map update)
// and unregisters when its last handle goes. tether_ca_l1 and tether_ca_l2
// (.struct_ops.link, 6.4+) are two versions of one congestion control,
// "tether_ca_link" (an update keeps the name): a struct_ops link registers
// one, and is updated to the other. Their init callbacks count apart.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct sock;

struct tcp_sock {
  __u32 snd_cwnd;
  __u32 snd_ssthresh;
} __attribute__((preserve_access_index));

struct tcp_congestion_ops {
  __u32 (*ssthresh)(struct sock *sk);
  void (*cong_avoid)(struct sock *sk, __u32 ack, __u32 acked);
  __u32 (*undo_cwnd)(struct sock *sk);
  void (*init)(struct sock *sk);
  char name[16];
  __u32 flags;
};

// How often each callback ran, read by the test through the .bss map.
__u64 init_calls = 0;
__u64 cong_avoid_calls = 0;
__u64 ssthresh_calls = 0;
__u64 l1_init_calls = 0;
__u64 l2_init_calls = 0;

static __u32 half_cwnd(struct sock *sk) {
  struct tcp_sock *tp = (struct tcp_sock *)sk;
  __u32 half = tp->snd_cwnd >> 1;
  return half < 2 ? 2 : half;
}

SEC("struct_ops/tether_init")
void BPF_PROG(tether_init, struct sock *sk) {
  __sync_fetch_and_add(&init_calls, 1);
}

SEC("struct_ops/tether_ssthresh")
__u32 BPF_PROG(tether_ssthresh, struct sock *sk) {
  __sync_fetch_and_add(&ssthresh_calls, 1);
  return half_cwnd(sk);
}

// Counts, and keeps the window where it is: the test needs the callback
// to run, not a good algorithm.
SEC("struct_ops/tether_cong_avoid")
void BPF_PROG(tether_cong_avoid, struct sock *sk, __u32 ack, __u32 acked) {
  __sync_fetch_and_add(&cong_avoid_calls, 1);
}

SEC("struct_ops/tether_undo_cwnd")
__u32 BPF_PROG(tether_undo_cwnd, struct sock *sk) {
  struct tcp_sock *tp = (struct tcp_sock *)sk;
  return tp->snd_cwnd;
}

SEC(".struct_ops")
struct tcp_congestion_ops tether_ca = {
    .ssthresh = (void *)tether_ssthresh,
    .cong_avoid = (void *)tether_cong_avoid,
    .undo_cwnd = (void *)tether_undo_cwnd,
    .init = (void *)tether_init,
    .name = "tether_ca",
};

// The link versions share every program but init, which tells them apart.
SEC("struct_ops/tether_l1_init")
void BPF_PROG(tether_l1_init, struct sock *sk) {
  __sync_fetch_and_add(&l1_init_calls, 1);
}

SEC("struct_ops/tether_l2_init")
void BPF_PROG(tether_l2_init, struct sock *sk) {
  __sync_fetch_and_add(&l2_init_calls, 1);
}

SEC("struct_ops/tether_link_ssthresh")
__u32 BPF_PROG(tether_link_ssthresh, struct sock *sk) {
  return half_cwnd(sk);
}

SEC("struct_ops/tether_link_cong_avoid")
void BPF_PROG(tether_link_cong_avoid, struct sock *sk, __u32 ack, __u32 acked) {
}

SEC("struct_ops/tether_link_undo_cwnd")
__u32 BPF_PROG(tether_link_undo_cwnd, struct sock *sk) {
  struct tcp_sock *tp = (struct tcp_sock *)sk;
  return tp->snd_cwnd;
}

SEC(".struct_ops.link")
struct tcp_congestion_ops tether_ca_l1 = {
    .ssthresh = (void *)tether_link_ssthresh,
    .cong_avoid = (void *)tether_link_cong_avoid,
    .undo_cwnd = (void *)tether_link_undo_cwnd,
    .init = (void *)tether_l1_init,
    .name = "tether_ca_link",
};

SEC(".struct_ops.link")
struct tcp_congestion_ops tether_ca_l2 = {
    .ssthresh = (void *)tether_link_ssthresh,
    .cong_avoid = (void *)tether_link_cong_avoid,
    .undo_cwnd = (void *)tether_link_undo_cwnd,
    .init = (void *)tether_l2_init,
    .name = "tether_ca_link",
};

char _license[] SEC("license") = "GPL";
