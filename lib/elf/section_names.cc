#include "tether/section_names.h"

#include <linux/bpf.h>

#include <cstring>
#include <vector>

#include "absl/strings/match.h"
#include "sys/uapi_compat.h"

namespace tether {
namespace {

namespace uapi = sys::uapi;

// How a table name matches a section name.
enum class Match : uint8_t {
  kExact,   // the whole name
  kTarget,  // the name alone, or "name/<attach target>" (libbpf's "name+")
};

struct SecDef {
  const char* name;
  Match match;
  uint32_t prog_type;
  uint32_t attach_type;
  uint32_t flags;
  bool retprobe;
};

constexpr uint32_t kSleep = kProgFlagSleepable;
constexpr uint32_t kFrags = kProgFlagXdpHasFrags;

// The order matters only between entries where one name is a prefix of
// another under kTarget ("tc/ingress" before "tc"), so specific ones come
// first.
constexpr SecDef kSecDefs[] = {
    {"socket", Match::kExact, BPF_PROG_TYPE_SOCKET_FILTER, 0, 0, false},
    {"sk_reuseport/migrate", Match::kExact, BPF_PROG_TYPE_SK_REUSEPORT,
     BPF_SK_REUSEPORT_SELECT_OR_MIGRATE, 0, false},
    {"sk_reuseport", Match::kExact, BPF_PROG_TYPE_SK_REUSEPORT, BPF_SK_REUSEPORT_SELECT, 0, false},
    {"kprobe.multi", Match::kTarget, BPF_PROG_TYPE_KPROBE, BPF_TRACE_KPROBE_MULTI, 0, false},
    {"kretprobe.multi", Match::kTarget, BPF_PROG_TYPE_KPROBE, BPF_TRACE_KPROBE_MULTI, 0, true},
    {"kprobe.session", Match::kTarget, BPF_PROG_TYPE_KPROBE, uapi::kAttachTraceKprobeSession, 0,
     false},
    {"uprobe.multi.s", Match::kTarget, BPF_PROG_TYPE_KPROBE, uapi::kAttachTraceUprobeMulti, kSleep,
     false},
    {"uretprobe.multi.s", Match::kTarget, BPF_PROG_TYPE_KPROBE, uapi::kAttachTraceUprobeMulti,
     kSleep, true},
    {"uprobe.multi", Match::kTarget, BPF_PROG_TYPE_KPROBE, uapi::kAttachTraceUprobeMulti, 0, false},
    {"uretprobe.multi", Match::kTarget, BPF_PROG_TYPE_KPROBE, uapi::kAttachTraceUprobeMulti, 0,
     true},
    {"kprobe", Match::kTarget, BPF_PROG_TYPE_KPROBE, 0, 0, false},
    {"kretprobe", Match::kTarget, BPF_PROG_TYPE_KPROBE, 0, 0, true},
    {"uprobe.s", Match::kTarget, BPF_PROG_TYPE_KPROBE, 0, kSleep, false},
    {"uretprobe.s", Match::kTarget, BPF_PROG_TYPE_KPROBE, 0, kSleep, true},
    {"uprobe", Match::kTarget, BPF_PROG_TYPE_KPROBE, 0, 0, false},
    {"uretprobe", Match::kTarget, BPF_PROG_TYPE_KPROBE, 0, 0, true},
    {"ksyscall", Match::kTarget, BPF_PROG_TYPE_KPROBE, 0, 0, false},
    {"kretsyscall", Match::kTarget, BPF_PROG_TYPE_KPROBE, 0, 0, true},
    {"usdt.s", Match::kTarget, BPF_PROG_TYPE_KPROBE, 0, kSleep, false},
    {"usdt", Match::kTarget, BPF_PROG_TYPE_KPROBE, 0, 0, false},
    {"tc/ingress", Match::kExact, BPF_PROG_TYPE_SCHED_CLS, uapi::kAttachTcxIngress, 0, false},
    {"tc/egress", Match::kExact, BPF_PROG_TYPE_SCHED_CLS, uapi::kAttachTcxEgress, 0, false},
    {"tcx/ingress", Match::kExact, BPF_PROG_TYPE_SCHED_CLS, uapi::kAttachTcxIngress, 0, false},
    {"tcx/egress", Match::kExact, BPF_PROG_TYPE_SCHED_CLS, uapi::kAttachTcxEgress, 0, false},
    {"tc", Match::kExact, BPF_PROG_TYPE_SCHED_CLS, 0, 0, false},
    {"classifier", Match::kExact, BPF_PROG_TYPE_SCHED_CLS, 0, 0, false},
    {"action", Match::kExact, BPF_PROG_TYPE_SCHED_ACT, 0, 0, false},
    {"netkit/primary", Match::kExact, BPF_PROG_TYPE_SCHED_CLS, uapi::kAttachNetkitPrimary, 0,
     false},
    {"netkit/peer", Match::kExact, BPF_PROG_TYPE_SCHED_CLS, uapi::kAttachNetkitPeer, 0, false},
    {"tracepoint", Match::kTarget, BPF_PROG_TYPE_TRACEPOINT, 0, 0, false},
    {"tp", Match::kTarget, BPF_PROG_TYPE_TRACEPOINT, 0, 0, false},
    {"raw_tracepoint.w", Match::kTarget, BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE, 0, 0, false},
    {"raw_tp.w", Match::kTarget, BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE, 0, 0, false},
    {"raw_tracepoint", Match::kTarget, BPF_PROG_TYPE_RAW_TRACEPOINT, 0, 0, false},
    {"raw_tp", Match::kTarget, BPF_PROG_TYPE_RAW_TRACEPOINT, 0, 0, false},
    {"tp_btf", Match::kTarget, BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP, 0, false},
    {"fentry.s", Match::kTarget, BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY, kSleep, false},
    {"fmod_ret.s", Match::kTarget, BPF_PROG_TYPE_TRACING, BPF_MODIFY_RETURN, kSleep, false},
    {"fexit.s", Match::kTarget, BPF_PROG_TYPE_TRACING, BPF_TRACE_FEXIT, kSleep, false},
    {"fentry", Match::kTarget, BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY, 0, false},
    {"fmod_ret", Match::kTarget, BPF_PROG_TYPE_TRACING, BPF_MODIFY_RETURN, 0, false},
    {"fexit", Match::kTarget, BPF_PROG_TYPE_TRACING, BPF_TRACE_FEXIT, 0, false},
    {"freplace", Match::kTarget, BPF_PROG_TYPE_EXT, 0, 0, false},
    {"lsm.s", Match::kTarget, BPF_PROG_TYPE_LSM, BPF_LSM_MAC, kSleep, false},
    {"lsm_cgroup", Match::kTarget, BPF_PROG_TYPE_LSM, BPF_LSM_CGROUP, 0, false},
    {"lsm", Match::kTarget, BPF_PROG_TYPE_LSM, BPF_LSM_MAC, 0, false},
    {"iter.s", Match::kTarget, BPF_PROG_TYPE_TRACING, BPF_TRACE_ITER, kSleep, false},
    {"iter", Match::kTarget, BPF_PROG_TYPE_TRACING, BPF_TRACE_ITER, 0, false},
    {"syscall", Match::kExact, BPF_PROG_TYPE_SYSCALL, 0, kSleep, false},
    {"xdp.frags/devmap", Match::kExact, BPF_PROG_TYPE_XDP, BPF_XDP_DEVMAP, kFrags, false},
    {"xdp/devmap", Match::kExact, BPF_PROG_TYPE_XDP, BPF_XDP_DEVMAP, 0, false},
    {"xdp.frags/cpumap", Match::kExact, BPF_PROG_TYPE_XDP, BPF_XDP_CPUMAP, kFrags, false},
    {"xdp/cpumap", Match::kExact, BPF_PROG_TYPE_XDP, BPF_XDP_CPUMAP, 0, false},
    {"xdp.frags", Match::kExact, BPF_PROG_TYPE_XDP, BPF_XDP, kFrags, false},
    {"xdp", Match::kExact, BPF_PROG_TYPE_XDP, BPF_XDP, 0, false},
    {"perf_event", Match::kExact, BPF_PROG_TYPE_PERF_EVENT, 0, 0, false},
    {"lwt_in", Match::kExact, BPF_PROG_TYPE_LWT_IN, 0, 0, false},
    {"lwt_out", Match::kExact, BPF_PROG_TYPE_LWT_OUT, 0, 0, false},
    {"lwt_xmit", Match::kExact, BPF_PROG_TYPE_LWT_XMIT, 0, 0, false},
    {"lwt_seg6local", Match::kExact, BPF_PROG_TYPE_LWT_SEG6LOCAL, 0, 0, false},
    {"sockops", Match::kExact, BPF_PROG_TYPE_SOCK_OPS, BPF_CGROUP_SOCK_OPS, 0, false},
    {"sk_skb/stream_parser", Match::kExact, BPF_PROG_TYPE_SK_SKB, BPF_SK_SKB_STREAM_PARSER, 0,
     false},
    {"sk_skb/stream_verdict", Match::kExact, BPF_PROG_TYPE_SK_SKB, BPF_SK_SKB_STREAM_VERDICT, 0,
     false},
    {"sk_skb/verdict", Match::kExact, BPF_PROG_TYPE_SK_SKB, BPF_SK_SKB_VERDICT, 0, false},
    {"sk_skb", Match::kExact, BPF_PROG_TYPE_SK_SKB, 0, 0, false},
    {"sk_msg", Match::kExact, BPF_PROG_TYPE_SK_MSG, BPF_SK_MSG_VERDICT, 0, false},
    {"lirc_mode2", Match::kExact, BPF_PROG_TYPE_LIRC_MODE2, BPF_LIRC_MODE2, 0, false},
    {"flow_dissector", Match::kExact, BPF_PROG_TYPE_FLOW_DISSECTOR, BPF_FLOW_DISSECTOR, 0, false},
    {"cgroup_skb/ingress", Match::kExact, BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_INGRESS, 0,
     false},
    {"cgroup_skb/egress", Match::kExact, BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_EGRESS, 0,
     false},
    {"cgroup/skb", Match::kExact, BPF_PROG_TYPE_CGROUP_SKB, 0, 0, false},
    {"cgroup/sock_create", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET_SOCK_CREATE,
     0, false},
    {"cgroup/sock_release", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCK,
     BPF_CGROUP_INET_SOCK_RELEASE, 0, false},
    {"cgroup/sock", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET_SOCK_CREATE, 0,
     false},
    {"cgroup/post_bind4", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET4_POST_BIND, 0,
     false},
    {"cgroup/post_bind6", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET6_POST_BIND, 0,
     false},
    {"cgroup/bind4", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_BIND, 0,
     false},
    {"cgroup/bind6", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET6_BIND, 0,
     false},
    {"cgroup/connect4", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_CONNECT, 0,
     false},
    {"cgroup/connect6", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET6_CONNECT, 0,
     false},
    {"cgroup/connect_unix", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
     uapi::kAttachCgroupUnixConnect, 0, false},
    {"cgroup/sendmsg4", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UDP4_SENDMSG, 0,
     false},
    {"cgroup/sendmsg6", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UDP6_SENDMSG, 0,
     false},
    {"cgroup/sendmsg_unix", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
     uapi::kAttachCgroupUnixSendmsg, 0, false},
    {"cgroup/recvmsg4", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UDP4_RECVMSG, 0,
     false},
    {"cgroup/recvmsg6", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UDP6_RECVMSG, 0,
     false},
    {"cgroup/recvmsg_unix", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
     uapi::kAttachCgroupUnixRecvmsg, 0, false},
    {"cgroup/getpeername4", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
     BPF_CGROUP_INET4_GETPEERNAME, 0, false},
    {"cgroup/getpeername6", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
     BPF_CGROUP_INET6_GETPEERNAME, 0, false},
    {"cgroup/getpeername_unix", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
     uapi::kAttachCgroupUnixGetpeername, 0, false},
    {"cgroup/getsockname4", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
     BPF_CGROUP_INET4_GETSOCKNAME, 0, false},
    {"cgroup/getsockname6", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
     BPF_CGROUP_INET6_GETSOCKNAME, 0, false},
    {"cgroup/getsockname_unix", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
     uapi::kAttachCgroupUnixGetsockname, 0, false},
    {"cgroup/sysctl", Match::kExact, BPF_PROG_TYPE_CGROUP_SYSCTL, BPF_CGROUP_SYSCTL, 0, false},
    {"cgroup/getsockopt", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCKOPT, BPF_CGROUP_GETSOCKOPT, 0,
     false},
    {"cgroup/setsockopt", Match::kExact, BPF_PROG_TYPE_CGROUP_SOCKOPT, BPF_CGROUP_SETSOCKOPT, 0,
     false},
    {"cgroup/dev", Match::kExact, BPF_PROG_TYPE_CGROUP_DEVICE, BPF_CGROUP_DEVICE, 0, false},
    {"struct_ops.s", Match::kTarget, BPF_PROG_TYPE_STRUCT_OPS, 0, kSleep, false},
    {"struct_ops", Match::kTarget, BPF_PROG_TYPE_STRUCT_OPS, 0, 0, false},
    {"sk_lookup", Match::kExact, BPF_PROG_TYPE_SK_LOOKUP, BPF_SK_LOOKUP, 0, false},
    {"netfilter", Match::kExact, uapi::kProgTypeNetfilter, uapi::kAttachNetfilter, 0, false},
};

SectionInfo Make(const SecDef& d, absl::string_view target) {
  SectionInfo info;
  info.known = true;
  info.prog_type = d.prog_type;
  info.expected_attach_type = d.attach_type;
  info.prog_flags = d.flags;
  info.return_probe = d.retprobe;
  info.attach_to = std::string(target);
  info.matched = d.name;
  return info;
}

}  // namespace

SectionInfo ParseSectionName(absl::string_view section) {
  // The table's names with their lengths, measured once: the two passes
  // below would otherwise strlen every name for every code section.
  static const std::vector<absl::string_view>* const names = [] {
    auto* v = new std::vector<absl::string_view>();
    for (const SecDef& d : kSecDefs) v->push_back(d.name);
    return v;
  }();
  const size_t n = names->size();
  // A name whose first character differs can neither equal nor prefix
  // the section, and that is most of the table: skipped after one compare.
  auto cannot_match = [&](absl::string_view name) {
    return !section.empty() && !name.empty() && name[0] != section[0];
  };
  for (size_t i = 0; i < n; ++i) {
    const SecDef& d = kSecDefs[i];
    absl::string_view name = (*names)[i];
    if (cannot_match(name)) continue;
    if (section == name) return Make(d, "");
    if (d.match == Match::kTarget && section.size() > name.size() && section[name.size()] == '/' &&
        absl::StartsWith(section, name)) {
      return Make(d, section.substr(name.size() + 1));
    }
  }
  // Older objects used free-form suffixes: "socket1", "socket/http",
  // "classifier/ingress", "xdp_drop", "kprobe__sys_open". The longest
  // table name that is a prefix of the section decides, without a target.
  size_t best = n;
  for (size_t i = 0; i < n; ++i) {
    absl::string_view name = (*names)[i];
    if (cannot_match(name)) continue;
    if (absl::StartsWith(section, name) && (best == n || name.size() > (*names)[best].size())) best = i;
  }
  if (best != n) return Make(kSecDefs[best], "");
  return SectionInfo{};
}

}  // namespace tether
