// corpus/manyprogs-el.elf with a BTF-defined map instead of the legacy
// "maps" section, which libbpf 1.x no longer opens: 30 kprobe programs,
// each reading task->nsproxy->mnt_ns->ns.inum through CO-RE. The load
// benchmark runs it under tether and under libbpf.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 128);
  __type(key, __u32);
  __type(value, __u64);
} kprobe_map SEC(".maps");

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)
struct ns_common {
  unsigned int inum;
};
struct mnt_namespace {
  struct ns_common ns;
};
struct nsproxy {
  struct mnt_namespace *mnt_ns;
};
struct task_struct {
  struct nsproxy *nsproxy;
};
#pragma clang attribute pop

static __always_inline int impl(void) {
  __u64 initval = 1, *valp;
  struct task_struct *task = (struct task_struct *)bpf_get_current_task();
  __u32 mntns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
  valp = bpf_map_lookup_elem(&kprobe_map, &mntns);
  if (!valp) {
    bpf_map_update_elem(&kprobe_map, &mntns, &initval, 0);
    return 0;
  }
  __sync_fetch_and_add(valp, 1);
  return 0;
}

#define PROBE(i) \
  SEC("kprobe/sys_execvea" #i) int kprobe_execve##i(void *ctx) { return impl(); }

PROBE(0) PROBE(1) PROBE(2) PROBE(3) PROBE(4) PROBE(5) PROBE(6) PROBE(7) PROBE(8) PROBE(9)
PROBE(10) PROBE(11) PROBE(12) PROBE(13) PROBE(14) PROBE(15) PROBE(16) PROBE(17) PROBE(18)
PROBE(19) PROBE(20) PROBE(21) PROBE(22) PROBE(23) PROBE(24) PROBE(25) PROBE(26) PROBE(27)
PROBE(28) PROBE(29)

char LICENSE[] SEC("license") = "Dual MIT/GPL";
