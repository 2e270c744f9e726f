// kfuncs that live in a kernel module's BTF on Debian's 6.1 (nf_conntrack
// is a module there) and in vmlinux on kernels that build it in. The
// loader must find them either way and, for a module, pass its BTF by fd.
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct nf_conn;

// The 6.1 layout; later kernels still accept its 12 bytes as opts__sz.
struct bpf_ct_opts {
  __s32 netns_id;
  __s32 error;
  __u8 l4proto;
  __u8 dir;
  __u8 reserved[2];
};

// Both from nf_conntrack: one module, so one fd_array slot for both calls.
extern struct nf_conn *bpf_xdp_ct_lookup(struct xdp_md *xdp_ctx, struct bpf_sock_tuple *tuple,
                                         __u32 tuple__sz, struct bpf_ct_opts *opts,
                                         __u32 opts__sz) __ksym;
extern void bpf_ct_release(struct nf_conn *ct) __ksym;

// No kernel has it; not weak, so loading `missing_kfunc` must fail.
extern int bpf_tether_no_such_kfunc(void) __ksym;

__s32 lookup_error = 1;  // what the last lookup left in opts.error

SEC("xdp")
int ct_lookup(struct xdp_md *ctx) {
  struct bpf_sock_tuple tuple = {};
  struct bpf_ct_opts opts = {.netns_id = -1, .l4proto = IPPROTO_TCP};
  // A TCP flow between two TEST-NET-1 addresses: no conntrack entry has it.
  tuple.ipv4.saddr = bpf_htonl(0xc0000201);
  tuple.ipv4.daddr = bpf_htonl(0xc0000202);
  tuple.ipv4.sport = bpf_htons(40001);
  tuple.ipv4.dport = bpf_htons(40002);
  struct nf_conn *ct = bpf_xdp_ct_lookup(ctx, &tuple, sizeof(tuple.ipv4), &opts, sizeof(opts));
  lookup_error = opts.error;
  if (ct) {
    bpf_ct_release(ct);
    return XDP_TX;
  }
  return XDP_PASS;
}

SEC("xdp")
int missing_kfunc(struct xdp_md *ctx) { return bpf_tether_no_such_kfunc(); }

char _license[] SEC("license") = "GPL";
