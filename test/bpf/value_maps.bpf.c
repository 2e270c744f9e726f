// Programs on both ends of the value maps (value_maps_test.cc): queue and
// stack pushes and pops, bloom filter tests, key counts in the four hash
// flavours, counters reached through a hash of maps, and a cgroup array
// check, each run by BPF_PROG_TEST_RUN.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_QUEUE);
  __uint(max_entries, 8);
  __type(value, __u64);
} fifo SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_STACK);
  __uint(max_entries, 8);
  __type(value, __u64);
} lifo SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
  __uint(max_entries, 64);
  __uint(map_extra, 3);  // hash functions
  __type(value, __u64);
} seen SEC(".maps");

// The u64 that a socket filter's test packet carries first (after the
// Ethernet header the kernel pulls).
static __always_inline int packet_value(struct __sk_buff *skb, __u64 *v) {
  return bpf_skb_load_bytes(skb, 0, v, sizeof(*v));
}

SEC("socket")
int push_both(struct __sk_buff *skb) {
  __u64 v;
  if (packet_value(skb, &v)) return 1;
  if (bpf_map_push_elem(&fifo, &v, 0)) return 2;
  if (bpf_map_push_elem(&lifo, &v, 0)) return 3;
  return 0;
}

// The value popped from the queue (its low 32 bits), or 0xffffffff when
// it is empty.
SEC("socket")
int pop_fifo(struct __sk_buff *skb) {
  __u64 v;
  if (bpf_map_pop_elem(&fifo, &v)) return -1;
  return (__u32)v;
}

// 1 if the filter may hold the packet's value, 0 if it surely does not.
SEC("socket")
int bloom_test(struct __sk_buff *skb) {
  __u64 v;
  if (packet_value(skb, &v)) return -1;
  return bpf_map_peek_elem(&seen, &v) == 0;
}

// A hash of maps from a u64 tenant id to that tenant's counter array.
struct tenant_counters {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
  __uint(max_entries, 8);
  __type(key, __u64);
  __array(values, struct tenant_counters);
} tenants SEC(".maps");

// Adds 1 to the counter of the tenant the packet names; returns the new
// count, or 0 for an unknown tenant.
SEC("socket")
int count_tenant(struct __sk_buff *skb) {
  __u64 id;
  if (packet_value(skb, &id)) return 0;
  void *inner = bpf_map_lookup_elem(&tenants, &id);
  if (!inner) return 0;
  __u32 zero = 0;
  __u64 *n = bpf_map_lookup_elem(inner, &zero);
  if (!n) return 0;
  return (__u32)__sync_add_and_fetch(n, 1);
}

struct {
  __uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} cgroups SEC(".maps");

// 1 if the calling task is in the cgroup at cgroups[0] (or below it).
SEC("raw_tp")
int under_cgroup(void *ctx) { return bpf_current_task_under_cgroup(&cgroups, 0); }

// The four hash flavours, each counting the keys the packets carry.
#define COUNTING_HASH(name, map_type)  \
  struct {                             \
    __uint(type, map_type);            \
    __uint(max_entries, 4);            \
    __type(key, __u64);                \
    __type(value, __u64);              \
  } name SEC(".maps")

COUNTING_HASH(plain_hash, BPF_MAP_TYPE_HASH);
COUNTING_HASH(percpu_hash, BPF_MAP_TYPE_PERCPU_HASH);
COUNTING_HASH(lru_hash, BPF_MAP_TYPE_LRU_HASH);
COUNTING_HASH(lru_percpu_hash, BPF_MAP_TYPE_LRU_PERCPU_HASH);

static __always_inline void count_in(void *map, __u64 *key) {
  __u64 *n = bpf_map_lookup_elem(map, key);
  if (n) {
    *n += 1;  // in the per-CPU flavours, this CPU's slot: the test sums them
    return;
  }
  __u64 one = 1;
  bpf_map_update_elem(map, key, &one, BPF_NOEXIST);  // a full hash refuses: E2BIG
}

SEC("socket")
int count_keys(struct __sk_buff *skb) {
  __u64 key;
  if (packet_value(skb, &key)) return 1;
  count_in(&plain_hash, &key);
  count_in(&percpu_hash, &key);
  count_in(&lru_hash, &key);
  count_in(&lru_percpu_hash, &key);
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
