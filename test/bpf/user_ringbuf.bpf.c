// The consumer side of the user ring buffer tests (user_ringbuf_test.cc):
// a socket filter, run by BPF_PROG_TEST_RUN, drains what user space wrote
// and keeps totals plus an echo of each record, so the test can compare
// what it produced with what the kernel handed to the program.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_USER_RINGBUF);
  __uint(max_entries, 4096);
} user_rb SEC(".maps");

// What user space writes: a sequence number, a value, and `len`, the whole
// record's size, which the program checks against the dynptr's.
struct record {
  __u64 seq;
  __u64 value;
  __u32 len;
  __u32 pad;
};

struct totals {
  __u64 records;     // records the callback saw
  __u64 value_sum;
  __u64 out_of_order;  // seq not one more than the last one
  __u64 short_reads;   // records too small to hold a struct record
  __u64 bad_len;       // len in the record is not the size drained
  __u64 last_seq;
  __s64 last_drain;    // bpf_user_ringbuf_drain's return value
  __u64 drains;
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct totals);
} totals SEC(".maps");

// Slot seq % 64 holds the value of the record with that seq.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 64);
  __type(key, __u32);
  __type(value, __u64);
} echo SEC(".maps");

static long on_record(struct bpf_dynptr *dynptr, void *data) {
  __u32 zero = 0;
  struct totals *t = bpf_map_lookup_elem(&totals, &zero);
  if (!t) return 1;
  struct record r;
  if (bpf_dynptr_read(&r, sizeof(r), dynptr, 0, 0)) {
    t->short_reads++;
    return 0;
  }
  // The record's own claim about its size, checked by reading its last
  // byte and nothing past it.
  __u8 last;
  if (r.len < sizeof(r) || r.len > 512 || bpf_dynptr_read(&last, 1, dynptr, r.len - 1, 0) ||
      !bpf_dynptr_read(&last, 1, dynptr, r.len, 0))
    t->bad_len++;
  if (t->records && r.seq != t->last_seq + 1) t->out_of_order++;
  t->last_seq = r.seq;
  t->records++;
  t->value_sum += r.value;
  __u32 slot = r.seq % 64;
  bpf_map_update_elem(&echo, &slot, &r.value, BPF_ANY);
  return 0;  // 1 would stop the drain here
}

SEC("socket")
int drain(struct __sk_buff *skb) {
  __u32 zero = 0;
  struct totals *t = bpf_map_lookup_elem(&totals, &zero);
  if (!t) return 1;
  long n = bpf_user_ringbuf_drain(&user_rb, on_record, NULL, 0);
  t->last_drain = n;
  t->drains++;
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
