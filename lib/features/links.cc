// HaveLinkKind: each kind of attachment, probed by a small function of its
// own, listed with its name and the release that brought it.
#include <sched.h>
#include <unistd.h>

#include <linux/btf.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "btf/btf_writer.h"
#include "btf/kernel_btf.h"
#include "sys/uapi_compat.h"
#include "tether/btf.h"
#include "features/features_internal.h"

namespace tether::probe {
namespace {

struct LinkFeature {
  LinkKind kind;
  const char* name;
  const char* since;
  absl::Status (*probe)(LinkKind kind);
};

absl::Status Missing(LinkKind kind, absl::string_view detail = "") {
  return absl::UnimplementedError(absl::StrFormat(
      "%s: not supported by kernel %s (needs %s%s%s)", LinkKindName(kind), KernelRelease(),
      LinkKindSince(kind), detail.empty() ? "" : "; ", detail));
}

// What a LINK_CREATE's errno says: the kernel does not know the attach
// type (or cannot do it), or something else went wrong.
absl::Status MissingOr(LinkKind kind, const absl::Status& link_failure) {
  int err = sys::StatusErrno(link_failure);
  if (err == EINVAL || err == EOPNOTSUPP || err == sys::uapi::kEnotsupp) return Missing(kind);
  return link_failure;
}

// A program for a link probe; a kernel that does not know its type (or
// attach type) says EINVAL, which is the link kind missing too.
absl::StatusOr<sys::Fd> ProgramForLink(LinkKind kind, uint32_t prog_type, uint32_t attach_type,
                                       absl::string_view detail_if_unknown = "") {
  auto prog = MinimalProgram(prog_type, attach_type);
  if (!prog.ok() && sys::StatusErrno(prog.status()) == EINVAL) {
    return Missing(kind, detail_if_unknown);
  }
  return prog;
}

// Runs `fn` on a thread of its own in a fresh network namespace, so that
// a probe can attach to that namespace's loopback without touching the
// host's interfaces. The namespace goes when the thread ends.
absl::Status InPrivateNetns(const std::function<absl::Status()>& fn) {
  absl::Status result;
  std::thread t([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      // Not the kernel refusing BPF: the probe has no namespace to work in.
      result = absl::FailedPreconditionError(
          absl::StrCat("probe: unshare(CLONE_NEWNET): ", strerror(errno)));
      return;
    }
    result = fn();
  });
  t.join();
  return result;
}

// A LINK_CREATE whose target is fd -1: kernels that know the attach type
// get as far as looking the target up (EBADF); others stop at EINVAL.
absl::Status LinkCreateReachesTarget(LinkKind kind, uint32_t prog_type, uint32_t attach_type) {
  TETHER_ASSIGN_OR_RETURN(
      sys::Fd prog, ProgramForLink(kind, prog_type, attach_type, "the program type is unknown"));
  sys::LinkCreateRequest req;
  req.prog_fd = prog.get();
  req.target_fd = -1;
  req.attach_type = attach_type;
  auto link = sys::LinkCreate(req);
  if (link.ok()) return absl::OkStatus();
  int err = sys::StatusErrno(link.status());
  if (err == EBADF || err == ENOENT) return absl::OkStatus();
  return MissingOr(kind, link.status());
}

// XDP and tcx: a real link on the loopback of a private namespace.
absl::Status ProbeDeviceLink(LinkKind kind) {
  return InPrivateNetns([kind]() -> absl::Status {
    bool tcx = kind == LinkKind::kTcx;
    uint32_t attach_type = tcx ? sys::uapi::kAttachTcxIngress : uint32_t{BPF_XDP};
    TETHER_ASSIGN_OR_RETURN(
        sys::Fd prog, MinimalProgram(tcx ? BPF_PROG_TYPE_SCHED_CLS : BPF_PROG_TYPE_XDP,
                                     attach_type, 0, tcx ? 0 : XDP_PASS));
    sys::LinkCreateRequest req;
    req.prog_fd = prog.get();
    req.target_fd = 1;  // loopback, always ifindex 1 in a new namespace
    req.attach_type = attach_type;
    auto link = sys::LinkCreate(req);
    if (link.ok()) return absl::OkStatus();
    return MissingOr(kind, link.status());
  });
}

absl::Status ProbeCgroupLink(LinkKind kind) {
  return LinkCreateReachesTarget(kind, BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_INGRESS);
}

absl::Status ProbePerfEventLink(LinkKind kind) {
  return LinkCreateReachesTarget(kind, BPF_PROG_TYPE_TRACEPOINT, BPF_PERF_EVENT);
}

absl::Status ProbeSkLookupLink(LinkKind kind) {
  return LinkCreateReachesTarget(kind, BPF_PROG_TYPE_SK_LOOKUP, BPF_SK_LOOKUP);
}

absl::Status ProbeFlowDissectorLink(LinkKind kind) {
  return LinkCreateReachesTarget(kind, BPF_PROG_TYPE_FLOW_DISSECTOR, BPF_FLOW_DISSECTOR);
}

// A real netfilter hook in a private namespace, accepting every packet.
absl::Status ProbeNetfilterLink(LinkKind kind) {
  return InPrivateNetns([kind]() -> absl::Status {
    TETHER_ASSIGN_OR_RETURN(sys::Fd prog,
                            ProgramForLink(kind, sys::uapi::kProgTypeNetfilter,
                                           sys::uapi::kAttachNetfilter, "the program type is unknown"));
    sys::uapi::NetfilterLinkAttr nf;
    nf.pf = 2;        // NFPROTO_IPV4
    nf.hooknum = 3;   // NF_INET_LOCAL_OUT
    nf.priority = -100;
    sys::LinkCreateRequest req;
    req.prog_fd = prog.get();
    req.target_fd = 0;
    req.attach_type = sys::uapi::kAttachNetfilter;
    req.extra = &nf;
    req.extra_size = sizeof(nf);
    auto link = sys::LinkCreate(req);
    if (link.ok()) return absl::OkStatus();
    return MissingOr(kind, link.status());
  });
}

absl::Status ProbeKprobeLink(LinkKind) {
  TETHER_RETURN_IF_ERROR(HaveKprobes());
  return HaveLinkKind(LinkKind::kPerfEvent);
}

absl::Status ProbeUprobeLink(LinkKind kind) {
  if (access("/sys/bus/event_source/devices/uprobe/type", R_OK) != 0) {
    return Missing(kind, "CONFIG_UPROBE_EVENTS; no /sys/bus/event_source/devices/uprobe");
  }
  return HaveLinkKind(LinkKind::kPerfEvent);
}

absl::Status ProbeKprobeMultiLink(LinkKind kind) {
  TETHER_ASSIGN_OR_RETURN(sys::Fd prog,
                          ProgramForLink(kind, BPF_PROG_TYPE_KPROBE, BPF_TRACE_KPROBE_MULTI));
  // A real attachment to a function every kernel has, dropped at once.
  const char* sym = "vprintk";
  uint64_t syms = reinterpret_cast<uintptr_t>(&sym);
  struct {
    uint32_t flags, cnt;
    uint64_t syms, addrs, cookies;
  } multi = {0, 1, syms, 0, 0};
  sys::LinkCreateRequest req;
  req.prog_fd = prog.get();
  req.target_fd = 0;
  req.attach_type = BPF_TRACE_KPROBE_MULTI;
  req.extra = &multi;
  req.extra_size = sizeof(multi);
  auto link = sys::LinkCreate(req);
  if (link.ok()) return absl::OkStatus();
  int err = sys::StatusErrno(link.status());
  // The kernel got as far as resolving the symbol: the link kind exists.
  if (err == ENOENT || err == ESRCH) return absl::OkStatus();
  if (err == EINVAL || err == EOPNOTSUPP || err == sys::uapi::kEnotsupp) {
    return Missing(kind, "and CONFIG_FPROBE");
  }
  return link.status();
}

absl::Status ProbeUprobeMultiLink(LinkKind kind) {
  TETHER_ASSIGN_OR_RETURN(
      sys::Fd prog,
      ProgramForLink(kind, BPF_PROG_TYPE_KPROBE, sys::uapi::kAttachTraceUprobeMulti));
  // "/" is not a regular file: a kernel with uprobe.multi says EBADF
  // after parsing everything else; older ones reject the attach type.
  uint64_t offset = 0;
  struct {
    uint64_t path, offsets, ref_ctr_offsets, cookies;
    uint32_t cnt, flags, pid;
  } multi = {reinterpret_cast<uintptr_t>("/"), reinterpret_cast<uintptr_t>(&offset), 0, 0, 1, 0, 0};
  sys::LinkCreateRequest req;
  req.prog_fd = prog.get();
  req.target_fd = 0;
  req.attach_type = sys::uapi::kAttachTraceUprobeMulti;
  req.extra = &multi;
  req.extra_size = sizeof(multi);
  auto link = sys::LinkCreate(req);
  int err = link.ok() ? 0 : sys::StatusErrno(link.status());
  if (err == 0 || err == EBADF) return absl::OkStatus();
  return MissingOr(kind, link.status());
}

absl::Status ProbeRawTracepoint(LinkKind kind) {
  absl::Status type = HaveProgramType(BPF_PROG_TYPE_RAW_TRACEPOINT);
  if (absl::IsUnimplemented(type)) return Missing(kind);
  return type;
}

absl::Status ProbeTpBtfLinkCreate(LinkKind kind) {
  TETHER_RETURN_IF_ERROR(HaveLinkKind(LinkKind::kTpBtf));
  TETHER_ASSIGN_OR_RETURN(uint32_t id,
                          detail::VmlinuxBtfTypeId("btf_trace_sys_enter", BTF_KIND_TYPEDEF));
  TETHER_ASSIGN_OR_RETURN(sys::Fd prog,
                          MinimalProgram(BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP, id));
  // A real attachment, dropped at once: older kernels send tp_btf to
  // the trampoline code, which refuses BPF_TRACE_RAW_TP with EINVAL.
  sys::LinkCreateRequest req;
  req.prog_fd = prog.get();
  req.target_fd = 0;
  req.attach_type = BPF_TRACE_RAW_TP;
  auto link = sys::LinkCreate(req);
  if (link.ok()) return absl::OkStatus();
  return MissingOr(kind, link.status());
}

absl::Status ProbeTrampolineLink(LinkKind kind) {
  absl::Status st = HaveTrampolines();
  if (absl::IsUnimplemented(st)) return Missing(kind, st.message());
  return st;
}

// tp_btf and iterators: a tracing program loads against the kernel BTF
// type it hooks.
absl::Status ProbeBtfTracingProgram(LinkKind kind, uint32_t attach_type,
                                    const char* target, uint32_t target_kind) {
  absl::Status btf = HaveVmlinuxBtf();
  if (!btf.ok()) return Missing(kind, btf.message());
  auto id = detail::VmlinuxBtfTypeId(target, target_kind);
  if (!id.ok()) return Missing(kind, id.status().message());
  auto prog = MinimalProgram(BPF_PROG_TYPE_TRACING, attach_type, *id);
  if (prog.ok()) return absl::OkStatus();
  int err = sys::StatusErrno(prog.status());
  if (err == EINVAL || err == EOPNOTSUPP || err == sys::uapi::kEnotsupp) {
    return Missing(kind, absl::StrCat("this kernel cannot load them: ",
                                      prog.status().message().substr(0, 200)));
  }
  return RefusedOr(prog.status(), LinkKindName(kind), LinkKindSince(kind),
                   "BPF_PROG_LOAD of a minimal program");
}

absl::Status ProbeTpBtf(LinkKind kind) {
  return ProbeBtfTracingProgram(kind, BPF_TRACE_RAW_TP, "btf_trace_sys_enter", BTF_KIND_TYPEDEF);
}

absl::Status ProbeIter(LinkKind kind) {
  return ProbeBtfTracingProgram(kind, BPF_TRACE_ITER, "bpf_iter_bpf_map", BTF_KIND_FUNC);
}

// A struct_ops map made with BPF_F_LINK: kernels before 6.4 refuse the
// flag (EINVAL); the link itself needs a registered value, which is the
// loader's business.
absl::Status ProbeStructOpsLink(LinkKind kind) {
  TETHER_RETURN_IF_ERROR(HaveMapType(BPF_MAP_TYPE_STRUCT_OPS));
  TETHER_ASSIGN_OR_RETURN(uint32_t value_id,
                          detail::VmlinuxBtfTypeId("bpf_struct_ops_tcp_congestion_ops",
                                                   BTF_KIND_STRUCT));
  auto kernel = KernelBtf();
  if (!kernel.ok()) return kernel.status();
  auto size = (*kernel)->SizeOf(value_id);
  if (!size.ok()) return size.status();
  btf::BtfWriter int_only;
  int_only.Int();
  TETHER_ASSIGN_OR_RETURN(sys::BtfLoadResult btf, sys::BtfLoad(int_only.Bytes()));
  sys::MapCreateRequest req = MinimalMap(BPF_MAP_TYPE_STRUCT_OPS);
  req.value_size = static_cast<uint32_t>(*size);
  req.btf_vmlinux_value_type_id = value_id;
  req.btf_fd = btf.fd.get();
  req.flags = sys::uapi::kMapFLink;
  auto map = sys::MapCreate(req);
  if (map.ok()) return absl::OkStatus();
  return MissingOr(kind, map.status());
}

constexpr LinkFeature kLinkFeatures[] = {
    {LinkKind::kXdp, "XDP links", "5.9", ProbeDeviceLink},
    {LinkKind::kTcx, "tcx links", "6.6", ProbeDeviceLink},
    {LinkKind::kCgroup, "cgroup links", "5.7", ProbeCgroupLink},
    {LinkKind::kPerfEvent, "perf_event links", "5.15", ProbePerfEventLink},
    {LinkKind::kKprobe, "kprobe links", "5.15 and CONFIG_KPROBES", ProbeKprobeLink},
    {LinkKind::kKprobeMulti, "kprobe.multi links", "5.18", ProbeKprobeMultiLink},
    {LinkKind::kUprobe, "uprobe links", "5.15", ProbeUprobeLink},
    {LinkKind::kUprobeMulti, "uprobe.multi links", "6.6", ProbeUprobeMultiLink},
    {LinkKind::kRawTracepoint, "raw tracepoints", "4.17", ProbeRawTracepoint},
    {LinkKind::kTpBtfLinkCreate, "tp_btf links through BPF_LINK_CREATE", "6.10",
     ProbeTpBtfLinkCreate},
    {LinkKind::kTpBtf, "tp_btf (BTF raw tracepoint) programs", "5.5", ProbeTpBtf},
    {LinkKind::kTrampoline, "trampoline programs (fentry/fexit/fmod_ret/freplace/lsm)", "5.5",
     ProbeTrampolineLink},
    {LinkKind::kIter, "BPF iterators", "5.8", ProbeIter},
    {LinkKind::kNetnsSkLookup, "sk_lookup netns links", "5.9", ProbeSkLookupLink},
    {LinkKind::kNetnsFlowDissector, "flow_dissector netns links", "5.8", ProbeFlowDissectorLink},
    {LinkKind::kNetfilter, "netfilter links", "6.4", ProbeNetfilterLink},
    {LinkKind::kStructOps, "struct_ops links", "6.4", ProbeStructOpsLink},
};

const LinkFeature* FindLinkFeature(LinkKind kind) {
  for (const LinkFeature& f : kLinkFeatures) {
    if (f.kind == kind) return &f;
  }
  return nullptr;
}

}  // namespace

const char* LinkKindName(LinkKind kind) {
  const LinkFeature* f = FindLinkFeature(kind);
  return f != nullptr ? f->name : "unknown link kind";
}

const char* LinkKindSince(LinkKind kind) {
  const LinkFeature* f = FindLinkFeature(kind);
  return f != nullptr ? f->since : "?";
}

absl::Status HaveLinkKind(LinkKind kind) {
  return Cached(absl::StrCat("link:", LinkKindName(kind)), [kind] {
    const LinkFeature* f = FindLinkFeature(kind);
    absl::Status st = f != nullptr ? f->probe(kind) : absl::InvalidArgumentError("unknown link kind");
    return RefusedOr(st, LinkKindName(kind), LinkKindSince(kind),
                     "a minimal program or link of this kind");
  });
}

}  // namespace tether::probe
