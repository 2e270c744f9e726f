// The probes that are neither a map, program, link nor BTF kind: each one a
// named feature with the release that brought it, after cilium/ebpf's
// features/misc.go; then the ones that take an argument (kfuncs,
// iterator targets, lookup-and-delete per map type).
#include <unistd.h>

#include <linux/btf.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "btf/kernel_btf.h"
#include "features/features_internal.h"
#include "sys/uapi_names.h"
#include "tether/btf.h"
#include "tether/insn.h"

namespace tether::probe {
namespace {

absl::Status ProbeKprobes(const Feature&) {
  if (access("/sys/bus/event_source/devices/kprobe/type", R_OK) == 0) return absl::OkStatus();
  return absl::UnimplementedError(absl::StrFormat(
      "kprobes are not available on kernel %s (CONFIG_KPROBES is off: no "
      "/sys/bus/event_source/devices/kprobe)",
      KernelRelease()));
}

absl::Status ProbeVmlinuxBtf(const Feature& self) {
  if (access("/sys/kernel/btf/vmlinux", R_OK) == 0) return absl::OkStatus();
  return absl::UnimplementedError(absl::StrFormat(
      "kernel %s exposes no BTF at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF, %s+)",
      KernelRelease(), self.since));
}

// Older kernels take the zeroed log_true_size (it is past their last
// field) and ignore it; newer ones fill it. So the answer is in the value.
absl::Status ProbeLogTrueSize(const Feature& self) {
  bpf_insn prog[] = {insn::MovImm(BPF_REG_0, 0), insn::Exit()};
  std::vector<char> log(4096);
  sys::uapi::AttrBuffer buf;
  memset(&buf, 0, sizeof(buf));
  buf.attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
  buf.attr.insn_cnt = 2;
  buf.attr.insns = reinterpret_cast<uintptr_t>(prog);
  buf.attr.license = reinterpret_cast<uintptr_t>("GPL");
  buf.attr.log_level = 1;
  buf.attr.log_buf = reinterpret_cast<uintptr_t>(log.data());
  buf.attr.log_size = static_cast<uint32_t>(log.size());
  unsigned size = sys::uapi::kProgLoadLogTrueSizeOffset + sizeof(uint32_t);
  long ret = sys::Bpf(BPF_PROG_LOAD, &buf.attr, size);
  if (ret < 0) return sys::ErrnoStatus(static_cast<int>(-ret), "log_true_size probe", "BPF_PROG_LOAD");
  sys::Fd fd(static_cast<int>(ret));
  uint32_t true_size = 0;
  memcpy(&true_size, buf.bytes + sys::uapi::kProgLoadLogTrueSizeOffset, sizeof(true_size));
  if (true_size > 0) return absl::OkStatus();
  return absl::UnimplementedError(absl::StrFormat(
      "kernel %s does not report the verifier log's true size (log_true_size in "
      "BPF_PROG_LOAD needs %s): a short log buffer is grown by guessing",
      KernelRelease(), self.since));
}

// fd -1 is never a bpffs: a kernel that knows the command says EBADF, one
// that does not rejects the command itself with EINVAL.
absl::Status ProbeTokens(const Feature& self) {
  sys::uapi::AttrBuffer buf;
  memset(&buf, 0, sizeof(buf));
  uint32_t words[2] = {0, static_cast<uint32_t>(-1)};  // flags, bpffs_fd
  memcpy(buf.bytes, words, sizeof(words));
  long ret = sys::Bpf(sys::uapi::kCmdTokenCreate, &buf.attr, sys::uapi::kTokenCreateSize);
  if (ret >= 0) {
    sys::Fd fd(static_cast<int>(ret));
    return absl::OkStatus();
  }
  int err = static_cast<int>(-ret);
  if (err == EINVAL) {
    return absl::UnimplementedError(absl::StrFormat(
        "BPF tokens (BPF_TOKEN_CREATE, BPF_F_TOKEN_FD) are not supported by kernel %s (they "
        "need %s)",
        KernelRelease(), self.since));
  }
  if (err == EPERM) return sys::ErrnoStatus(err, "token probe", "BPF_TOKEN_CREATE");
  return absl::OkStatus();
}

// An fentry program on bpf_fentry_test1, which exists for exactly this
// (BPF_PROG_TEST_RUN calls it); the trampoline itself is built at attach.
absl::Status ProbeTrampolines(const Feature& self) {
  if (absl::Status btf = HaveVmlinuxBtf(); !btf.ok()) {
    return absl::UnimplementedError(absl::StrCat(
        "trampolines need the kernel's BTF to name their target: ", btf.message()));
  }
  TETHER_RETURN_IF_ERROR(HaveProgramType(BPF_PROG_TYPE_TRACING));
  TETHER_ASSIGN_OR_RETURN(VmlinuxType target, FindVmlinuxType("bpf_fentry_test1", BTF_KIND_FUNC));
  bpf_insn prog[] = {insn::MovImm(BPF_REG_0, 0), insn::Exit()};
  sys::ProgLoadRequest req;
  req.type = BPF_PROG_TYPE_TRACING;
  req.expected_attach_type = BPF_TRACE_FENTRY;
  req.attach_btf_id = target.id;
  req.insns = prog;
  req.name = "probe_fentry";
  auto loaded = sys::ProgLoad(req);
  absl::Status st = loaded.status();
  const char* step = "load";
  if (loaded.ok()) {
    auto link = sys::RawTracepointOpen(nullptr, loaded->fd.get());
    if (link.ok()) return absl::OkStatus();
    st = link.status();
    step = "attach";
  }
  int err = sys::StatusErrno(st);
  if (sys::IsPolicyRefusal(st) && HoldsBpfPrivileges()) {
    return Refused("BPF trampolines (fentry, fexit, freplace, lsm)", self.since,
                   absl::StrCat("an fentry program on bpf_fentry_test1: ", step), err);
  }
  if (err == sys::uapi::kEnotsupp || err == EOPNOTSUPP || err == ENODEV) {
    return absl::UnimplementedError(absl::StrFormat(
        "kernel %s cannot build BPF trampolines (%s at %s): it needs %s on x86-64 with "
        "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS",
        KernelRelease(), sys::ErrnoName(err), step, self.since));
  }
  return st;
}

// fmod_ret on bpf_modify_return_test, a target the kernel lets BPF change
// the return of only with error injection.
absl::Status ProbeModifyReturn(const Feature&) {
  TETHER_RETURN_IF_ERROR(HaveTrampolines());
  auto target = FindVmlinuxType("bpf_modify_return_test", BTF_KIND_FUNC);
  if (!target.ok()) {
    return absl::UnimplementedError(absl::StrCat("fmod_ret: ", target.status().message()));
  }
  bpf_insn prog[] = {insn::MovImm(BPF_REG_0, 0), insn::Exit()};
  sys::ProgLoadRequest req;
  req.type = BPF_PROG_TYPE_TRACING;
  req.expected_attach_type = BPF_MODIFY_RETURN;
  req.attach_btf_id = target->id;
  req.insns = prog;
  req.name = "probe_fmod_ret";
  auto loaded = sys::ProgLoad(req);
  if (loaded.ok()) return absl::OkStatus();
  if (loaded.status().message().find("is not modifiable") != absl::string_view::npos) {
    return absl::UnimplementedError(absl::StrFormat(
        "kernel %s does not let fmod_ret programs change bpf_modify_return_test's return "
        "(\"not modifiable\": it needs CONFIG_FUNCTION_ERROR_INJECTION)",
        KernelRelease()));
  }
  return loaded.status();
}

// bpf_prog_active: a per-CPU int every kernel with typed ksyms has.
absl::Status ProbeTypedKsyms(const Feature& self) {
  TETHER_RETURN_IF_ERROR(HaveVmlinuxBtf());
  TETHER_ASSIGN_OR_RETURN(uint32_t id, detail::VmlinuxBtfTypeId("bpf_prog_active", BTF_KIND_VAR));
  bpf_insn prog[4];
  prog[0] = {BPF_LD | BPF_IMM | BPF_DW, BPF_REG_1, BPF_PSEUDO_BTF_ID, 0, static_cast<int32_t>(id)};
  prog[1] = {0, 0, 0, 0, 0};
  prog[2] = insn::MovImm(BPF_REG_0, 0);
  prog[3] = insn::Exit();
  auto res = LoadWithLog(BPF_PROG_TYPE_SOCKET_FILTER, prog);
  if (res.ok()) return absl::OkStatus();
  std::string msg(res.status().message());
  if (msg.find("failed to find the address") != std::string::npos) {
    return absl::UnimplementedError(absl::StrFormat(
        "kernel %s cannot resolve typed ksyms of variables: its kallsyms has no data symbols "
        "(CONFIG_KALLSYMS_ALL is off)",
        KernelRelease()));
  }
  if (msg.find("pseudo") != std::string::npos || sys::StatusErrno(res.status()) == EINVAL) {
    return absl::UnimplementedError(absl::StrFormat("kernel %s has no typed ksyms (%s): %s",
                                                    KernelRelease(), self.since,
                                                    msg.substr(0, 200)));
  }
  return res.status();
}

// An empty map has nothing to give: ENOENT from a kernel that knows the
// command, EINVAL for the command from one that does not.
absl::Status ProbeBatchOps(const Feature& self) {
  TETHER_ASSIGN_OR_RETURN(sys::Fd map, sys::MapCreate(MinimalMap(BPF_MAP_TYPE_HASH)));
  uint32_t out_batch = 0, keys = 0, values = 0, count = 1;
  sys::BatchArgs args;
  args.out_batch = &out_batch;
  args.keys = &keys;
  args.values = &values;
  args.count = &count;
  int ret = sys::MapLookupBatch(map.get(), args);
  if (ret == 0 || ret == -ENOENT) return absl::OkStatus();
  if (ret == -EINVAL) {
    return absl::UnimplementedError(absl::StrFormat(
        "batch map operations are not supported by kernel %s (they need %s)", KernelRelease(),
        self.since));
  }
  return sys::ErrnoStatus(-ret, "batch probe", "BPF_MAP_LOOKUP_BATCH");
}

// A tcp_congestion_ops.ssthresh that returns 2: the kernel checks the
// member against the struct (attach_btf_id, member index) at load.
absl::Status ProbeStructOps(const Feature& self) {
  if (absl::Status btf = HaveVmlinuxBtf(); !btf.ok()) {
    return absl::UnimplementedError(
        absl::StrCat("struct_ops needs the kernel's BTF to name its types: ", btf.message()));
  }
  TETHER_RETURN_IF_ERROR(HaveProgramType(BPF_PROG_TYPE_STRUCT_OPS));
  TETHER_ASSIGN_OR_RETURN(VmlinuxType ops, FindVmlinuxType("tcp_congestion_ops", BTF_KIND_STRUCT));
  auto kernel = KernelBtf();
  if (!kernel.ok()) return kernel.status();
  const BtfType* t = (*kernel)->TypeById(ops.id);
  uint32_t member = 0;
  bool found = false;
  for (const BtfMember& m : (*kernel)->Members(*t)) {
    if ((*kernel)->String(m.name_off) == "ssthresh") {
      found = true;
      break;
    }
    ++member;
  }
  if (!found) return absl::InternalError("struct_ops probe: tcp_congestion_ops has no ssthresh");
  auto prog = MinimalProgram(BPF_PROG_TYPE_STRUCT_OPS, member, ops.id, 2);
  if (prog.ok()) return absl::OkStatus();
  int err = sys::StatusErrno(prog.status());
  if (err == EINVAL || err == EOPNOTSUPP || err == sys::uapi::kEnotsupp) {
    return absl::UnimplementedError(absl::StrFormat(
        "kernel %s cannot load struct_ops programs for tcp_congestion_ops (%s; they need %s): %s",
        KernelRelease(), sys::ErrnoName(err), self.since, prog.status().message().substr(0, 200)));
  }
  return RefusedOr(prog.status(), "struct_ops programs", self.since,
                   "BPF_PROG_LOAD of a minimal tcp_congestion_ops program");
}

constexpr Feature kKprobes = {"kprobes", "4.1", ProbeKprobes};
constexpr Feature kVmlinuxBtf = {"vmlinux_btf", "5.4", ProbeVmlinuxBtf};
constexpr Feature kLogTrueSize = {"log_true_size", "6.4", ProbeLogTrueSize};
constexpr Feature kTokens = {"tokens", "6.9", ProbeTokens};
constexpr Feature kTrampolines = {"trampolines", "5.5", ProbeTrampolines};
constexpr Feature kModifyReturn = {"modify_return", "5.7", ProbeModifyReturn};
constexpr Feature kTypedKsyms = {"typed_ksyms", "5.10", ProbeTypedKsyms};
constexpr Feature kBatchOps = {"batch_ops", "5.6", ProbeBatchOps};
constexpr Feature kStructOps = {"struct_ops", "5.6", ProbeStructOps};

struct IteratorTarget {
  const char* name;
  const char* since;
};

// The iterator targets that tether's tests, docs or library paths use.
constexpr IteratorTarget kIteratorTargets[] = {
    {"bpf_map", "5.8"},     {"bpf_prog", "5.8"},     {"task", "5.8"},
    {"task_file", "5.8"},   {"netlink", "5.8"},      {"ipv6_route", "5.8"},
    {"bpf_map_elem", "5.9"}, {"tcp", "5.9"},         {"udp", "5.9"},
    {"bpf_sk_storage_map", "5.9"}, {"sockmap", "5.10"}, {"task_vma", "5.12"},
    {"unix", "5.17"},       {"bpf_link", "5.19"},    {"ksym", "6.0"},
    {"cgroup", "6.1"},
};

const char* IteratorSince(absl::string_view target) {
  for (const IteratorTarget& t : kIteratorTargets) {
    if (target == t.name) return t.since;
  }
  return "a release that tether does not know";
}

absl::Status ProbeIterator(const std::string& target) {
  std::string feature = absl::StrCat("BPF iterators over ", target);
  if (absl::Status btf = HaveVmlinuxBtf(); !btf.ok()) {
    return absl::UnimplementedError(absl::StrCat(feature, ": ", btf.message()));
  }
  auto id = detail::VmlinuxBtfTypeId(absl::StrCat("bpf_iter_", target), BTF_KIND_FUNC);
  if (!id.ok()) {
    return absl::UnimplementedError(absl::StrFormat(
        "%s: not supported by kernel %s (its BTF has no bpf_iter_%s; the target came in %s)",
        feature, KernelRelease(), target, IteratorSince(target)));
  }
  auto prog = MinimalProgram(BPF_PROG_TYPE_TRACING, BPF_TRACE_ITER, *id);
  if (prog.ok()) return absl::OkStatus();
  int err = sys::StatusErrno(prog.status());
  if (err == EINVAL || err == EOPNOTSUPP || err == sys::uapi::kEnotsupp) {
    return absl::UnimplementedError(absl::StrFormat(
        "%s: not supported by kernel %s (needs %s): %s", feature, KernelRelease(),
        IteratorSince(target), prog.status().message().substr(0, 200)));
  }
  return RefusedOr(prog.status(), feature, IteratorSince(target),
                   "BPF_PROG_LOAD of a minimal iterator program");
}

absl::Status ProbeKfunc(const std::string& name) {
  TETHER_RETURN_IF_ERROR(HaveVmlinuxBtf());
  TETHER_ASSIGN_OR_RETURN(const Btf* vmlinux, KernelBtf());
  if (vmlinux->FindByNameKind(name, BtfKind::kFunc)) return absl::OkStatus();
  TETHER_ASSIGN_OR_RETURN(std::vector<detail::ModuleBtf> modules, detail::LoadedModuleBtfs());
  for (const detail::ModuleBtf& m : modules) {
    if (m.btf->FindByNameKind(name, BtfKind::kFunc)) return absl::OkStatus();
  }
  return absl::UnimplementedError(absl::StrFormat(
      "kernel %s has no kfunc '%s' in its BTF (vmlinux and %u module BTFs)", KernelRelease(), name,
      modules.size()));
}

// An empty map has nothing to take: ENOENT from a map that supports the
// command, ENOTSUPP (or EINVAL) from one that does not.
absl::Status ProbeLookupAndDelete(uint32_t map_type) {
  TETHER_RETURN_IF_ERROR(HaveMapType(map_type));
  TETHER_ASSIGN_OR_RETURN(sys::Fd map, sys::MapCreate(MinimalMap(map_type)));
  uint32_t key = 0;
  uint64_t value[2] = {0, 0};  // MinimalMap values are at most 8 bytes
  int ret = sys::MapLookupAndDeleteElem(map.get(), &key, value, 0);
  if (ret == 0 || ret == -ENOENT) return absl::OkStatus();
  if (ret == -sys::uapi::kEnotsupp || ret == -EOPNOTSUPP || ret == -EINVAL) {
    return absl::UnimplementedError(absl::StrFormat(
        "BPF_MAP_LOOKUP_AND_DELETE_ELEM on %s maps is not supported by kernel %s (%s)",
        sys::MapTypeName(map_type), KernelRelease(), sys::ErrnoName(-ret)));
  }
  return sys::ErrnoStatus(-ret, "lookup_and_delete probe", "BPF_MAP_LOOKUP_AND_DELETE_ELEM");
}

}  // namespace

absl::StatusOr<VmlinuxType> FindVmlinuxType(absl::string_view name, uint32_t want_kind) {
  TETHER_ASSIGN_OR_RETURN(uint32_t id, detail::VmlinuxBtfTypeId(std::string(name), want_kind));
  auto btf = KernelBtf();
  return VmlinuxType{id, (*btf)->TypeById(id)->size_or_type};
}

absl::Status HaveKprobes() { return Ask(kKprobes); }
absl::Status HaveVmlinuxBtf() { return Ask(kVmlinuxBtf); }
absl::Status HaveLogTrueSize() { return Ask(kLogTrueSize); }
absl::Status HaveTokens() { return Ask(kTokens); }
absl::Status HaveTrampolines() { return Ask(kTrampolines); }
absl::Status HaveModifyReturn() { return Ask(kModifyReturn); }
absl::Status HaveTypedKsyms() { return Ask(kTypedKsyms); }
absl::Status HaveBatchOps() { return Ask(kBatchOps); }
absl::Status HaveStructOps() { return Ask(kStructOps); }

absl::Status HaveIterator(absl::string_view target) {
  std::string t(target);
  return Cached(absl::StrCat("iterator:", t), [t] { return ProbeIterator(t); });
}

absl::Status HaveKfunc(absl::string_view name) {
  std::string n(name);
  return Cached(absl::StrCat("kfunc:", n), [n] { return ProbeKfunc(n); });
}

absl::Status HaveLookupAndDelete(uint32_t map_type) {
  return Cached(absl::StrCat("lookup_and_delete:", sys::MapTypeName(map_type)),
                [map_type] { return ProbeLookupAndDelete(map_type); });
}

}  // namespace tether::probe
