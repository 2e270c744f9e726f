// Global variables of many shapes, for the skeleton generator: every kind
// of BTF type it turns into C++, and ones it must fall back to bytes for.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct point {
  __s32 x;
  __s32 y;
};

enum color { RED = 1, GREEN = 2, BLACK = -1 };

struct config {
  __u8 mode;
  __u64 limit;  // at 8: padding before it
  struct point corners[2];
  char label[12];
  union {
    __u32 word;
    __u8 bytes[4];
  };
  enum color color;
  _Bool enabled;
};

struct flags {  // bitfields: the generator keeps these as bytes
  __u32 a : 3;
  __u32 b : 5;
};

typedef struct {
  __u16 lo;
  __u16 hi;
} pair_t;

const volatile struct config cfg = {
    .mode = 1, .limit = 1000, .corners = {{1, 2}, {3, 4}}, .label = "skel", .word = 0x01020304,
    .color = BLACK, .enabled = 1,
};
const volatile __u32 bonus = 0;

struct point origin = {10, 20};
struct flags fl = {.a = 5, .b = 17};
pair_t pair = {7, 9};
void *where = 0;

__u64 hits[4];
__u32 last_x;
__u16 small;  // leaves .bss at 4*8 + 4 + 2 = 38 bytes: not a multiple of 8

SEC("socket")
int probe(struct __sk_buff *skb) {
  hits[1]++;
  last_x = cfg.corners[1].x + origin.x;
  small = pair.lo + pair.hi;
  if (!cfg.enabled) return 0;
  return cfg.limit + cfg.mode + bonus + (cfg.color == BLACK ? 1 : 0);
}

SEC("tracepoint/syscalls/sys_enter_getpid")
int on_getpid(void *ctx) {
  hits[0]++;
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
