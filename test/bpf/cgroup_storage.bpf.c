// A cgroup_skb egress program that counts in the storage of the cgroup it
// is attached to (cgroup_storage_test.cc): packets and bytes in the shared
// storage, packets in the per-CPU one.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct counts {
  __u64 packets;
  __u64 bytes;
};

struct {
  __uint(type, BPF_MAP_TYPE_CGROUP_STORAGE);
  __type(key, struct bpf_cgroup_storage_key);
  __type(value, struct counts);
} shared SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE);
  __type(key, struct bpf_cgroup_storage_key);
  __type(value, __u64);
} per_cpu SEC(".maps");

SEC("cgroup_skb/egress")
int count_egress(struct __sk_buff *skb) {
  struct counts *c = bpf_get_local_storage(&shared, 0);
  __sync_fetch_and_add(&c->packets, 1);
  __sync_fetch_and_add(&c->bytes, skb->len);
  __u64 *mine = bpf_get_local_storage(&per_cpu, 0);
  *mine += 1;  // this CPU's slot: no other CPU writes it
  return 1;    // let the packet go
}

char LICENSE[] SEC("license") = "GPL";
