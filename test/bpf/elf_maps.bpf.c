// Map definitions in every form the ELF reader understands.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// The legacy layout: five u32 fields, read by the size of the symbol.
struct legacy_map_def {
  unsigned int type, key_size, value_size, max_entries, map_flags;
};
struct legacy_map_def SEC("maps") legacy_hash = {
    .type = BPF_MAP_TYPE_HASH, .key_size = 4, .value_size = 8, .max_entries = 16, .map_flags = 1,
};
struct legacy_map_def SEC("maps") legacy_array = {
    .type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 4, .max_entries = 2,
};

// Parses, with a warning: a hash needs a key.
struct legacy_map_def SEC("maps") legacy_nokey = {
    .type = BPF_MAP_TYPE_HASH, .key_size = 0, .value_size = 4, .max_entries = 1,
};

struct value_t {
  long long a;
  int b;
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, unsigned int);
  __type(value, struct value_t);
  __uint(max_entries, 64);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} btf_hash SEC(".maps");

// __ulong as in newer libbpf: a 64-bit value carried by an enumerator.
#define my_ulong(name, val) enum { name##_enum_value = val } name
struct {
  __uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
  __uint(value_size, 4);
  __uint(max_entries, 32);
  my_ulong(map_extra, 3);
} bloom SEC(".maps");

struct inner_def {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __type(key, int);
  __type(value, int);
  __uint(max_entries, 4);
};
struct inner_def inner_a SEC(".maps");
struct inner_def inner_b SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
  __uint(max_entries, 3);
  __type(key, int);
  __array(values, struct inner_def);
} outer SEC(".maps") = {
    .values = {[0] = &inner_a, [2] = &inner_b},
};

int tail_a(struct __sk_buff *skb);
struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(max_entries, 4);
  __type(key, int);
  __array(values, int(struct __sk_buff *));
} jump SEC(".maps") = {
    .values = {[1] = &tail_a},
};

SEC("socket/tail")
int tail_a(struct __sk_buff *skb) { return 42; }

SEC("socket")
int use_maps(struct __sk_buff *skb) {
  int key = 0;
  long *v = bpf_map_lookup_elem(&legacy_hash, &key);
  if (v) return 1;
  struct value_t *bv = bpf_map_lookup_elem(&btf_hash, &key);
  if (bv) return 2;
  void *in = bpf_map_lookup_elem(&outer, &key);
  if (in) return 3;
  bpf_tail_call(skb, &jump, 1);
  return 0;
}

char _license[] SEC("license") = "Dual MIT/GPL";
unsigned int _version SEC("version") = 0x060100;
