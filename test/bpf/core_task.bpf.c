// CO-RE against the running kernel. The local definitions below are
// deliberately not the kernel's layout (fields in another order, far
// fewer of them): only relocation can make the reads land on the right
// bytes. Every result goes to `results`, for the thread `target_tid`.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct task_struct {
  char comm[16];
  unsigned sched_reset_on_fork : 1;
  int tgid;
  int pid;
} __attribute__((preserve_access_index));

// Same type, seen through a flavour: a field no kernel has.
struct task_struct___missing {
  int tether_no_such_field;
} __attribute__((preserve_access_index));

// No kernel has this type.
struct tether_no_such_type {
  int x;
} __attribute__((preserve_access_index));

// The kernel's values differ from these: PIDTYPE_SID is 3 there.
enum pid_type___local { PIDTYPE_SID___local = 100 };
enum bpf_map_type___local { BPF_MAP_TYPE_RINGBUF___local = 1 };

struct result {
  __u64 pid_tgid;
  __u32 pid;
  __u32 tgid;
  char comm[16];
  __u32 reset_on_fork;
  __u32 enum_sid;
  __u32 enum_ringbuf;
  __u32 enum_sid_exists;
  __u32 type_missing_exists;
  __u32 field_missing_exists;
  __u32 pid_exists;
  __u32 comm_size;
  __u32 task_size;
  __u32 guarded_read;
  __u32 hits;
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct result);
} results SEC(".maps");

__u32 target_tid = 0;  // .bss: set by the test after load

SEC("raw_tracepoint/sys_enter")
int core_task(struct bpf_raw_tracepoint_args *ctx) {
  __u64 pid_tgid = bpf_get_current_pid_tgid();
  if ((__u32)pid_tgid != target_tid || target_tid == 0) return 0;
  __u32 zero = 0;
  struct result *r = bpf_map_lookup_elem(&results, &zero);
  if (!r) return 0;
  struct task_struct *task = (struct task_struct *)bpf_get_current_task();
  r->pid_tgid = pid_tgid;
  r->pid = BPF_CORE_READ(task, pid);
  r->tgid = BPF_CORE_READ(task, tgid);
  bpf_core_read(&r->comm, sizeof(r->comm), &task->comm);
  r->reset_on_fork = BPF_CORE_READ_BITFIELD_PROBED(task, sched_reset_on_fork);
  r->enum_sid = bpf_core_enum_value(enum pid_type___local, PIDTYPE_SID___local);
  r->enum_ringbuf = bpf_core_enum_value(enum bpf_map_type___local, BPF_MAP_TYPE_RINGBUF___local);
  r->enum_sid_exists = bpf_core_enum_value_exists(enum pid_type___local, PIDTYPE_SID___local);
  r->type_missing_exists = bpf_core_type_exists(struct tether_no_such_type);
  r->pid_exists = bpf_core_field_exists(task->pid);
  r->comm_size = bpf_core_field_size(task->comm);
  r->task_size = bpf_core_type_size(struct task_struct);
  struct task_struct___missing *m = (void *)task;
  r->field_missing_exists = bpf_core_field_exists(m->tether_no_such_field);
  // Poisoned, but the verifier sees the guard is false and never gets here.
  if (bpf_core_field_exists(m->tether_no_such_field)) {
    r->guarded_read = BPF_CORE_READ(m, tether_no_such_field);
  } else {
    r->guarded_read = 7;
  }
  r->hits++;
  return 0;
}

// Reads a field no kernel has, unguarded: the load must fail and say why.
SEC("raw_tracepoint/sys_enter")
int core_unguarded(struct bpf_raw_tracepoint_args *ctx) {
  struct task_struct___missing *m = (void *)bpf_get_current_task();
  return BPF_CORE_READ(m, tether_no_such_field);
}

char LICENSE[] SEC("license") = "GPL";
