// A program array whose value_size is 8, not the 4 of a program fd: the
// load must refuse it with one precise error.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(key_size, 4);
  __uint(value_size, 8);
  __uint(max_entries, 4);
} wide_jmp SEC(".maps");

SEC("socket")
int tail_caller(struct __sk_buff *skb) {
  bpf_tail_call(skb, &wide_jmp, 0);
  return 1;
}

char _license[] SEC("license") = "GPL";
