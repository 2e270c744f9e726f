// UAPI values newer than the linux/bpf.h that Debian bookworm ships (6.1).
// The numbers are ABI: they never change once a kernel release has them.
// Whether the running kernel accepts them is a question for the probes.
#ifndef TETHER_LIB_SYS_UAPI_COMPAT_H_
#define TETHER_LIB_SYS_UAPI_COMPAT_H_

#include <linux/bpf.h>

namespace tether::sys::uapi {

// enum bpf_map_type
inline constexpr unsigned kMapTypeCgrpStorage = 32;  // 6.2
inline constexpr unsigned kMapTypeArena = 33;        // 6.9

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

// BTF kinds the 6.1 header may lack are defined in btf code itself.

}  // namespace tether::sys::uapi

#endif  // TETHER_LIB_SYS_UAPI_COMPAT_H_
