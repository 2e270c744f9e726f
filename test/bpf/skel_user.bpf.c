// Programs whose sections name user-space hooks the way libbpf spells
// them, so that a skeleton's Attach() hooks them up by itself:
// SEC("uprobe/<binary>:<function>"), SEC("uretprobe/...") and
// SEC("usdt/<binary>:<provider>:<name>"). The binary is /proc/self/exe:
// skel_user_test.cc, in the test binary, defines the function and the
// probe. (stdbool.h stands in for vmlinux.h, which usdt.bpf.h expects.)
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

__u64 entries = 0;
__u64 returns = 0;
__u64 last_return = 0;
__u64 pings = 0;
long last_ping = 0;
// A section whose binary is missing: the skeleton leaves it to the caller.
__u64 unused = 0;

SEC("uprobe//proc/self/exe:tether_skel_uprobe_target")
int on_entry(struct pt_regs *ctx) {
  __sync_fetch_and_add(&entries, 1);
  return 0;
}

SEC("uretprobe//proc/self/exe:tether_skel_uprobe_target")
int on_return(struct pt_regs *ctx) {
  __sync_fetch_and_add(&returns, 1);
  last_return = PT_REGS_RC(ctx);
  return 0;
}

SEC("usdt//proc/self/exe:tether_skel:ping")
int BPF_USDT(on_ping, long value) {
  __sync_fetch_and_add(&pings, 1);
  last_ping = value;
  return 0;
}

SEC("usdt/tether_skel:ping")
int BPF_USDT(left_to_caller, long value) {
  unused = value;
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
