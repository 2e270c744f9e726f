// struct_ops maps the loader must refuse, each on its own (LoadAndAssign
// of one map): a struct type no kernel registers as struct_ops, and a
// tcp_congestion_ops with a non-zero member the kernel's lacks.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct sock;

struct tether_no_such_ops {
  __u32 (*run)(struct sock *sk);
  __u32 level;
};

struct tcp_congestion_ops {
  __u32 (*ssthresh)(struct sock *sk);
  void (*cong_avoid)(struct sock *sk, __u32 ack, __u32 acked);
  __u32 (*undo_cwnd)(struct sock *sk);
  char name[16];
  __u32 tether_no_such_member;
};

SEC("struct_ops/bad_ssthresh")
__u32 BPF_PROG(bad_ssthresh, struct sock *sk) { return 2; }

SEC("struct_ops/bad_cong_avoid")
void BPF_PROG(bad_cong_avoid, struct sock *sk, __u32 ack, __u32 acked) {}

SEC("struct_ops/bad_undo_cwnd")
__u32 BPF_PROG(bad_undo_cwnd, struct sock *sk) { return 2; }

SEC("struct_ops/bad_run")
__u32 BPF_PROG(bad_run, struct sock *sk) { return 0; }

SEC(".struct_ops")
struct tether_no_such_ops no_such_type = {
    .run = (void *)bad_run,
    .level = 1,
};

SEC(".struct_ops")
struct tcp_congestion_ops extra_member = {
    .ssthresh = (void *)bad_ssthresh,
    .cong_avoid = (void *)bad_cong_avoid,
    .undo_cwnd = (void *)bad_undo_cwnd,
    .name = "tether_bad",
    .tether_no_such_member = 7,
};

char _license[] SEC("license") = "GPL";
