// Global data in sections of its own name: each .rodata.* and .data.*
// section becomes an array map of one value, .rodata.* frozen.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 cfg_scale SEC(".rodata.cfg") = 3;
const volatile __u32 cfg_offset SEC(".rodata.cfg") = 10;

__u64 hits SEC(".data.counters") = 100;
__u32 last SEC(".data.counters") = 7;

SEC("socket")
int read_sections(struct __sk_buff *skb) {
  __u32 v = cfg_scale * 7 + cfg_offset;
  hits++;
  last = v;
  return v;
}

char _license[] SEC("license") = "GPL";
