// Rejected by the verifier on purpose: it reads past the end of the
// context. `tether load` must name the program and show the log.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("socket")
int reads_too_far(struct __sk_buff *skb) {
  return *(volatile int *)((char *)skb + 4000);
}

char LICENSE[] SEC("license") = "GPL";
