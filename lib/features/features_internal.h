// What the feature probes share across lib/features/: the answers' helpers
// (cache.cc), minimal maps and programs to probe with, and lookups in the
// kernel's BTF. One file per concept, after cilium/ebpf's features package:
//   cache.cc      the cache, Report() and the three answers
//   map_types.cc  HaveMapType
//   prog_types.cc HaveProgramType, HaveHelper
//   links.cc      HaveLinkKind
//   btf_kinds.cc  HaveBtfKind, HaveBtfFuncLinkage, KernelBtfFeatures
//   misc.cc       everything else, each probe a named feature
#ifndef TETHER_LIB_FEATURES_FEATURES_INTERNAL_H_
#define TETHER_LIB_FEATURES_FEATURES_INTERNAL_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "sys/bpf.h"
#include "tether/probe.h"

namespace tether::probe {

// A probe that takes no argument, as cilium writes one: the name it is
// cached and reported under, the release that brought the feature (for
// messages), and how to ask the kernel.
// The release that brought a map or program type, for messages.
struct TypeRelease {
  uint32_t type;
  const char* since;
};
// `type`'s release in `table`; types older than any listed share one answer.
template <size_t N>
const char* ReleaseOf(const TypeRelease (&table)[N], uint32_t type) {
  for (const TypeRelease& r : table) {
    if (r.type == type) return r.since;
  }
  return "an earlier release";
}

struct Feature {
  const char* name;
  const char* since;
  absl::Status (*probe)(const Feature& self);
};

// Runs `feature`'s probe once per process.
absl::Status Ask(const Feature& feature);

// --- answers (cache.cc) ---

// The "refused here" answer: the kernel knows `feature` (since `since`)
// but `op` failed with `err` although this process holds every privilege.
absl::Status Refused(absl::string_view feature, absl::string_view since, absl::string_view op,
                     int err);


// A probe step's failure, turned into "refused here" when it is one.
absl::Status RefusedOr(const absl::Status& st, absl::string_view feature, absl::string_view since,
                       absl::string_view op);

// CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON and CAP_NET_ADMIN.
bool HoldsBpfPrivileges();

// --- what probes are made of ---

// Smallest valid attributes for a map of `type` (map_types.cc).
sys::MapCreateRequest MinimalMap(uint32_t type);

// A program of `type` that returns `ret` (prog_types.cc).
absl::StatusOr<sys::Fd> MinimalProgram(uint32_t type, uint32_t attach_type = 0,
                                       uint32_t attach_btf_id = 0, int32_t ret = 0);

// Loads a program with the verifier log on, so that a refusal says why:
// probes tell a missing feature from a bad argument by that text.
absl::StatusOr<sys::ProgLoadResult> LoadWithLog(uint32_t type, absl::Span<const bpf_insn> insns);

struct VmlinuxType {
  uint32_t id = 0;
  uint32_t size_or_type = 0;
};

// The type of BTF kind `want_kind` called `name` in the kernel's own BTF
// (misc.cc).
absl::StatusOr<VmlinuxType> FindVmlinuxType(absl::string_view name, uint32_t want_kind);

}  // namespace tether::probe

#endif  // TETHER_LIB_FEATURES_FEATURES_INTERNAL_H_
