// A profiler's program: counts the samples of a perf event (attach_test.cc).
#include <linux/bpf.h>
#include <linux/bpf_perf_event.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} samples SEC(".maps");

SEC("perf_event")
int count_samples(struct bpf_perf_event_data *ctx) {
  __u32 key = 0;
  __u64 *n = bpf_map_lookup_elem(&samples, &key);
  if (n) __sync_fetch_and_add(n, 1);
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
