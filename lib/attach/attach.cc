#include "tether/attach.h"

#include <fcntl.h>
#include <linux/btf.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "elf/elf_symbols_internal.h"
#include "sys/perf_event_internal.h"
#include "sys/bpf.h"
#include "sys/cpus.h"
#include "sys/uapi_compat.h"
#include "tether/probe.h"
#include "btf/kernel_btf.h"
#include "base/status_macros.h"

namespace tether {
namespace {

using probe::LinkKind;

std::string ProgLabel(const Program& p) {
  return absl::StrFormat("program '%s' (id %u)", p.name(), p.id());
}

absl::Status CheckProgram(const Program& program, absl::string_view op) {
  if (!program) return absl::InvalidArgumentError(absl::StrCat(op, ": the program handle is empty"));
  return absl::OkStatus();
}

// A failed attach whose errno could mean "the kernel has no such thing":
// when the probe for the kind agrees, its Unimplemented (which names the
// version) is the better error.
absl::Status AttachError(const absl::Status& st, LinkKind kind) {
  int err = sys::StatusErrno(st);
  if (err == EINVAL || err == EOPNOTSUPP || err == sys::uapi::kEnotsupp || err == ENOSYS || err == EPERM ||
      err == ENOENT) {
    absl::Status have = probe::HaveLinkKind(kind);
    if (absl::IsUnimplemented(have)) {
      return absl::UnimplementedError(absl::StrCat(st.message(), ": ", have.message()));
    }
  }
  return st;
}

// LINK_CREATE plus the Link around its fd, with errors that name the
// program, the hook and the command.
absl::StatusOr<Link> CreateLink(const Program& program, const sys::LinkCreateRequest& req,
                                const std::string& hook, LinkKind kind) {
  auto fd = sys::LinkCreate(req);
  if (!fd.ok()) {
    absl::Status st = sys::ErrnoStatus(sys::StatusErrno(fd.status()),
                                       absl::StrCat(ProgLabel(program), " on ", hook),
                                       "BPF_LINK_CREATE");
    return AttachError(st, kind);
  }
  return Link::FromFd(fd->Release(), hook);
}

absl::StatusOr<Link> PerfEventLink(const Program& program, absl::StatusOr<sys::Fd> event,
                                   const std::string& hook, LinkKind kind) {
  if (!event.ok()) {
    absl::Status st(event.status().code(),
                    absl::StrCat(ProgLabel(program), " on ", hook, ": ", event.status().message()));
    return AttachError(st, kind);
  }
  sys::LinkCreateRequest req;
  req.prog_fd = program.fd();
  req.target_fd = event->get();
  req.attach_type = BPF_PERF_EVENT;
  // The link holds the perf event's file, so our fd to it can go now.
  return CreateLink(program, req, hook, kind);
}

absl::StatusOr<uint64_t> ResolveUprobe(const std::string& binary, const UprobeTarget& t) {
  if (t.symbol.empty()) return t.offset;
  auto off = detail::ElfSymbolFileOffset(binary, t.symbol);
  if (!off.ok()) return off.status();
  return *off + t.offset;
}

std::string UprobeHook(bool ret, const std::string& binary, const UprobeTarget& t) {
  return absl::StrCat(ret ? "uretprobe " : "uprobe ", binary, ":",
                      t.symbol.empty() ? absl::StrCat("0x", absl::Hex(t.offset))
                                       : (t.offset ? absl::StrCat(t.symbol, "+", t.offset)
                                                   : t.symbol));
}

absl::StatusOr<Link> Uprobe(const Program& program, const std::string& binary,
                            const UprobeTarget& target, int pid, bool ret) {
  std::string hook = UprobeHook(ret, binary, target);
  TETHER_RETURN_IF_ERROR(CheckProgram(program, hook));
  auto off = ResolveUprobe(binary, target);
  if (!off.ok()) return absl::Status(off.status().code(), absl::StrCat(ProgLabel(program), " on ", hook,
                                                                       ": ", off.status().message()));
  return PerfEventLink(program, detail::OpenUprobeEvent(binary, *off, ret, pid), hook,
                       LinkKind::kUprobe);
}

}  // namespace

absl::StatusOr<Link> AttachXdp(const Program& program, int ifindex, uint32_t flags) {
  std::string hook = absl::StrCat("xdp ifindex ", ifindex);
  TETHER_RETURN_IF_ERROR(CheckProgram(program, hook));
  sys::LinkCreateRequest req;
  req.prog_fd = program.fd();
  req.target_fd = ifindex;
  req.attach_type = BPF_XDP;
  req.flags = flags;
  return CreateLink(program, req, hook, LinkKind::kXdp);
}

absl::StatusOr<Link> AttachTcx(const Program& program, int ifindex, TcxDirection direction) {
  bool ingress = direction == TcxDirection::kIngress;
  std::string hook = absl::StrCat("tcx ", ingress ? "ingress" : "egress", " ifindex ", ifindex);
  TETHER_RETURN_IF_ERROR(CheckProgram(program, hook));
  sys::LinkCreateRequest req;
  req.prog_fd = program.fd();
  req.target_fd = ifindex;
  req.attach_type = ingress ? sys::uapi::kAttachTcxIngress : sys::uapi::kAttachTcxEgress;
  return CreateLink(program, req, hook, LinkKind::kTcx);
}

absl::StatusOr<Link> AttachCgroup(const Program& program, int cgroup_fd, uint32_t attach_type) {
  std::string hook = absl::StrCat("cgroup fd ", cgroup_fd, " attach type ", attach_type);
  TETHER_RETURN_IF_ERROR(CheckProgram(program, hook));
  sys::LinkCreateRequest req;
  req.prog_fd = program.fd();
  req.target_fd = cgroup_fd;
  req.attach_type = attach_type;
  return CreateLink(program, req, hook, LinkKind::kCgroup);
}

absl::StatusOr<Link> AttachCgroup(const Program& program, const std::string& cgroup_dir,
                                  uint32_t attach_type) {
  std::string hook = absl::StrCat("cgroup ", cgroup_dir, " attach type ", attach_type);
  TETHER_RETURN_IF_ERROR(CheckProgram(program, hook));
  sys::Fd dir(open(cgroup_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) return sys::ErrnoStatus(errno, absl::StrCat(ProgLabel(program), " on ", hook), "open");
  sys::LinkCreateRequest req;
  req.prog_fd = program.fd();
  req.target_fd = dir.get();
  req.attach_type = attach_type;
  return CreateLink(program, req, hook, LinkKind::kCgroup);
}

absl::StatusOr<Link> AttachNetns(const Program& program, int netns_fd, uint32_t attach_type) {
  std::string hook = absl::StrCat("netns fd ", netns_fd, " attach type ", attach_type);
  TETHER_RETURN_IF_ERROR(CheckProgram(program, hook));
  sys::LinkCreateRequest req;
  req.prog_fd = program.fd();
  req.target_fd = netns_fd;
  req.attach_type = attach_type;
  return CreateLink(program, req, hook,
                    attach_type == BPF_SK_LOOKUP ? LinkKind::kNetnsSkLookup
                                                 : LinkKind::kNetnsFlowDissector);
}

absl::StatusOr<Link> AttachNetfilter(const Program& program, const NetfilterHook& nf) {
  std::string hook = absl::StrFormat("netfilter family %u hook %u priority %d", nf.family, nf.hook,
                                     nf.priority);
  TETHER_RETURN_IF_ERROR(CheckProgram(program, hook));
  sys::uapi::NetfilterLinkAttr attr;
  attr.pf = nf.family;
  attr.hooknum = nf.hook;
  attr.priority = nf.priority;
  attr.flags = nf.defragment ? sys::uapi::kNetfilterIpDefrag : 0;
  sys::LinkCreateRequest req;
  req.prog_fd = program.fd();
  req.target_fd = 0;  // the hook is in the calling thread's namespace
  req.attach_type = sys::uapi::kAttachNetfilter;
  req.extra = &attr;
  req.extra_size = sizeof(attr);
  return CreateLink(program, req, hook, LinkKind::kNetfilter);
}

absl::StatusOr<Link> AttachPerfEvent(const Program& program, const PerfSampling& sampling, int cpu,
                                     int pid) {
  std::string hook = absl::StrFormat("perf event type %u config %u cpu %d%s", sampling.type,
                                     sampling.config, cpu, pid >= 0 ? absl::StrCat(" pid ", pid) : "");
  TETHER_RETURN_IF_ERROR(CheckProgram(program, hook));
  return PerfEventLink(program,
                       detail::OpenSamplingEvent(sampling.type, sampling.config, sampling.period,
                                                 sampling.frequency, cpu, pid),
                       hook, LinkKind::kPerfEvent);
}

absl::StatusOr<std::vector<Link>> AttachPerfEventPerCpu(const Program& program,
                                                        const PerfSampling& sampling) {
  std::vector<uint32_t> cpus = detail::ReadCpuList("/sys/devices/system/cpu/online");
  if (cpus.empty()) {
    return absl::InternalError(
        absl::StrCat(ProgLabel(program), ": no online CPU in /sys/devices/system/cpu/online"));
  }
  std::vector<Link> links;
  links.reserve(cpus.size());
  for (uint32_t cpu : cpus) {
    // A failure drops the links made so far with `links`: all or nothing.
    TETHER_ASSIGN_OR_RETURN(Link link, AttachPerfEvent(program, sampling, static_cast<int>(cpu)));
    links.push_back(std::move(link));
  }
  return links;
}

namespace {
std::string SocketName(int sock_fd) {
  // The inode names the socket for as long as it lives; the fd number may
  // be reused by then.
  char target[64] = {0};
  std::string proc = absl::StrCat("/proc/self/fd/", sock_fd);
  ssize_t n = readlink(proc.c_str(), target, sizeof(target) - 1);
  return absl::StrCat(n > 0 ? std::string(target, n) : "socket", " (pid ", getpid(), ")");
}
std::string SocketHook(int sock_fd) { return absl::StrCat("SO_ATTACH_BPF on ", SocketName(sock_fd)); }
}  // namespace

absl::Status AttachSocketFilter(const Program& program, int sock_fd) {
  TETHER_RETURN_IF_ERROR(CheckProgram(program, "SO_ATTACH_BPF"));
  int prog_fd = program.fd();
  if (setsockopt(sock_fd, SOL_SOCKET, SO_ATTACH_BPF, &prog_fd, sizeof(prog_fd)) != 0) {
    return sys::ErrnoStatus(errno, absl::StrCat(ProgLabel(program), " on socket fd ", sock_fd),
                            "setsockopt(SO_ATTACH_BPF)");
  }
  program.NoteLegacyHook(SocketHook(sock_fd));
  return absl::OkStatus();
}

absl::Status DetachSocketFilter(const Program& program, int sock_fd) {
  TETHER_RETURN_IF_ERROR(CheckProgram(program, "SO_DETACH_BPF"));
  std::string hook = SocketHook(sock_fd);
  int unused = 0;
  if (setsockopt(sock_fd, SOL_SOCKET, SO_DETACH_BPF, &unused, sizeof(unused)) != 0) {
    return sys::ErrnoStatus(errno, absl::StrCat(ProgLabel(program), " on socket fd ", sock_fd),
                            "setsockopt(SO_DETACH_BPF)");
  }
  program.ForgetLegacyHook(hook);
  return absl::OkStatus();
}

namespace {

const char* SockMapAttachName(uint32_t attach_type) {
  switch (attach_type) {
    case BPF_SK_SKB_STREAM_PARSER: return "sk_skb/stream_parser";
    case BPF_SK_SKB_STREAM_VERDICT: return "sk_skb/stream_verdict";
    case BPF_SK_SKB_VERDICT: return "sk_skb/verdict";
    case BPF_SK_MSG_VERDICT: return "sk_msg";
    default: return nullptr;
  }
}

// Names the map by id, which outlives the fd number the caller used.
std::string SockMapHook(const Map& map, uint32_t attach_type) {
  return absl::StrFormat("%s on %s '%s' (id %u)", SockMapAttachName(attach_type),
                         MapTypeName(map.type()), map.name(), map.id());
}

absl::Status CheckSockMap(const Program& program, const Map& map, uint32_t attach_type,
                          absl::string_view op) {
  TETHER_RETURN_IF_ERROR(CheckProgram(program, op));
  if (!map) return absl::InvalidArgumentError(absl::StrCat(ProgLabel(program), ": ", op, ": the map handle is empty"));
  if (map.type() != BPF_MAP_TYPE_SOCKMAP && map.type() != BPF_MAP_TYPE_SOCKHASH) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: %s: map '%s' (id %u) is a %s; sk_skb and sk_msg programs attach to a sockmap or sockhash",
        ProgLabel(program), op, map.name(), map.id(), MapTypeName(map.type())));
  }
  if (!SockMapAttachName(attach_type)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: %s: attach type %u is not one of BPF_SK_SKB_STREAM_PARSER, BPF_SK_SKB_STREAM_VERDICT, "
        "BPF_SK_SKB_VERDICT, BPF_SK_MSG_VERDICT",
        ProgLabel(program), op, attach_type));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status AttachSockMap(const Program& program, const Map& map, uint32_t attach_type) {
  TETHER_RETURN_IF_ERROR(CheckSockMap(program, map, attach_type, "BPF_PROG_ATTACH"));
  std::string hook = SockMapHook(map, attach_type);
  int ret = sys::ProgAttach(map.fd(), program.fd(), attach_type, 0);
  if (ret < 0) {
    return sys::ErrnoStatus(-ret, absl::StrCat(ProgLabel(program), " on ", hook), "BPF_PROG_ATTACH");
  }
  program.NoteLegacyHook(hook);
  return absl::OkStatus();
}

absl::Status DetachSockMap(const Program& program, const Map& map, uint32_t attach_type) {
  TETHER_RETURN_IF_ERROR(CheckSockMap(program, map, attach_type, "BPF_PROG_DETACH"));
  std::string hook = SockMapHook(map, attach_type);
  int ret = sys::ProgDetach(map.fd(), program.fd(), attach_type);
  if (ret < 0) {
    return sys::ErrnoStatus(-ret, absl::StrCat(ProgLabel(program), " on ", hook), "BPF_PROG_DETACH");
  }
  program.ForgetLegacyHook(hook);
  return absl::OkStatus();
}

namespace {
std::string ReuseportHook(int sock_fd) {
  return absl::StrCat("SO_ATTACH_REUSEPORT_EBPF on the reuseport group of ", SocketName(sock_fd));
}
}  // namespace

absl::Status AttachReuseport(const Program& program, int sock_fd) {
  TETHER_RETURN_IF_ERROR(CheckProgram(program, "SO_ATTACH_REUSEPORT_EBPF"));
  int prog_fd = program.fd();
  if (setsockopt(sock_fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog_fd, sizeof(prog_fd)) != 0) {
    return sys::ErrnoStatus(errno, absl::StrCat(ProgLabel(program), " on socket fd ", sock_fd),
                            "setsockopt(SO_ATTACH_REUSEPORT_EBPF)");
  }
  program.NoteLegacyHook(ReuseportHook(sock_fd));
  return absl::OkStatus();
}

absl::Status DetachReuseport(const Program& program, int sock_fd) {
  TETHER_RETURN_IF_ERROR(CheckProgram(program, "SO_DETACH_REUSEPORT_BPF"));
  std::string hook = ReuseportHook(sock_fd);
  int unused = 0;
  if (setsockopt(sock_fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &unused, sizeof(unused)) != 0) {
    return sys::ErrnoStatus(errno, absl::StrCat(ProgLabel(program), " on socket fd ", sock_fd),
                            "setsockopt(SO_DETACH_REUSEPORT_BPF)");
  }
  program.ForgetLegacyHook(hook);
  return absl::OkStatus();
}

absl::StatusOr<Link> AttachTracepoint(const Program& program, const std::string& category,
                                      const std::string& name) {
  std::string hook = absl::StrCat("tracepoint ", category, "/", name);
  TETHER_RETURN_IF_ERROR(CheckProgram(program, hook));
  return PerfEventLink(program, detail::OpenTracepointEvent(category, name), hook,
                       LinkKind::kPerfEvent);
}

absl::StatusOr<Link> AttachKprobe(const Program& program, const std::string& symbol,
                                  uint64_t offset) {
  std::string hook = absl::StrCat("kprobe ", symbol, offset ? absl::StrCat("+", offset) : "");
  TETHER_RETURN_IF_ERROR(CheckProgram(program, hook));
  if (absl::Status k = probe::HaveLinkKind(LinkKind::kKprobe); absl::IsUnimplemented(k)) {
    return absl::UnimplementedError(absl::StrCat(ProgLabel(program), " on ", hook, ": ", k.message()));
  }
  return PerfEventLink(program, detail::OpenKprobeEvent(symbol, offset, false), hook,
                       LinkKind::kKprobe);
}

absl::StatusOr<Link> AttachKretprobe(const Program& program, const std::string& symbol) {
  std::string hook = absl::StrCat("kretprobe ", symbol);
  TETHER_RETURN_IF_ERROR(CheckProgram(program, hook));
  if (absl::Status k = probe::HaveLinkKind(LinkKind::kKprobe); absl::IsUnimplemented(k)) {
    return absl::UnimplementedError(absl::StrCat(ProgLabel(program), " on ", hook, ": ", k.message()));
  }
  return PerfEventLink(program, detail::OpenKprobeEvent(symbol, 0, true), hook, LinkKind::kKprobe);
}

absl::StatusOr<Link> AttachKprobeMulti(const Program& program,
                                       absl::Span<const std::string> symbols, bool retprobe) {
  std::string hook = absl::StrCat(retprobe ? "kretprobe.multi " : "kprobe.multi ",
                                  symbols.empty() ? "(none)" : symbols[0],
                                  symbols.size() > 1 ? absl::StrCat(" and ", symbols.size() - 1, " more") : "");
  TETHER_RETURN_IF_ERROR(CheckProgram(program, hook));
  if (symbols.empty()) return absl::InvalidArgumentError(absl::StrCat(hook, ": no symbols"));
  std::vector<const char*> names;
  for (const std::string& s : symbols) names.push_back(s.c_str());
  struct {
    uint32_t flags, cnt;
    uint64_t syms, addrs, cookies;
  } multi = {retprobe ? 1u : 0u, static_cast<uint32_t>(names.size()),
             reinterpret_cast<uintptr_t>(names.data()), 0, 0};  // 1: BPF_F_KPROBE_MULTI_RETURN
  sys::LinkCreateRequest req;
  req.prog_fd = program.fd();
  req.target_fd = 0;  // no target: the kernel insists on 0
  req.attach_type = BPF_TRACE_KPROBE_MULTI;
  req.extra = &multi;
  req.extra_size = sizeof(multi);
  return CreateLink(program, req, hook, LinkKind::kKprobeMulti);
}

absl::StatusOr<Link> AttachUprobe(const Program& program, const std::string& binary,
                                  const UprobeTarget& target, int pid) {
  return Uprobe(program, binary, target, pid, false);
}

absl::StatusOr<Link> AttachUretprobe(const Program& program, const std::string& binary,
                                     const UprobeTarget& target, int pid) {
  return Uprobe(program, binary, target, pid, true);
}

absl::StatusOr<Link> AttachUprobeMulti(const Program& program, const std::string& binary,
                                       absl::Span<const UprobeTarget> targets, bool retprobe,
                                       int pid) {
  std::string hook = absl::StrCat(retprobe ? "uretprobe.multi " : "uprobe.multi ", binary, " (",
                                  targets.size(), " places)");
  TETHER_RETURN_IF_ERROR(CheckProgram(program, hook));
  if (targets.empty()) return absl::InvalidArgumentError(absl::StrCat(hook, ": no targets"));
  std::vector<uint64_t> offsets;
  for (const UprobeTarget& t : targets) {
    auto off = ResolveUprobe(binary, t);
    if (!off.ok()) return absl::Status(off.status().code(), absl::StrCat(ProgLabel(program), " on ", hook,
                                                                         ": ", off.status().message()));
    offsets.push_back(*off);
  }
  struct {
    uint64_t path, offsets, ref_ctr_offsets, cookies;
    uint32_t cnt, flags, pid;
  } multi = {reinterpret_cast<uintptr_t>(binary.c_str()),
             reinterpret_cast<uintptr_t>(offsets.data()),
             0,
             0,
             static_cast<uint32_t>(offsets.size()),
             retprobe ? 1u : 0u,  // BPF_F_UPROBE_MULTI_RETURN
             pid < 0 ? 0u : static_cast<uint32_t>(pid)};
  sys::LinkCreateRequest req;
  req.prog_fd = program.fd();
  req.target_fd = 0;  // no target: the kernel insists on 0
  req.attach_type = sys::uapi::kAttachTraceUprobeMulti;
  req.extra = &multi;
  req.extra_size = sizeof(multi);
  return CreateLink(program, req, hook, LinkKind::kUprobeMulti);
}

absl::StatusOr<Link> AttachRawTracepoint(const Program& program, const std::string& name) {
  std::string hook = absl::StrCat("raw_tracepoint ", name);
  TETHER_RETURN_IF_ERROR(CheckProgram(program, hook));
  auto fd = sys::RawTracepointOpen(name.c_str(), program.fd());
  if (!fd.ok()) {
    absl::Status st = sys::ErrnoStatus(sys::StatusErrno(fd.status()),
                                       absl::StrCat(ProgLabel(program), " on ", hook),
                                       "BPF_RAW_TRACEPOINT_OPEN");
    if (sys::StatusErrno(fd.status()) == ENOENT) {
      return absl::NotFoundError(absl::StrCat(st.message(), " (no such raw tracepoint)"));
    }
    return AttachError(st, LinkKind::kRawTracepoint);
  }
  return Link::FromFd(fd->Release(), hook);
}

absl::StatusOr<uint32_t> TracingTargetBtfId(uint32_t attach_type, const std::string& name) {
  absl::StatusOr<uint32_t> id;
  switch (attach_type) {
    case BPF_TRACE_RAW_TP:
      // Each tracepoint has a typedef of its probe function's type.
      id = detail::VmlinuxBtfTypeId(absl::StrCat("btf_trace_", name), BTF_KIND_TYPEDEF);
      break;
    case BPF_TRACE_ITER:
      id = detail::VmlinuxBtfTypeId(absl::StrCat("bpf_iter_", name), BTF_KIND_FUNC);
      break;
    case BPF_LSM_MAC:
    case BPF_LSM_CGROUP:
      id = detail::VmlinuxBtfTypeId(absl::StrCat("bpf_lsm_", name), BTF_KIND_FUNC);
      break;
    case BPF_TRACE_FENTRY:
    case BPF_TRACE_FEXIT:
    case BPF_MODIFY_RETURN:
      id = detail::VmlinuxBtfTypeId(name, BTF_KIND_FUNC);
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("tracing target '", name, "': attach type ", attach_type,
                       " does not attach by vmlinux BTF id"));
  }
  if (!id.ok()) {
    return absl::Status(id.status().code(), absl::StrCat("tracing target '", name, "' (attach type ",
                                                         attach_type, "): ", id.status().message()));
  }
  return id;
}

absl::StatusOr<Link> AttachTracing(const Program& program, uint32_t attach_type,
                                   TracingAttachApi api) {
  std::string hook = absl::StrCat("tracing attach type ", attach_type);
  TETHER_RETURN_IF_ERROR(CheckProgram(program, hook));
  bool tp_btf = attach_type == BPF_TRACE_RAW_TP;
  LinkKind kind = tp_btf ? LinkKind::kTpBtf : LinkKind::kTrampoline;
  absl::Status st;
  if (api != TracingAttachApi::kRawTracepointOpen) {
    sys::LinkCreateRequest req;
    req.prog_fd = program.fd();
    req.target_fd = 0;  // the load-time target; nonzero means a BPF program
    req.attach_type = attach_type;
    auto fd = sys::LinkCreate(req);
    if (fd.ok()) return Link::FromFd(fd->Release(), hook);
    st = sys::ErrnoStatus(sys::StatusErrno(fd.status()),
                          absl::StrCat(ProgLabel(program), " on ", hook), "BPF_LINK_CREATE");
    // Before 5.19 (trampolines) and 6.10 (tp_btf) LINK_CREATE refused
    // these with EINVAL; RAW_TRACEPOINT_OPEN attaches them at their load
    // target.
    if (api == TracingAttachApi::kLinkCreate || sys::StatusErrno(st) != EINVAL) {
      return AttachError(st, tp_btf && api == TracingAttachApi::kLinkCreate
                                 ? LinkKind::kTpBtfLinkCreate
                                 : kind);
    }
  }
  auto raw = sys::RawTracepointOpen(nullptr, program.fd());
  if (raw.ok()) return Link::FromFd(raw->Release(), hook);
  st = sys::ErrnoStatus(sys::StatusErrno(raw.status()),
                        absl::StrCat(ProgLabel(program), " on ", hook),
                        "BPF_RAW_TRACEPOINT_OPEN");
  return AttachError(st, kind);
}

absl::StatusOr<Link> AttachIter(const Program& program, const IterOptions& options) {
  std::string hook = options.map_fd >= 0 ? absl::StrCat("iterator over map fd ", options.map_fd)
                                         : "iterator";
  TETHER_RETURN_IF_ERROR(CheckProgram(program, hook));
  union bpf_iter_link_info info;
  memset(&info, 0, sizeof(info));
  struct {
    uint64_t iter_info;
    uint32_t iter_info_len;
  } extra = {0, 0};
  if (options.map_fd >= 0) {
    info.map.map_fd = static_cast<uint32_t>(options.map_fd);
    extra = {reinterpret_cast<uintptr_t>(&info), static_cast<uint32_t>(sizeof(info))};
  }
  sys::LinkCreateRequest req;
  req.prog_fd = program.fd();
  req.target_fd = 0;  // no target: the kernel insists on 0
  req.attach_type = BPF_TRACE_ITER;
  req.extra = &extra;
  req.extra_size = sizeof(extra);
  return CreateLink(program, req, hook, LinkKind::kIter);
}

absl::StatusOr<std::string> ReadIter(const Link& iter_link) {
  if (!iter_link) return absl::FailedPreconditionError("iterator: read: the link handle is empty");
  std::string what = absl::StrFormat("iterator link %u", iter_link.id());
  auto fd = sys::IterCreate(iter_link.fd());
  if (!fd.ok()) return sys::ErrnoStatus(sys::StatusErrno(fd.status()), what, "BPF_ITER_CREATE");
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd->get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys::ErrnoStatus(errno, what, "read");
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace tether
