// A map-element iterator that writes every value of the map it is attached
// to (refusal_test.cc: the program a hardened kernel refuses to load).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_iter_meta {
  struct seq_file *seq;
  __u64 session_id;
  __u64 seq_num;
} __attribute__((preserve_access_index));

struct bpf_iter__bpf_map_elem {
  struct bpf_iter_meta *meta;
  struct bpf_map *map;
  void *key;
  void *value;
} __attribute__((preserve_access_index));

SEC("iter/bpf_map_elem")
int dump_values(struct bpf_iter__bpf_map_elem *ctx) {
  __u64 *value = ctx->value;
  if (!value) return 0;
  bpf_seq_write(ctx->meta->seq, value, sizeof(*value));
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
