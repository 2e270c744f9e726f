// Every kind of .ksyms extern: typed per-CPU variables, an untyped symbol
// (a kallsyms address), kfuncs called, and kfuncs only tested for with
// bpf_ksym_exists(), one that no kernel has and one that 6.2+ kernels have.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// libbpf 1.1's bpf_helpers.h predates this macro (libbpf 1.2).
#ifndef bpf_ksym_exists
#define bpf_ksym_exists(sym)                                                          \
  ({                                                                                \
    _Static_assert(!__builtin_constant_p(!!sym), #sym " should be marked as __weak"); \
    !!sym;                                                                          \
  })
#endif

// Only the fields read here; CO-RE finds them in the running kernel's types.
struct rq {
  int cpu;
} __attribute__((preserve_access_index));
struct task_struct {
  int pid;
} __attribute__((preserve_access_index));

extern const struct rq runqueues __ksym;  // typed: BTF VAR, per-CPU
extern const int bpf_prog_active __ksym;  // typed: BTF VAR, per-CPU int
extern const void bpf_prog_put __ksym;    // untyped: a text symbol, so in kallsyms without KALLSYMS_ALL

extern struct task_struct *bpf_task_from_pid(__s32 pid) __ksym;  // 6.2+
extern void bpf_task_release(struct task_struct *p) __ksym;
extern void bpf_rcu_read_lock(void) __ksym __weak;  // 6.2+
extern void bpf_rcu_read_unlock(void) __ksym __weak;
extern void bpf_tether_missing_kfunc(void) __ksym __weak;  // no kernel has it

__u32 want_cpu;           // set by the test between runs
__s32 rq_cpu = -1;        // runqueues[want_cpu].cpu, or -2 if there is no such CPU
__s32 prog_active = -1;   // this CPU's bpf_prog_active
__u64 prog_put_addr;      // &bpf_prog_put
__s32 want_pid;
__s32 found_pid = -1;

SEC("xdp")
int typed_ksyms(struct xdp_md *ctx) {
  const struct rq *rq = bpf_per_cpu_ptr(&runqueues, want_cpu);
  rq_cpu = rq ? rq->cpu : -2;
  const int *active = bpf_this_cpu_ptr(&bpf_prog_active);
  prog_active = *active;
  return rq ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int untyped_ksym(struct xdp_md *ctx) {
  prog_put_addr = (__u64)&bpf_prog_put;
  return prog_put_addr ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int kfunc_task(struct xdp_md *ctx) {
  struct task_struct *t = bpf_task_from_pid(want_pid);
  if (!t) {
    found_pid = 0;
    return XDP_DROP;
  }
  found_pid = t->pid;
  bpf_task_release(t);
  return XDP_PASS;
}

// Bit 0: the kfunc no kernel has (never set); bit 1: bpf_rcu_read_lock/unlock.
SEC("xdp")
int kfunc_exists(struct xdp_md *ctx) {
  int found = 0;
  if (bpf_ksym_exists(bpf_tether_missing_kfunc)) {
    bpf_tether_missing_kfunc();
    found |= 1;
  }
  if (bpf_ksym_exists(bpf_rcu_read_lock) && bpf_ksym_exists(bpf_rcu_read_unlock)) {
    bpf_rcu_read_lock();
    bpf_rcu_read_unlock();
    found |= 2;
  }
  return found;
}

char _license[] SEC("license") = "GPL";
