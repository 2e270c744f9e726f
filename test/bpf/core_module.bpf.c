// CO-RE against a type that the running kernel may keep in a module's BTF:
// nf_conntrack's per-namespace struct nf_conntrack_net, which only the
// module's own code uses (so on Debian's 6.1 only the module's BTF has it;
// the host builds nf_conntrack in). The local layout is deliberately wrong; every answer must come
// from the kernel's BTF, wherever the type lives.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct nf_conntrack_net {
  char far_from_any_kernel_layout[1000];
  unsigned int expect_count;
} __attribute__((preserve_access_index));

struct result {
  __u32 exists;
  __u32 size;
  __u32 expect_count_offset;
  __u32 expect_count_size;
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct result);
} results SEC(".maps");

SEC("socket")
int core_module(struct __sk_buff *skb) {
  __u32 zero = 0;
  struct result *r = bpf_map_lookup_elem(&results, &zero);
  if (!r) return 0;
  r->exists = bpf_core_type_exists(struct nf_conntrack_net);
  r->size = bpf_core_type_size(struct nf_conntrack_net);
  r->expect_count_offset = bpf_core_field_offset(struct nf_conntrack_net, expect_count);
  r->expect_count_size = bpf_core_field_size(struct nf_conntrack_net, expect_count);
  return 1;
}

char LICENSE[] SEC("license") = "GPL";
