// An object whose names the tests overwrite, byte for byte, with terminal
// escape sequences and bytes that are not UTF-8 (test/security_test.cc).
// The first 15 bytes of each name stay valid: that is all the kernel sees
// of a name, so the object still loads, and the rest reaches the output.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} plain_map_name_placeholder_31_b SEC(".maps");

SEC("socket")
int prog_name_placeholder_32_bytes_x(struct __sk_buff *skb) {
  __u32 key = 0;
  __u64 *v = bpf_map_lookup_elem(&plain_map_name_placeholder_31_b, &key);
  if (v) __sync_fetch_and_add(v, 1);
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
