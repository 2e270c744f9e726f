// UAPI values newer than the linux/bpf.h that Debian bookworm ships (6.1).
// The numbers are ABI: they never change once a kernel release has them.
// Whether the running kernel accepts them is a question for the probes.
#ifndef TETHER_LIB_SYS_UAPI_COMPAT_H_
#define TETHER_LIB_SYS_UAPI_COMPAT_H_

#include <linux/bpf.h>

#include <cstddef>
#include <cstdint>

namespace tether::sys::uapi {

// ENOTSUPP: a kernel-internal errno (include/linux/errno.h) that bpf(2)
// returns for operations a map or program type lacks. No libc names it.
constexpr int kEnotsupp = 524;

// enum bpf_map_type
inline constexpr unsigned kMapTypeCgrpStorage = 32;  // 6.2
inline constexpr unsigned kMapTypeArena = 33;        // 6.9

// map_flags
inline constexpr unsigned kMapFLink = 1u << 13;  // BPF_F_LINK: a struct_ops map a link registers, 6.4

// enum bpf_prog_type
inline constexpr unsigned kProgTypeNetfilter = 32;  // 6.4

// enum bpf_attach_type (6.1 ends at BPF_LSM_CGROUP = 43)
inline constexpr unsigned kAttachStructOps = 44;        // 6.4
inline constexpr unsigned kAttachNetfilter = 45;        // 6.4
inline constexpr unsigned kAttachTcxIngress = 46;       // 6.6
inline constexpr unsigned kAttachTcxEgress = 47;        // 6.6
inline constexpr unsigned kAttachTraceUprobeMulti = 48; // 6.6
inline constexpr unsigned kAttachCgroupUnixConnect = 49;
inline constexpr unsigned kAttachCgroupUnixSendmsg = 50;
inline constexpr unsigned kAttachCgroupUnixRecvmsg = 51;
inline constexpr unsigned kAttachCgroupUnixGetpeername = 52;
inline constexpr unsigned kAttachCgroupUnixGetsockname = 53;
inline constexpr unsigned kAttachNetkitPrimary = 54;
inline constexpr unsigned kAttachNetkitPeer = 55;
inline constexpr unsigned kAttachTraceKprobeSession = 56;

// enum bpf_link_type
inline constexpr unsigned kLinkTypeNetfilter = 10;   // 6.4
inline constexpr unsigned kLinkTypeTcx = 11;         // 6.6
inline constexpr unsigned kLinkTypeUprobeMulti = 12; // 6.6
inline constexpr unsigned kLinkTypeNetkit = 13;
inline constexpr unsigned kLinkTypeSockmap = 14;      // 6.10

// link_create.netfilter (6.4), the union member after link_create.flags.
struct NetfilterLinkAttr {
  uint32_t pf = 0;       // NFPROTO_IPV4, NFPROTO_IPV6
  uint32_t hooknum = 0;  // NF_INET_PRE_ROUTING ... NF_INET_POST_ROUTING
  int32_t priority = 0;
  uint32_t flags = 0;    // BPF_F_NETFILTER_IP_DEFRAG (6.6)
};
inline constexpr uint32_t kNetfilterIpDefrag = 1;  // BPF_F_NETFILTER_IP_DEFRAG

// BTF kinds the 6.1 header may lack are defined in btf code itself.

// enum bpf_cmd
inline constexpr int kCmdTokenCreate = 36;  // BPF_TOKEN_CREATE, 6.9
static_assert(BPF_PROG_BIND_MAP + 1 == kCmdTokenCreate, "BPF_TOKEN_CREATE follows BPF_PROG_BIND_MAP");

// map_flags / prog_flags / btf_flags: the attr carries a token fd (6.9).
inline constexpr unsigned kFlagTokenFd = 1u << 16;

// Fields that later kernels appended to the BPF_PROG_LOAD part of union
// bpf_attr, after core_relo_rec_size (the last one bookworm's header has).
// They are reached by offset in an AttrBuffer, because the 6.1 union may
// end before them.
//   __u32 log_true_size;  (6.4) out: bytes the whole log needs, with its NUL
//   __s32 prog_token_fd;  (6.9) with kFlagTokenFd in prog_flags
inline constexpr unsigned kProgLoadLogTrueSizeOffset =
    offsetof(union bpf_attr, core_relo_rec_size) + sizeof(__u32);
inline constexpr unsigned kProgLoadTokenFdOffset = kProgLoadLogTrueSizeOffset + sizeof(__u32);

// struct token_create (6.9): { __u32 flags; __u32 bpffs_fd; } at offset 0.
inline constexpr unsigned kTokenCreateSize = 2 * sizeof(__u32);

// union bpf_attr with room for what newer kernels appended. The kernel
// reads only the size we pass, so the extra bytes cost nothing; they keep
// stores to appended fields inside our own object.
union AttrBuffer {
  union bpf_attr attr;
  unsigned char bytes[256];
};
static_assert(sizeof(AttrBuffer) >= kProgLoadTokenFdOffset + sizeof(__s32));

}  // namespace tether::sys::uapi

#endif  // TETHER_LIB_SYS_UAPI_COMPAT_H_
