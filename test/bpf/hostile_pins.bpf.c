// An object whose map names the tests overwrite, byte for byte, in the ELF's
// symbol and string tables, to play a hostile object that steers pins out of
// its pin directory (test/security_test.cc). Each placeholder is exactly as
// long as the hostile name that replaces it.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// Replaced by "../tenant_b/victim" (18 bytes).
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4);
  __type(key, __u32);
  __type(value, __u64);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} btf_pinned_name_18 SEC(".maps");

// iproute2's legacy map definition; pinning 2 is PIN_GLOBAL_NS, by name.
struct bpf_elf_map {
  __u32 type, size_key, size_value, max_elem, flags, id, pinning, inner_id, inner_idx;
};

// Replaced by "../tenant_b/planted" (19 bytes).
struct bpf_elf_map SEC("maps") legacy_pinned_nam19 = {
    .type = BPF_MAP_TYPE_HASH,
    .size_key = sizeof(__u32),
    .size_value = sizeof(__u64),
    .max_elem = 4,
    .pinning = 2,
};

// Not pinned by the object; `tether load --pin-dir` pins it under this name.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} cli_pinned_name_18 SEC(".maps");

// Writes 42 into both maps, so a test sees which map each one really is.
SEC("socket")
int writer(struct __sk_buff *skb) {
  __u32 key = 0;
  __u64 value = 42;
  bpf_map_update_elem(&btf_pinned_name_18, &key, &value, BPF_ANY);
  bpf_map_update_elem(&legacy_pinned_nam19, &key, &value, BPF_ANY);
  bpf_map_update_elem(&cli_pinned_name_18, &key, &value, BPF_ANY);
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
