// Code features: global data, kconfig, sub-programs, callbacks and
// several programs per section.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

int counter = 5;                    // .data
int zeroed;                         // .bss
volatile const int ret = 7;         // .rodata
int custom SEC(".data.custom") = 9; // .data.custom
static int hidden_static = 3;       // not exposed: static

extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern int CONFIG_HZ __kconfig __weak;

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __type(key, int);
  __type(value, long long);
  __uint(max_entries, 1);
} values SEC(".maps");

__attribute__((noinline)) int global_helper(int x) { return x * 2 + counter; }

static __attribute__((noinline)) int text_static(int x) { return x + hidden_static; }

static long count_cb(unsigned int idx, void *ctx) {
  (*(int *)ctx)++;
  return 0;
}

SEC("xdp")
int first(struct xdp_md *ctx) {
  int n = 0;
  bpf_loop(4, count_cb, &n, 0);
  return n + global_helper(ret);
}

// Placed in the program's own section: a sub-program, not a program.
static __attribute__((noinline, section("xdp"))) int in_section_static(int x) {
  return x + custom;
}

SEC("xdp")
int second(struct xdp_md *ctx) {
  zeroed++;
  return in_section_static(text_static(1)) + (LINUX_KERNEL_VERSION > 0) + CONFIG_HZ;
}

SEC("kprobe/do_sys_open")
int probe(void *ctx) {
  int key = 0;
  long long *v = bpf_map_lookup_elem(&values, &key);
  if (v) *v += 1;
  return 0;
}

SEC("fentry.s/do_unlinkat")
int sleepy(void *ctx) { return 0; }

char _license[] SEC("license") = "GPL";
