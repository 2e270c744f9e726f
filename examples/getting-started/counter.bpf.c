// Counts this process's getpid() calls.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 target_pid = 0;  // set from C++ before the load
__u64 calls = 0;                      // .bss: read from C++ after the load

SEC("tracepoint/syscalls/sys_enter_getpid")
int count_getpid(void *ctx) {
  if ((bpf_get_current_pid_tgid() >> 32) == target_pid) __sync_fetch_and_add(&calls, 1);
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
