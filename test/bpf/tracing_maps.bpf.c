// Raw tracepoint programs (and one LSM program) for the maps that tracing
// programs feed (tracing_maps_test.cc). BPF_PROG_TEST_RUN runs them in the calling
// thread, so the stack they record is the test-run syscall's and the task
// and cgroup they see are the caller's.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// Only the fields read, placed by CO-RE.
struct css_set {
  struct cgroup *dfl_cgrp;
} __attribute__((preserve_access_index));
struct task_struct {
  struct css_set *cgroups;
} __attribute__((preserve_access_index));

#define STACK_DEPTH 32

struct {
  __uint(type, BPF_MAP_TYPE_STACK_TRACE);
  // Ids are hash buckets: two stacks in one bucket make the second
  // bpf_get_stackid() fail with -EEXIST. With 16 buckets the kernel and
  // user stacks collided in about one run in ten.
  __uint(max_entries, 4096);
  __type(key, __u32);
  __uint(value_size, STACK_DEPTH * sizeof(__u64));
} stacks SEC(".maps");

// [0]: the kernel stack's id, [1]: the user stack's (or -errno).
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, __s64);
} stack_ids SEC(".maps");

SEC("raw_tp")
int grab_stacks(void *ctx) {
  __u32 k = 0;
  __s64 id = bpf_get_stackid(ctx, &stacks, 0);
  bpf_map_update_elem(&stack_ids, &k, &id, BPF_ANY);
  k = 1;
  id = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);
  bpf_map_update_elem(&stack_ids, &k, &id, BPF_ANY);
  return 0;
}

struct {
  __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, __u64);
} task_runs SEC(".maps");

SEC("raw_tp")
int count_task(void *ctx) {
  __u64 *n = bpf_task_storage_get(&task_runs, bpf_get_current_task_btf(), 0,
                                  BPF_LOCAL_STORAGE_GET_F_CREATE);
  if (!n) return 1;
  *n += 1;
  return 0;
}

// 32 is BPF_MAP_TYPE_CGRP_STORAGE (6.2), newer than this header.
struct {
  __uint(type, 32);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, __u64);
} cgroup_runs SEC(".maps");

SEC("raw_tp")
int count_cgroup(void *ctx) {
  struct task_struct *task = bpf_get_current_task_btf();
  __u64 *n = bpf_cgrp_storage_get(&cgroup_runs, task->cgroups->dfl_cgrp, 0,
                                  BPF_LOCAL_STORAGE_GET_F_CREATE);
  if (!n) return 1;
  *n += 1;
  return 0;
}


// BPF LSM (5.7, needs trampolines): every file this process opens gets a
// count in its inode's storage.
struct file {
  struct inode *f_inode;
} __attribute__((preserve_access_index));

struct {
  __uint(type, BPF_MAP_TYPE_INODE_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, __u64);
} inode_opens SEC(".maps");

volatile const __u32 target_tgid = 0;

SEC("lsm/file_open")
int count_open(unsigned long long *ctx) {
  if (bpf_get_current_pid_tgid() >> 32 != target_tgid) return 0;
  struct file *file = (struct file *)ctx[0];
  __u64 *n = bpf_inode_storage_get(&inode_opens, file->f_inode, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
  if (n) __sync_fetch_and_add(n, 1);
  return 0;  // allow the open
}

char LICENSE[] SEC("license") = "GPL";
