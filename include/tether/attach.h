// Attaching programs to hooks: one function per kind of hook.
//
// Every function that returns a Link makes a BPF link (BPF_LINK_CREATE, or
// BPF_RAW_TRACEPOINT_OPEN where that is the only way), so the attachment
// lasts while the Link or a pin of it lives, and the graph records that
// the link holds the program. When the kernel lacks the kind of link, the
// error is Unimplemented and names the feature and the kernel version that
// brought it (the same status that the matching probe in tether/probe.h
// returns).
//
// AttachSocketFilter, AttachReuseport and AttachSockMap are the legacy
// attachments here: the
// kernel makes no link for them, so the socket or the map holds the program
// until it is detached or the socket or map goes, it cannot be pinned, and
// it shows in the graph as a legacy hook.
#ifndef TETHER_ATTACH_H_
#define TETHER_ATTACH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "tether/link.h"
#include "tether/map.h"
#include "tether/program.h"

namespace tether {

// --- networking ------------------------------------------------------------

// XDP on the interface `ifindex` of the calling thread's network
// namespace. flags: XDP_FLAGS_SKB_MODE / XDP_FLAGS_DRV_MODE, or 0.
absl::StatusOr<Link> AttachXdp(const Program& program, int ifindex, uint32_t flags = 0);

enum class TcxDirection { kIngress, kEgress };
// tcx (6.6): a sched_cls program on an interface's ingress or egress,
// without a qdisc. Appends after the programs already there.
absl::StatusOr<Link> AttachTcx(const Program& program, int ifindex, TcxDirection direction);

// A cgroup program (BPF_CGROUP_INET_INGRESS, BPF_CGROUP_INET_SOCK_CREATE,
// ...) on the cgroup v2 directory open at `cgroup_fd`, or at `cgroup_dir`.
absl::StatusOr<Link> AttachCgroup(const Program& program, int cgroup_fd, uint32_t attach_type);
absl::StatusOr<Link> AttachCgroup(const Program& program, const std::string& cgroup_dir,
                                  uint32_t attach_type);

// A network-namespace program (BPF_SK_LOOKUP, BPF_FLOW_DISSECTOR) on the
// namespace open at `netns_fd` (e.g. /proc/self/ns/net).
absl::StatusOr<Link> AttachNetns(const Program& program, int netns_fd, uint32_t attach_type);

// A netfilter hook (6.4): the program (SEC("netfilter"), returning NF_DROP
// or NF_ACCEPT) runs on every packet that reaches `hook` of the protocol
// family in the calling thread's network namespace, in the order
// `priority` gives among the namespace's other hooks.
struct NetfilterHook {
  uint32_t family = 2;    // NFPROTO_IPV4 (2) or NFPROTO_IPV6 (10)
  uint32_t hook = 1;      // NF_INET_PRE_ROUTING (0), LOCAL_IN (1), FORWARD (2), LOCAL_OUT (3), POST_ROUTING (4)
  int32_t priority = 0;   // NF_IP_PRI_*; the kernel refuses NF_IP_PRI_FIRST and NF_IP_PRI_LAST
  bool defragment = false;  // BPF_F_NETFILTER_IP_DEFRAG (6.6): see reassembled packets
};
absl::StatusOr<Link> AttachNetfilter(const Program& program, const NetfilterHook& hook);

// SO_ATTACH_BPF: a socket filter on the socket `sock_fd`. No link: the
// socket holds the program, and the graph records a legacy hook.
absl::Status AttachSocketFilter(const Program& program, int sock_fd);
// SO_DETACH_BPF, and forgets the hook in the graph.
absl::Status DetachSocketFilter(const Program& program, int sock_fd);

// SO_ATTACH_REUSEPORT_EBPF: an sk_reuseport program on the SO_REUSEPORT
// group of the bound socket `sock_fd`; it picks the group's socket for each
// incoming packet or connection (bpf_sk_select_reuseport on a
// reuseport_sockarray). No link: the group holds the program until it is
// detached or replaced or its last socket closes, and the graph records a
// legacy hook.
absl::Status AttachReuseport(const Program& program, int sock_fd);
// SO_DETACH_REUSEPORT_BPF (5.3), and forgets the hook in the graph.
absl::Status DetachReuseport(const Program& program, int sock_fd);

// sk_skb and sk_msg programs on a sockmap or sockhash, which then runs them
// on the sockets it holds: attach_type BPF_SK_SKB_STREAM_PARSER,
// BPF_SK_SKB_STREAM_VERDICT, BPF_SK_SKB_VERDICT or BPF_SK_MSG_VERDICT.
// Attach before inserting sockets: a socket takes the map's programs when it
// goes in. BPF_PROG_ATTACH, no link (sockmap links are 6.10): the map holds
// the program until DetachSockMap or until the map is freed, and the graph
// records a legacy hook. Attaching again with the same attach type
// replaces the program.
absl::Status AttachSockMap(const Program& program, const Map& map, uint32_t attach_type);
absl::Status DetachSockMap(const Program& program, const Map& map, uint32_t attach_type);

// --- tracing -----------------------------------------------------------------

// A tracepoint program on tracefs event category/name (e.g. "syscalls",
// "sys_enter_getpid"), through a perf event and a BPF_PERF_EVENT link.
// Mounts tracefs at /sys/kernel/tracing if it is not mounted.
absl::StatusOr<Link> AttachTracepoint(const Program& program, const std::string& category,
                                      const std::string& name);

// kprobe programs on a kernel function, through the kprobe PMU.
absl::StatusOr<Link> AttachKprobe(const Program& program, const std::string& symbol,
                                  uint64_t offset = 0);
absl::StatusOr<Link> AttachKretprobe(const Program& program, const std::string& symbol);
// kprobe.multi (5.18): one link on many functions. The program must be
// loaded with expected_attach_type BPF_TRACE_KPROBE_MULTI.
absl::StatusOr<Link> AttachKprobeMulti(const Program& program,
                                       absl::Span<const std::string> symbols,
                                       bool retprobe = false);

// Where in a user-space binary a uprobe goes: at function `symbol` (plus
// `offset`), or, with no symbol, at file offset `offset`.
struct UprobeTarget {
  std::string symbol;
  uint64_t offset = 0;
};
// uprobe programs (kprobe type) on `binary`; pid -1: every process.
absl::StatusOr<Link> AttachUprobe(const Program& program, const std::string& binary,
                                  const UprobeTarget& target, int pid = -1);
absl::StatusOr<Link> AttachUretprobe(const Program& program, const std::string& binary,
                                     const UprobeTarget& target, int pid = -1);
// uprobe.multi (6.6): one link on many places in one binary. The program
// must be loaded with expected_attach_type BPF_TRACE_UPROBE_MULTI (48).
absl::StatusOr<Link> AttachUprobeMulti(const Program& program, const std::string& binary,
                                       absl::Span<const UprobeTarget> targets,
                                       bool retprobe = false, int pid = -1);

// A raw_tracepoint program on the tracepoint `name` ("sys_enter"), through
// BPF_RAW_TRACEPOINT_OPEN: no kernel takes a raw tracepoint by name through
// BPF_LINK_CREATE. Its BTF-typed sibling, tp_btf, takes both (see
// AttachTracing).
absl::StatusOr<Link> AttachRawTracepoint(const Program& program, const std::string& name);

// The vmlinux BTF id a tracing program is loaded against
// (ProgramLoadOptions::attach_btf_id) for `attach_type` and the target's
// name: a tracepoint for BPF_TRACE_RAW_TP ("sys_enter"), a kernel function
// for BPF_TRACE_FENTRY/FEXIT/BPF_MODIFY_RETURN, an LSM hook for BPF_LSM_MAC
// ("file_open"), an iterator target for BPF_TRACE_ITER ("bpf_map_elem").
absl::StatusOr<uint32_t> TracingTargetBtfId(uint32_t attach_type, const std::string& name);
// Which command attaches a tracing program: BPF_LINK_CREATE (tp_btf 6.10,
// trampolines 5.19), BPF_RAW_TRACEPOINT_OPEN with no name (5.5), or kAuto:
// LINK_CREATE, falling back to RAW_TRACEPOINT_OPEN on kernels without it.
enum class TracingAttachApi { kAuto, kRawTracepointOpen, kLinkCreate };
// Attaches a tracing program (tp_btf, fentry, fexit, fmod_ret, lsm) at the
// target it was loaded against. `attach_type` is its expected_attach_type.
absl::StatusOr<Link> AttachTracing(const Program& program, uint32_t attach_type,
                                   TracingAttachApi api = TracingAttachApi::kAuto);

// --- sampling ----------------------------------------------------------------

// A perf_event program (SEC("perf_event")) on a sampling event, as
// profilers attach: it runs with the interrupted registers each time the
// event fires. The default is the CPU clock (PERF_TYPE_SOFTWARE,
// PERF_COUNT_SW_CPU_CLOCK) at `frequency` samples a second; set `period`
// instead (with frequency 0) to fire every `period` events.
struct PerfSampling {
  uint32_t type = 1;        // PERF_TYPE_SOFTWARE
  uint64_t config = 0;      // PERF_COUNT_SW_CPU_CLOCK
  uint64_t frequency = 99;  // samples a second
  uint64_t period = 0;
};
// On one CPU, for every process (pid -1) or one. A BPF_PERF_EVENT link
// (5.15) holds the event; dropping the link stops the sampling.
absl::StatusOr<Link> AttachPerfEvent(const Program& program, const PerfSampling& sampling, int cpu,
                                     int pid = -1);
// On every online CPU, one link each, all or nothing.
absl::StatusOr<std::vector<Link>> AttachPerfEventPerCpu(const Program& program,
                                                        const PerfSampling& sampling);

// --- iterators -----------------------------------------------------------------

struct IterOptions {
  // For iterators over one map (bpf_map_elem, sockmap...): the map.
  int map_fd = -1;
};
// Makes an iterator link for a BPF_TRACE_ITER program.
absl::StatusOr<Link> AttachIter(const Program& program, const IterOptions& options = {});
// Runs the iterator once (BPF_ITER_CREATE) and returns all it wrote.
absl::StatusOr<std::string> ReadIter(const Link& iter_link);

}  // namespace tether

#endif  // TETHER_ATTACH_H_
