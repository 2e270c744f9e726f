// BTF_KIND_DECL_TAG (5.16) on a struct, a member, a variable, a function
// and a parameter; BTF_KIND_TYPE_TAG (5.17) on pointer targets. No tagged
// pointer sits in a map value: there the kernel would read the tag as a
// kptr kind and refuse the map's BTF.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define __decl_tag(x) __attribute__((btf_decl_tag(x)))
#define __type_tag(x) __attribute__((btf_type_tag(x)))

struct tagged {
  int base __decl_tag("member_tag");
  int __type_tag("tether_ptr") *ptr;
} __decl_tag("struct_tag");

__u32 tagged_calls __decl_tag("var_tag");

static __attribute__((noinline)) __decl_tag("func_tag") int
sum(struct tagged *t __decl_tag("param_tag"), int __type_tag("tether_arg") *extra) {
  return t->base + *t->ptr + *extra;
}

SEC("socket")
int tagged_prog(struct __sk_buff *skb) {
  int v = 5, extra = 30;
  struct tagged t = {.base = 7, .ptr = &v};
  tagged_calls++;
  return sum(&t, &extra);
}

char _license[] SEC("license") = "GPL";
