#include "tether/probe.h"

#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <linux/btf.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "sys/bpf.h"
#include "tether/insn.h"
#include "tether/map.h"
#include "tether/program.h"
#include "vmlinux_btf_internal.h"

namespace tether::probe {
namespace {

struct Cache {
  absl::Mutex mu;
  std::map<std::string, absl::Status> results ABSL_GUARDED_BY(mu);
};

Cache& TheCache() {
  static Cache* cache = new Cache();
  return *cache;
}

// The kernel version that brought each map type, for messages.
const char* MapTypeSince(uint32_t type) {
  switch (type) {
    case BPF_MAP_TYPE_RINGBUF: return "5.8";
    case BPF_MAP_TYPE_BLOOM_FILTER: return "5.16";
    case BPF_MAP_TYPE_USER_RINGBUF: return "6.1";
    case sys::uapi::kMapTypeCgrpStorage: return "6.2";
    case sys::uapi::kMapTypeArena: return "6.9";
    case BPF_MAP_TYPE_TASK_STORAGE: return "5.11";
    case BPF_MAP_TYPE_INODE_STORAGE: return "5.10";
    case BPF_MAP_TYPE_STRUCT_OPS: return "5.6";
    default: return "an earlier release";
  }
}

// Smallest valid attributes for each map type.
sys::MapCreateRequest MinimalMap(uint32_t type) {
  sys::MapCreateRequest r;
  r.type = type;
  r.key_size = 4;
  r.value_size = 4;
  r.max_entries = 1;
  switch (type) {
    case BPF_MAP_TYPE_QUEUE:
    case BPF_MAP_TYPE_STACK:
    case BPF_MAP_TYPE_BLOOM_FILTER:
      r.key_size = 0;
      break;
    case BPF_MAP_TYPE_RINGBUF:
    case BPF_MAP_TYPE_USER_RINGBUF:
      r.key_size = 0;
      r.value_size = 0;
      r.max_entries = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
      break;
    case BPF_MAP_TYPE_LPM_TRIE:
      r.key_size = 8;
      r.flags = BPF_F_NO_PREALLOC;
      break;
    case BPF_MAP_TYPE_CGROUP_STORAGE:
    case BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
      r.key_size = sizeof(struct bpf_cgroup_storage_key);
      r.max_entries = 0;
      break;
    case BPF_MAP_TYPE_SK_STORAGE:
    case BPF_MAP_TYPE_INODE_STORAGE:
    case BPF_MAP_TYPE_TASK_STORAGE:
    case sys::uapi::kMapTypeCgrpStorage:
      r.max_entries = 0;
      r.flags = BPF_F_NO_PREALLOC;
      break;
    case sys::uapi::kMapTypeArena:
      r.key_size = 0;
      r.value_size = 0;
      r.max_entries = 1;
      r.flags = BPF_F_MMAPABLE;
      break;
    default:
      break;
  }
  return r;
}

bool IsLocalStorage(uint32_t type) {
  return type == BPF_MAP_TYPE_SK_STORAGE || type == BPF_MAP_TYPE_INODE_STORAGE ||
         type == BPF_MAP_TYPE_TASK_STORAGE || type == sys::uapi::kMapTypeCgrpStorage;
}

// A BTF blob holding one type, `int` (id 1): local-storage maps insist on
// BTF ids for their key and value.
std::vector<uint8_t> IntOnlyBtf() {
  const char strings[] = "\0int";  // offsets 0 ("") and 1 ("int")
  uint32_t types[] = {1, static_cast<uint32_t>(BTF_KIND_INT) << 24, 4, 0x01000020};
  struct btf_header hdr = {};
  hdr.magic = BTF_MAGIC;
  hdr.version = BTF_VERSION;
  hdr.hdr_len = sizeof(hdr);
  hdr.type_off = 0;
  hdr.type_len = sizeof(types);
  hdr.str_off = sizeof(types);
  hdr.str_len = sizeof(strings);
  std::vector<uint8_t> blob(sizeof(hdr) + sizeof(types) + sizeof(strings));
  memcpy(blob.data(), &hdr, sizeof(hdr));
  memcpy(blob.data() + sizeof(hdr), types, sizeof(types));
  memcpy(blob.data() + sizeof(hdr) + sizeof(types), strings, sizeof(strings));
  return blob;
}

}  // namespace

absl::Status Cached(absl::string_view name, const std::function<absl::Status()>& probe) {
  Cache& c = TheCache();
  std::string key(name);
  {
    absl::MutexLock lock(&c.mu);
    auto it = c.results.find(key);
    if (it != c.results.end()) return it->second;
  }
  absl::Status result = probe();  // outside the lock: probes may nest
  absl::MutexLock lock(&c.mu);
  return c.results.emplace(key, result).first->second;
}

std::string Report() {
  Cache& c = TheCache();
  absl::MutexLock lock(&c.mu);
  std::string out;
  for (const auto& [name, st] : c.results) {
    absl::StrAppend(&out, name, ": ", st.ok() ? "OK" : st.ToString(), "\n");
  }
  return out;
}

std::string KernelRelease() {
  struct utsname u;
  if (uname(&u) != 0) return "unknown";
  return u.release;
}

absl::Status HaveMapType(uint32_t type) {
  return Cached(absl::StrCat("map_type:", MapTypeName(type)), [type]() -> absl::Status {
    sys::MapCreateRequest req = MinimalMap(type);
    if (type == BPF_MAP_TYPE_ARRAY_OF_MAPS || type == BPF_MAP_TYPE_HASH_OF_MAPS) {
      auto inner = sys::MapCreate(MinimalMap(BPF_MAP_TYPE_ARRAY));
      if (!inner.ok()) return inner.status();
      req.inner_map_fd = inner->get();
      auto fd = sys::MapCreate(req);
      return fd.ok() ? absl::OkStatus() : fd.status();
    }
    sys::Fd btf;
    if (IsLocalStorage(type)) {
      auto loaded = sys::BtfLoad(IntOnlyBtf());
      if (!loaded.ok()) return loaded.status();
      btf = std::move(loaded->fd);
      req.btf_fd = btf.get();
      req.btf_key_type_id = 1;
      req.btf_value_type_id = 1;
    }
    auto fd = sys::MapCreate(req);
    if (fd.ok()) return absl::OkStatus();
    int err = sys::StatusErrno(fd.status());
    // Storage maps need BTF for their value; EINVAL about BTF still means
    // the type exists, while an unknown type is EINVAL early. Tell them
    // apart by retrying with a type number past the UAPI's end.
    if (err == EINVAL || err == E2BIG || err == 524 || err == EOPNOTSUPP) {
      sys::MapCreateRequest bogus = req;
      bogus.type = 0xffff;
      auto b = sys::MapCreate(bogus);
      bool same = !b.ok() && sys::StatusErrno(b.status()) == err;
      if (same || err == 524 || err == EOPNOTSUPP) {
        return absl::UnimplementedError(absl::StrFormat(
            "map type %s is not supported by kernel %s (it needs %s)", MapTypeName(type),
            KernelRelease(), MapTypeSince(type)));
      }
      return absl::OkStatus();
    }
    return fd.status();
  });
}

absl::Status HaveProgramType(uint32_t type) {
  return Cached(absl::StrCat("prog_type:", ProgramTypeName(type)), [type]() -> absl::Status {
    bpf_insn prog[] = {insn::MovImm(BPF_REG_0, 0), insn::Exit()};
    sys::ProgLoadRequest req;
    req.type = type;
    req.insns = prog;
    req.name = "probe";
    req.log_level = 0;
    auto res = sys::ProgLoad(req);
    if (res.ok()) return absl::OkStatus();
    int err = sys::StatusErrno(res.status());
    // Types that need an attach target fail verification for that reason
    // (EINVAL/EACCES with a log) but are known; unknown types are EINVAL
    // with no verifier involvement. Compare with a type that cannot exist.
    sys::ProgLoadRequest bogus = req;
    bogus.type = 0xffff;
    auto b = sys::ProgLoad(bogus);
    bool unknown = !b.ok() && sys::StatusErrno(b.status()) == err &&
                   res.status().message().find("verifier log") == absl::string_view::npos;
    if (unknown) {
      return absl::UnimplementedError(absl::StrFormat(
          "program type %s is not supported by kernel %s", ProgramTypeName(type), KernelRelease()));
    }
    if (err == EPERM) return res.status();
    return absl::OkStatus();
  });
}

absl::Status HaveHelper(uint32_t prog_type, uint32_t helper) {
  return Cached(absl::StrCat("helper:", ProgramTypeName(prog_type), ":", helper),
                [prog_type, helper]() -> absl::Status {
                  bpf_insn prog[] = {insn::Call(static_cast<int32_t>(helper)),
                                     insn::MovImm(BPF_REG_0, 0), insn::Exit()};
                  sys::ProgLoadRequest req;
                  req.type = prog_type;
                  req.insns = prog;
                  req.name = "probe";
                  req.log_level = 1;
                  auto res = sys::ProgLoad(req);
                  if (res.ok()) return absl::OkStatus();
                  std::string msg(res.status().message());
                  if (msg.find("invalid func") != std::string::npos ||
                      msg.find("unknown func") != std::string::npos ||
                      msg.find("program of this type cannot use helper") != std::string::npos) {
                    return absl::UnimplementedError(absl::StrFormat(
                        "helper %u is not available to %s programs on kernel %s", helper,
                        ProgramTypeName(prog_type), KernelRelease()));
                  }
                  // Any other complaint is about arguments: the helper exists.
                  return absl::OkStatus();
                });
}

absl::Status HaveKprobes() {
  return Cached("kprobes", []() -> absl::Status {
    if (access("/sys/bus/event_source/devices/kprobe/type", R_OK) == 0) return absl::OkStatus();
    return absl::UnimplementedError(absl::StrFormat(
        "kprobes are not available on kernel %s (CONFIG_KPROBES is off: no "
        "/sys/bus/event_source/devices/kprobe)",
        KernelRelease()));
  });
}

absl::Status HaveVmlinuxBtf() {
  return Cached("vmlinux_btf", []() -> absl::Status {
    if (access("/sys/kernel/btf/vmlinux", R_OK) == 0) return absl::OkStatus();
    return absl::UnimplementedError(absl::StrFormat(
        "kernel %s exposes no BTF at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF, 5.4+)",
        KernelRelease()));
  });
}

namespace {

absl::Status Missing(LinkKind kind, absl::string_view detail = "") {
  return absl::UnimplementedError(absl::StrFormat(
      "%s: not supported by kernel %s (needs %s%s%s)", LinkKindName(kind), KernelRelease(),
      LinkKindSince(kind), detail.empty() ? "" : "; ", detail));
}

// A program that returns `ret`, of the given type and attach type.
absl::StatusOr<sys::Fd> MinimalProgram(uint32_t type, uint32_t attach_type = 0,
                                       uint32_t attach_btf_id = 0, int32_t ret = 0) {
  bpf_insn prog[] = {insn::MovImm(BPF_REG_0, ret), insn::Exit()};
  sys::ProgLoadRequest req;
  req.type = type;
  req.insns = prog;
  req.name = "probe";
  req.expected_attach_type = attach_type;
  req.attach_btf_id = attach_btf_id;
  auto res = sys::ProgLoad(req);
  if (!res.ok()) return res.status();
  return std::move(res->fd);
}

// Runs `fn` on a thread of its own in a fresh network namespace, so that
// a probe can attach to that namespace's loopback without touching the
// host's interfaces. The namespace goes when the thread ends.
absl::Status InPrivateNetns(const std::function<absl::Status()>& fn) {
  absl::Status result;
  std::thread t([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      result = sys::ErrnoStatus(errno, "probe", "unshare(CLONE_NEWNET)");
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
  auto prog = MinimalProgram(prog_type, attach_type);
  if (!prog.ok()) {
    if (sys::StatusErrno(prog.status()) == EINVAL) return Missing(kind, "the program type is unknown");
    return prog.status();
  }
  sys::LinkCreateRequest req;
  req.prog_fd = prog->get();
  req.target_fd = -1;
  req.attach_type = attach_type;
  auto link = sys::LinkCreate(req);
  if (link.ok()) return absl::OkStatus();
  int err = sys::StatusErrno(link.status());
  if (err == EBADF || err == ENOENT) return absl::OkStatus();
  if (err == EINVAL || err == EOPNOTSUPP || err == 524) return Missing(kind);
  return link.status();
}

absl::Status ProbeLink(LinkKind kind) {
  switch (kind) {
    case LinkKind::kXdp:
    case LinkKind::kTcx:
      return InPrivateNetns([kind]() -> absl::Status {
        bool tcx = kind == LinkKind::kTcx;
        auto prog = MinimalProgram(tcx ? BPF_PROG_TYPE_SCHED_CLS : BPF_PROG_TYPE_XDP,
                                   tcx ? sys::uapi::kAttachTcxIngress : uint32_t{BPF_XDP}, 0,
                                   tcx ? 0 : XDP_PASS);
        if (!prog.ok()) return prog.status();
        sys::LinkCreateRequest req;
        req.prog_fd = prog->get();
        req.target_fd = 1;  // loopback, always ifindex 1 in a new namespace
        req.attach_type = tcx ? sys::uapi::kAttachTcxIngress : uint32_t{BPF_XDP};
        auto link = sys::LinkCreate(req);
        if (link.ok()) return absl::OkStatus();
        int err = sys::StatusErrno(link.status());
        if (err == EINVAL || err == EOPNOTSUPP || err == 524) return Missing(kind);
        return link.status();
      });
    case LinkKind::kCgroup:
      return LinkCreateReachesTarget(kind, BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_INGRESS);
    case LinkKind::kPerfEvent:
      return LinkCreateReachesTarget(kind, BPF_PROG_TYPE_TRACEPOINT, BPF_PERF_EVENT);
    case LinkKind::kKprobe: {
      absl::Status k = HaveKprobes();
      if (!k.ok()) return k;
      return HaveLinkKind(LinkKind::kPerfEvent);
    }
    case LinkKind::kUprobe: {
      if (access("/sys/bus/event_source/devices/uprobe/type", R_OK) != 0)
        return Missing(kind, "CONFIG_UPROBE_EVENTS; no /sys/bus/event_source/devices/uprobe");
      return HaveLinkKind(LinkKind::kPerfEvent);
    }
    case LinkKind::kKprobeMulti: {
      auto prog = MinimalProgram(BPF_PROG_TYPE_KPROBE, BPF_TRACE_KPROBE_MULTI);
      if (!prog.ok()) {
        if (sys::StatusErrno(prog.status()) == EINVAL) return Missing(kind);
        return prog.status();
      }
      // A real attachment to a function every kernel has, dropped at once.
      const char* sym = "vprintk";
      uint64_t syms = reinterpret_cast<uintptr_t>(&sym);
      struct {
        uint32_t flags, cnt;
        uint64_t syms, addrs, cookies;
      } multi = {0, 1, syms, 0, 0};
      sys::LinkCreateRequest req;
      req.prog_fd = prog->get();
      req.target_fd = 0;
      req.attach_type = BPF_TRACE_KPROBE_MULTI;
      req.extra = &multi;
      req.extra_size = sizeof(multi);
      auto link = sys::LinkCreate(req);
      if (link.ok()) return absl::OkStatus();
      int err = sys::StatusErrno(link.status());
      // The kernel got as far as resolving the symbol: the link kind exists.
      if (err == ENOENT || err == ESRCH) return absl::OkStatus();
      if (err == EINVAL || err == EOPNOTSUPP || err == 524)
        return Missing(kind, "and CONFIG_FPROBE");
      return link.status();
    }
    case LinkKind::kUprobeMulti: {
      auto prog = MinimalProgram(BPF_PROG_TYPE_KPROBE, sys::uapi::kAttachTraceUprobeMulti);
      if (!prog.ok()) {
        if (sys::StatusErrno(prog.status()) == EINVAL) return Missing(kind);
        return prog.status();
      }
      // "/" is not a regular file: a kernel with uprobe.multi says EBADF
      // after parsing everything else; older ones reject the attach type.
      uint64_t offset = 0;
      struct {
        uint64_t path, offsets, ref_ctr_offsets, cookies;
        uint32_t cnt, flags, pid;
      } multi = {reinterpret_cast<uintptr_t>("/"), reinterpret_cast<uintptr_t>(&offset), 0, 0, 1,
                 0, 0};
      sys::LinkCreateRequest req;
      req.prog_fd = prog->get();
      req.target_fd = 0;
      req.attach_type = sys::uapi::kAttachTraceUprobeMulti;
      req.extra = &multi;
      req.extra_size = sizeof(multi);
      auto link = sys::LinkCreate(req);
      int err = link.ok() ? 0 : sys::StatusErrno(link.status());
      if (err == EBADF || err == 0) return absl::OkStatus();
      if (err == EINVAL || err == EOPNOTSUPP || err == 524) return Missing(kind);
      return link.status();
    }
    case LinkKind::kRawTracepoint: {
      absl::Status t = HaveProgramType(BPF_PROG_TYPE_RAW_TRACEPOINT);
      if (absl::IsUnimplemented(t)) return Missing(kind);
      return t;
    }
    case LinkKind::kTpBtfLinkCreate: {
      absl::Status tp = HaveLinkKind(LinkKind::kTpBtf);
      if (!tp.ok()) return tp;
      auto id = detail::VmlinuxBtfTypeId("btf_trace_sys_enter", BTF_KIND_TYPEDEF);
      if (!id.ok()) return id.status();
      auto prog = MinimalProgram(BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP, *id);
      if (!prog.ok()) return prog.status();
      // A real attachment, dropped at once: older kernels send tp_btf to
      // the trampoline code, which refuses BPF_TRACE_RAW_TP with EINVAL.
      sys::LinkCreateRequest req;
      req.prog_fd = prog->get();
      req.target_fd = 0;
      req.attach_type = BPF_TRACE_RAW_TP;
      auto link = sys::LinkCreate(req);
      if (link.ok()) return absl::OkStatus();
      int err = sys::StatusErrno(link.status());
      if (err == EINVAL || err == EOPNOTSUPP || err == 524) return Missing(kind);
      return link.status();
    }
    case LinkKind::kTpBtf:
    case LinkKind::kTrampoline:
    case LinkKind::kIter: {
      absl::Status btf = HaveVmlinuxBtf();
      if (!btf.ok()) return Missing(kind, btf.message());
      uint32_t attach = kind == LinkKind::kTpBtf       ? BPF_TRACE_RAW_TP
                        : kind == LinkKind::kTrampoline ? BPF_TRACE_FENTRY
                                                        : BPF_TRACE_ITER;
      // bpf_fentry_test1 exists for BPF_PROG_TEST_RUN of fentry programs.
      auto id = kind == LinkKind::kTpBtf
                    ? detail::VmlinuxBtfTypeId("btf_trace_sys_enter", BTF_KIND_TYPEDEF)
                : kind == LinkKind::kTrampoline
                    ? detail::VmlinuxBtfTypeId("bpf_fentry_test1", BTF_KIND_FUNC)
                    : detail::VmlinuxBtfTypeId("bpf_iter_bpf_map", BTF_KIND_FUNC);
      if (!id.ok()) return Missing(kind, id.status().message());
      auto prog = MinimalProgram(BPF_PROG_TYPE_TRACING, attach, *id);
      if (prog.ok()) return absl::OkStatus();
      int err = sys::StatusErrno(prog.status());
      if (err == EPERM || err == EINVAL || err == EOPNOTSUPP || err == 524) {
        return Missing(kind, absl::StrCat("this kernel refuses to load them: ",
                                          prog.status().message().substr(0, 200)));
      }
      return prog.status();
    }
    case LinkKind::kNetnsSkLookup:
      return LinkCreateReachesTarget(kind, BPF_PROG_TYPE_SK_LOOKUP, BPF_SK_LOOKUP);
    case LinkKind::kNetnsFlowDissector:
      return LinkCreateReachesTarget(kind, BPF_PROG_TYPE_FLOW_DISSECTOR, BPF_FLOW_DISSECTOR);
  }
  return absl::InvalidArgumentError("unknown link kind");
}

}  // namespace

const char* LinkKindName(LinkKind kind) {
  switch (kind) {
    case LinkKind::kXdp: return "XDP links";
    case LinkKind::kTcx: return "tcx links";
    case LinkKind::kCgroup: return "cgroup links";
    case LinkKind::kPerfEvent: return "perf_event links";
    case LinkKind::kKprobe: return "kprobe links";
    case LinkKind::kKprobeMulti: return "kprobe.multi links";
    case LinkKind::kUprobe: return "uprobe links";
    case LinkKind::kUprobeMulti: return "uprobe.multi links";
    case LinkKind::kRawTracepoint: return "raw tracepoints";
    case LinkKind::kTpBtfLinkCreate: return "tp_btf links through BPF_LINK_CREATE";
    case LinkKind::kTpBtf: return "tp_btf (BTF raw tracepoint) programs";
    case LinkKind::kTrampoline: return "trampoline programs (fentry/fexit/fmod_ret/freplace/lsm)";
    case LinkKind::kIter: return "BPF iterators";
    case LinkKind::kNetnsSkLookup: return "sk_lookup netns links";
    case LinkKind::kNetnsFlowDissector: return "flow_dissector netns links";
  }
  return "unknown link kind";
}

const char* LinkKindSince(LinkKind kind) {
  switch (kind) {
    case LinkKind::kXdp: return "5.9";
    case LinkKind::kTcx: return "6.6";
    case LinkKind::kCgroup: return "5.7";
    case LinkKind::kPerfEvent: return "5.15";
    case LinkKind::kKprobe: return "5.15 and CONFIG_KPROBES";
    case LinkKind::kKprobeMulti: return "5.18";
    case LinkKind::kUprobe: return "5.15";
    case LinkKind::kUprobeMulti: return "6.6";
    case LinkKind::kRawTracepoint: return "4.17";
    case LinkKind::kTpBtfLinkCreate: return "6.10";
    case LinkKind::kTpBtf: return "5.5";
    case LinkKind::kTrampoline: return "5.5";
    case LinkKind::kIter: return "5.8";
    case LinkKind::kNetnsSkLookup: return "5.9";
    case LinkKind::kNetnsFlowDissector: return "5.8";
  }
  return "?";
}

absl::Status HaveLinkKind(LinkKind kind) {
  return Cached(absl::StrCat("link:", LinkKindName(kind)), [kind] { return ProbeLink(kind); });
}

}  // namespace tether::probe
