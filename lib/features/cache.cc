// The probes' cache, their three answers, Report(), and ProbeAll() to fill it.
#include <sys/utsname.h>

#include <linux/btf.h>

#include <cerrno>
#include <fstream>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/mutex_internal.h"
#include "features/features_internal.h"
#include "features/probe_internal.h"
#include "sys/uapi_names.h"
#include "tether/probe.h"

namespace tether::probe {
namespace {

struct Cache {
  detail::Mutex mu;
  std::map<std::string, absl::Status> results ABSL_GUARDED_BY(mu);
};

Cache& TheCache() {
  static Cache* cache = new Cache();
  return *cache;
}

// Marks a probe's "refused here" answer, so that it cannot be mistaken for
// a PermissionDenied that only says the probe could not run.
constexpr char kAnswerPayload[] = "tether.dev/probe-answer";

// Prefixes a status that is no answer with what it is, keeping its code
// and payloads (the errno).
absl::Status CouldNotRun(absl::string_view probe_name, const absl::Status& st) {
  if (absl::StartsWith(st.message(), "probe ")) return st;  // a nested probe's, already said
  absl::Status out(st.code(), absl::StrCat("probe ", probe_name, " could not run: ", st.message()));
  st.ForEachPayload([&out](absl::string_view key, const absl::Cord& value) {
    out.SetPayload(key, value);
  });
  return out;
}

}  // namespace

absl::Status Cached(absl::string_view name, const std::function<absl::Status()>& probe) {
  Cache& c = TheCache();
  std::string key(name);
  {
    detail::MutexLock lock(&c.mu);
    auto it = c.results.find(key);
    if (it != c.results.end()) return it->second;
  }
  absl::Status result = probe();  // outside the lock: probes may nest
  if (AnswerOf(result) == Answer::kCouldNotRun) result = CouldNotRun(key, result);
  detail::MutexLock lock(&c.mu);
  return c.results.emplace(key, result).first->second;
}

absl::Status Ask(const Feature& feature) {
  return Cached(feature.name, [&feature] { return feature.probe(feature); });
}

namespace testing {
void ForgetAnswers() {
  Cache& c = TheCache();
  detail::MutexLock lock(&c.mu);
  c.results.clear();
}
}  // namespace testing

std::string Report() {
  Cache& c = TheCache();
  detail::MutexLock lock(&c.mu);
  std::string out;
  for (const auto& [name, st] : c.results) {
    Answer answer = AnswerOf(st);
    absl::StrAppend(&out, name, ": ", AnswerName(answer));
    if (answer == Answer::kCouldNotRun) {
      absl::StrAppend(&out, ": ", st.ToString(absl::StatusToStringMode::kWithNoExtraData));
    } else if (answer != Answer::kPresent) {
      absl::StrAppend(&out, ": ", st.message());
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

Answer AnswerOf(const absl::Status& probe_result) {
  if (probe_result.ok()) return Answer::kPresent;
  if (absl::IsUnimplemented(probe_result)) return Answer::kMissing;
  if (absl::IsPermissionDenied(probe_result) && probe_result.GetPayload(kAnswerPayload)) {
    return Answer::kRefused;
  }
  return Answer::kCouldNotRun;
}

const char* AnswerName(Answer answer) {
  switch (answer) {
    case Answer::kPresent: return "present";
    case Answer::kMissing: return "missing";
    case Answer::kRefused: return "refused here";
    case Answer::kCouldNotRun: return "could not run";
  }
  return "?";
}

std::string KernelRelease() {
  struct utsname u;
  if (uname(&u) != 0) return "unknown";
  return u.release;
}

// An EPERM without these privileges says nothing about the kernel; with
// them, it is the kernel refusing.
bool HoldsBpfPrivileges() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) != 0) continue;
    uint64_t caps = 0;
    if (!absl::SimpleHexAtoi(absl::StripAsciiWhitespace(line.substr(7)), &caps)) return false;
    auto has = [caps](int cap) { return (caps >> cap) & 1; };
    constexpr int kCapNetAdmin = 12, kCapSysAdmin = 21, kCapPerfmon = 38, kCapBpf = 39;
    return has(kCapSysAdmin) || (has(kCapBpf) && has(kCapPerfmon) && has(kCapNetAdmin));
  }
  return false;
}

absl::Status Refused(absl::string_view feature, absl::string_view since, absl::string_view op,
                     int err) {
  absl::Status st = absl::PermissionDeniedError(absl::StrFormat(
      "%s: kernel %s knows them (since %s) but refuses them here: %s fails with %s although "
      "this process holds CAP_SYS_ADMIN (or CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN); likely a "
      "lockdown or hardening policy, an LSM or seccomp rule, or a config option they need",
      feature, KernelRelease(), since, op, sys::ErrnoName(err)));
  st.SetPayload(kAnswerPayload, absl::Cord("refused"));
  return st;
}


absl::Status RefusedOr(const absl::Status& st, absl::string_view feature, absl::string_view since,
                       absl::string_view op) {
  if (sys::IsPolicyRefusal(st) && HoldsBpfPrivileges()) {
    return Refused(feature, since, op, sys::StatusErrno(st));
  }
  return st;
}

void ProbeAll() {
  for (uint32_t t = 1; t <= sys::uapi::kMapTypeArena; ++t) {
    if (absl::string_view(sys::MapTypeName(t)) != "unknown") (void)HaveMapType(t);
  }
  for (uint32_t t = 1; t <= sys::uapi::kProgTypeNetfilter; ++t) {
    if (absl::string_view(sys::ProgramTypeName(t)) != "unknown") (void)HaveProgramType(t);
  }
  for (uint32_t k = BTF_KIND_INT; k <= BTF_KIND_ENUM64; ++k) (void)HaveBtfKind(k);
  for (uint32_t l = BTF_FUNC_STATIC; l <= BTF_FUNC_EXTERN; ++l) (void)HaveBtfFuncLinkage(l);
  (void)HaveKprobes();
  (void)HaveVmlinuxBtf();
  (void)HaveLogTrueSize();
  (void)HaveTokens();
  (void)HaveTrampolines();
  (void)HaveBatchOps();
  (void)HaveLookupAndDelete(BPF_MAP_TYPE_STACK_TRACE);
  (void)HaveModifyReturn();
  (void)HaveTypedKsyms();
  // Two kfuncs of vmlinux that the tests use (6.2+).
  (void)HaveKfunc("bpf_task_from_pid");
  (void)HaveKfunc("bpf_rcu_read_lock");
  // The iterator targets that the tests and the map dump path use.
  for (const char* target : {"bpf_map", "bpf_map_elem", "task"}) (void)HaveIterator(target);
  for (int k = static_cast<int>(LinkKind::kXdp); k <= static_cast<int>(LinkKind::kNetnsFlowDissector); ++k) {
    (void)HaveLinkKind(static_cast<LinkKind>(k));
  }
  (void)HaveLinkKind(LinkKind::kStructOps);
  (void)HaveStructOps();
}

}  // namespace tether::probe
