// USDT handlers written exactly as for libbpf's USDT support
// (<bpf/usdt.bpf.h>, BPF_USDT), attached by usdt_test.cc to the probes of
// test/usdt/usdt_target.c. Each firing of tether_test:args is recorded,
// with the argument count and the attach cookie, in `args_seen`. (stdbool.h
// stands in for vmlinux.h, which usdt.bpf.h expects to define bool.)
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

struct args_record {
  long in_register;
  long in_memory;
  long constant;
  long in_memory64;
  long arg_count;
  long cookie;
};

#define MAX_RECORDS 16

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, MAX_RECORDS);
  __type(key, __u32);
  __type(value, struct args_record);
} args_seen SEC(".maps");

// [0]: firings of tether_test:args; [1]: of tether_test:gated;
// [2]: the gated probe's argument; [3]: firings of tether_lib:called (in a
// shared library); [4]: its first argument; [5]: its second.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 6);
  __type(key, __u32);
  __type(value, __u64);
} usdt_counts SEC(".maps");

SEC("usdt")
int BPF_USDT(on_args, int in_register, short in_memory, int constant, long long in_memory64) {
  __u32 zero = 0;
  __u64 *count = bpf_map_lookup_elem(&usdt_counts, &zero);
  if (!count) return 0;
  __u32 slot = (__u32)__sync_fetch_and_add(count, 1);
  if (slot >= MAX_RECORDS) return 0;
  struct args_record *r = bpf_map_lookup_elem(&args_seen, &slot);
  if (!r) return 0;
  r->in_register = in_register;
  r->in_memory = in_memory;
  r->constant = constant;
  r->in_memory64 = in_memory64;
  r->arg_count = bpf_usdt_arg_cnt(ctx);
  r->cookie = bpf_usdt_cookie(ctx);
  return 0;
}

SEC("usdt/tether_test:gated")
int BPF_USDT(on_gated, long x) {
  __u32 key = 1;
  __u64 *count = bpf_map_lookup_elem(&usdt_counts, &key);
  if (count) __sync_fetch_and_add(count, 1);
  key = 2;
  __u64 *last = bpf_map_lookup_elem(&usdt_counts, &key);
  if (last) *last = (__u64)x;
  return 0;
}

SEC("usdt")
int BPF_USDT(on_lib, long v, long doubled) {
  __u32 key = 3;
  __u64 *count = bpf_map_lookup_elem(&usdt_counts, &key);
  if (count) __sync_fetch_and_add(count, 1);
  key = 4;
  __u64 *first = bpf_map_lookup_elem(&usdt_counts, &key);
  if (first) *first = (__u64)v;
  key = 5;
  __u64 *second = bpf_map_lookup_elem(&usdt_counts, &key);
  if (second) *second = (__u64)doubled;
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
