// CO-RE: rewriting a program's field offsets, sizes, type ids and enum
// values so that code compiled against one set of type definitions (the
// object's BTF) reads the structures of another (the running kernel's).
//
// The compiler leaves one record per relocatable instruction: a local
// type, an access string ("0:1:3": array index, then member or element
// indices) and a kind. Relocation finds the target types whose name
// matches the local type's (ignoring a "___flavour" suffix), keeps those
// that match structurally, and requires every survivor to give the same
// answer. A field, type or enumerator the target lacks is not an error by
// itself: existence checks read 0, and instructions that would need the
// missing thing are poisoned so that the verifier refuses them only if
// the program can reach them.
#ifndef TETHER_CORE_H_
#define TETHER_CORE_H_

#include <linux/bpf.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "tether/btf.h"

namespace tether {

// The helper id a poisoned instruction calls. The verifier reports
// "invalid func unknown#195896080" if it is reachable.
inline constexpr int32_t kCorePoisonHelper = 0xbad2310;

absl::string_view CoreReloKindName(CoreReloKind kind);

// Where relocation looks for target types: one BTF, or the running
// kernel's vmlinux followed by its modules' split BTF (searched only for
// names vmlinux has no candidate for, like libbpf does).
class CoreTarget {
 public:
  // Every candidate comes from `btf`, which must outlive the target.
  explicit CoreTarget(const Btf& btf);
  // Candidates come from `primary`, and only for names it has none of,
  // from `fallbacks` (e.g. a vmlinux file and its modules' split BTF).
  // All must outlive the target.
  CoreTarget(const Btf& primary, absl::Span<const Btf* const> fallbacks);
  ~CoreTarget();
  CoreTarget(const CoreTarget&) = delete;
  CoreTarget& operator=(const CoreTarget&) = delete;

  // The running kernel's, shared by the whole process: vmlinux is parsed
  // once, module BTF once on first need.
  static absl::StatusOr<const CoreTarget*> Kernel();

  struct Candidate {
    const Btf* btf;
    uint32_t id;
  };
  // Types whose name without flavour is `essential_name` and whose kind
  // CO-RE treats as `kind` (ENUM and ENUM64 are interchangeable).
  std::vector<Candidate> Candidates(absl::string_view essential_name, BtfKind kind) const;

  // The BTF whose ids TYPE_ID_TARGET relocations return for ids below
  // its NumTypes(), i.e. vmlinux for the kernel.
  const Btf& primary() const { return *btfs_.front(); }

 private:
  struct Index;
  CoreTarget() = default;
  void AddCandidates(const Btf& btf, const Index& index, absl::string_view name, BtfKind kind,
                     std::vector<Candidate>* out) const;
  // Candidates from the kernel modules' BTF, as of the last walk of the
  // kernel's BTF objects; a name that finds nothing walks again (a module
  // loaded since), unless it already missed since the last walk.
  void AddModuleCandidates(absl::string_view name, BtfKind kind,
                           std::vector<Candidate>* out) const;

  std::vector<const Btf*> btfs_;                 // [0]: the primary, then fallbacks
  std::vector<std::unique_ptr<Index>> indexes_;  // flavoured names, per btf
  bool kernel_ = false;  // fallbacks are the running kernel's modules, as loaded now
};

// The name without a "___flavour" suffix: "task_struct___old" ->
// "task_struct" (the last X___Y split where X and Y do not start or end
// with an underscore).
absl::string_view CoreEssentialName(absl::string_view name);

// The outcome of one relocation.
struct CoreFixup {
  CoreReloKind kind = CoreReloKind::kFieldByteOffset;
  // What the compiler put in the instruction, and what goes there now.
  uint64_t local_value = 0;
  uint64_t target_value = 0;
  // The instruction must be replaced by a call of kCorePoisonHelper.
  bool poison = false;
  // The instruction must hold local_value before it is patched. Bitfield
  // offsets and sizes are the compiler's choice, so they are not checked.
  bool validate = true;
  // LDX/ST/STX through a plain field: the memory access size before and
  // after (0 otherwise), and whether changing it keeps the value right
  // (pointers and unsigned integers only).
  uint32_t local_size = 0;
  uint32_t target_size = 0;
  bool size_change_unsafe = false;
  // The matched target root type (0: none).
  const Btf* target_btf = nullptr;
  uint32_t target_id = 0;
  // "[12] struct task_struct.pid (0:54)" and the target's counterpart,
  // for messages.
  std::string local_spec;
  std::string target_spec;
  // Why it was poisoned, for the error if the verifier reaches it.
  std::string poison_reason;
};

// Computes one relocation of `local` against `target` without touching
// instructions.
absl::StatusOr<CoreFixup> ComputeCoreFixup(const Btf& local, const CoreRelo& relo,
                                           const CoreTarget& target);

// An instruction replaced by a poison call, and why.
struct CorePoison {
  uint32_t insn = 0;
  uint32_t count = 1;  // 2 for a 64-bit immediate load
  std::string reason;
};

// Relocates `insns` in place (relo.insn_off indexes them). Errors name
// `program`, the instruction, the relocation and its access string.
// Instructions that were poisoned are listed in *poisoned if given.
absl::Status ApplyCoreRelocations(absl::string_view program, const Btf& local,
                                  absl::Span<const CoreRelo> relos, absl::Span<bpf_insn> insns,
                                  const CoreTarget& target,
                                  std::vector<CorePoison>* poisoned = nullptr);

// If `load_error` is a verifier rejection at a poisoned instruction,
// returns it with the relocation that poisoned it explained; otherwise
// returns it unchanged.
absl::Status ExplainCorePoison(const absl::Status& load_error,
                               absl::Span<const CorePoison> poisoned);

}  // namespace tether

#endif  // TETHER_CORE_H_
