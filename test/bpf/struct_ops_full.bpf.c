// A whole-object load with struct_ops: one .struct_ops map, and a
// struct_ops program that no map uses, which the load skips (as libbpf
// does) instead of failing on it.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct sock;

struct tcp_congestion_ops {
  __u32 (*ssthresh)(struct sock *sk);
  void (*cong_avoid)(struct sock *sk, __u32 ack, __u32 acked);
  __u32 (*undo_cwnd)(struct sock *sk);
  char name[16];
};

SEC("struct_ops/full_ssthresh")
__u32 BPF_PROG(full_ssthresh, struct sock *sk) { return 2; }

SEC("struct_ops/full_cong_avoid")
void BPF_PROG(full_cong_avoid, struct sock *sk, __u32 ack, __u32 acked) {}

SEC("struct_ops/full_undo_cwnd")
__u32 BPF_PROG(full_undo_cwnd, struct sock *sk) { return 2; }

SEC("struct_ops/full_unused")
__u32 BPF_PROG(full_unused, struct sock *sk) { return 2; }

SEC(".struct_ops")
struct tcp_congestion_ops tether_ca_full = {
    .ssthresh = (void *)full_ssthresh,
    .cong_avoid = (void *)full_cong_avoid,
    .undo_cwnd = (void *)full_undo_cwnd,
    .name = "tether_ca_full",
};

char _license[] SEC("license") = "GPL";
