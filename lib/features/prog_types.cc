// HaveProgramType and HaveHelper: a minimal program of each type.
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "features/features_internal.h"
#include "sys/uapi_names.h"
#include "tether/insn.h"

namespace tether::probe {
namespace {

// The release (and the config option) that brought each program type the
// messages name; older types are all "an earlier release".
constexpr TypeRelease kProgramTypeReleases[] = {
    {BPF_PROG_TYPE_LIRC_MODE2, "4.18 with CONFIG_BPF_LIRC_MODE2"},
    {BPF_PROG_TYPE_SK_REUSEPORT, "4.19"},
    {BPF_PROG_TYPE_FLOW_DISSECTOR, "4.20"},
    {BPF_PROG_TYPE_CGROUP_SYSCTL, "5.2"},
    {BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE, "5.2"},
    {BPF_PROG_TYPE_CGROUP_SOCKOPT, "5.3"},
    {BPF_PROG_TYPE_TRACING, "5.5"},
    {BPF_PROG_TYPE_STRUCT_OPS, "5.6"},
    {BPF_PROG_TYPE_EXT, "5.6"},
    {BPF_PROG_TYPE_LSM, "5.7 with CONFIG_BPF_LSM"},
    {BPF_PROG_TYPE_SK_LOOKUP, "5.9"},
    {BPF_PROG_TYPE_SYSCALL, "5.14"},
    {sys::uapi::kProgTypeNetfilter, "6.4"},
};

const char* ProgramTypeSince(uint32_t type) { return ReleaseOf(kProgramTypeReleases, type); }

// Types the kernel refuses before verification without an expected
// attach type, with the same EINVAL an unknown type gets: give them one.
uint32_t ProbeAttachType(uint32_t prog_type) {
  switch (prog_type) {
    case BPF_PROG_TYPE_CGROUP_SOCK_ADDR: return BPF_CGROUP_INET4_CONNECT;
    case BPF_PROG_TYPE_CGROUP_SOCKOPT: return BPF_CGROUP_GETSOCKOPT;
    case BPF_PROG_TYPE_SK_LOOKUP: return BPF_SK_LOOKUP;
    case sys::uapi::kProgTypeNetfilter: return sys::uapi::kAttachNetfilter;
    default: return 0;
  }
}

absl::Status ProbeProgramType(uint32_t type) {
  bpf_insn prog[] = {insn::MovImm(BPF_REG_0, 0), insn::Exit()};
  sys::ProgLoadRequest req;
  req.type = type;
  req.insns = prog;
  req.name = "probe";
  req.log_level = 0;
  req.expected_attach_type = ProbeAttachType(type);
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
        "program type %s is not supported by kernel %s (it needs %s)", sys::ProgramTypeName(type),
        KernelRelease(), ProgramTypeSince(type)));
  }
  // Hardened kernels refuse some types (those on trampolines, often)
  // with EPERM even to a process with every privilege.
  if (err == EPERM) {
    return RefusedOr(res.status(), absl::StrCat(sys::ProgramTypeName(type), " programs"),
                     ProgramTypeSince(type), "BPF_PROG_LOAD of a minimal program");
  }
  return absl::OkStatus();
}

absl::Status ProbeHelper(uint32_t prog_type, uint32_t helper) {
  bpf_insn prog[] = {insn::Call(static_cast<int32_t>(helper)), insn::MovImm(BPF_REG_0, 0),
                     insn::Exit()};
  auto res = LoadWithLog(prog_type, prog);
  if (res.ok()) return absl::OkStatus();
  absl::string_view log = res.status().message();
  for (absl::string_view unknown_helper :
       {"invalid func", "unknown func", "program of this type cannot use helper"}) {
    if (log.find(unknown_helper) != absl::string_view::npos) {
      return absl::UnimplementedError(absl::StrFormat(
          "helper %u is not available to %s programs on kernel %s", helper,
          sys::ProgramTypeName(prog_type), KernelRelease()));
    }
  }
  // Any other complaint is about arguments: the helper exists.
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<sys::Fd> MinimalProgram(uint32_t type, uint32_t attach_type,
                                       uint32_t attach_btf_id, int32_t ret) {
  bpf_insn prog[] = {insn::MovImm(BPF_REG_0, ret), insn::Exit()};
  sys::ProgLoadRequest req;
  req.type = type;
  req.insns = prog;
  req.name = "probe";
  req.expected_attach_type = attach_type;
  req.attach_btf_id = attach_btf_id;
  TETHER_ASSIGN_OR_RETURN(sys::ProgLoadResult loaded, sys::ProgLoad(req));
  return std::move(loaded.fd);
}

absl::StatusOr<sys::ProgLoadResult> LoadWithLog(uint32_t type, absl::Span<const bpf_insn> insns) {
  sys::ProgLoadRequest req;
  req.type = type;
  req.insns = insns;
  req.name = "probe";
  req.log_level = 1;
  return sys::ProgLoad(req);
}

absl::Status HaveProgramType(uint32_t type) {
  return Cached(absl::StrCat("prog_type:", sys::ProgramTypeName(type)),
                [type] { return ProbeProgramType(type); });
}

absl::Status HaveHelper(uint32_t prog_type, uint32_t helper) {
  return Cached(absl::StrCat("helper:", sys::ProgramTypeName(prog_type), ":", helper),
                [prog_type, helper] { return ProbeHelper(prog_type, helper); });
}

}  // namespace tether::probe
