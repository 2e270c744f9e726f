// Live replacement of a running tail-call pipeline: an entry program
// behind a link (or a dispatcher's array slot), the program arrays it
// tail-calls through, and the maps its programs share, swapped for a new
// build of the same object without a moment at which a reachable slot is
// empty, so that no packet's tail call misses.
//
// The order (docs/lifecycle.md, "Replacing a running pipeline"):
//   1. load the new build; shared maps whose layout did not change are
//      kept (the same kernel maps, with their contents), changed ones need
//      a migration;
//   2. fill every slot of every program array the new entry reaches (the
//      static `.values`, and every slot the running build had filled);
//   3. switch the entry atomically: BPF_LINK_UPDATE with BPF_F_REPLACE and
//      the old program, or one xchg of the dispatcher's slot;
//   4. wait until no CPU still runs the old entry, then release the old
//      build.
// The object graph checks the plan before any of it runs, and refuses one
// that would switch the entry while a reachable slot is empty.
#ifndef TETHER_REPLACE_H_
#define TETHER_REPLACE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tether/collection.h"
#include "tether/collection_spec.h"
#include "tether/link.h"
#include "tether/map.h"
#include "tether/prog_array.h"
#include "tether/program.h"

namespace tether {

// One running build: its maps and programs by spec name, and where its
// entry program runs.
struct Pipeline {
  std::map<std::string, Map> maps;
  // May be empty for an adopted pipeline: its programs are then known
  // only through the link and the arrays' entries.
  std::map<std::string, Program> programs;
  std::string entry;  // the entry program's name, the same in every build
  // The hook: a link that runs the entry, or else slot `entry_slot` of
  // `entry_array` (a dispatcher that tail-calls into the pipeline).
  Link link;
  ProgramArray entry_array;
  uint32_t entry_slot = 0;
  // Non-empty: the pipeline lives pinned in this bpffs directory
  // (PinPipeline), its program arrays are updated in place, and the new
  // build's maps are pinned there too.
  std::string pin_dir;

  static Pipeline FromCollection(const Collection& collection, const std::string& entry, Link link);
  // The agent-upgrade case: adopts what another process left with
  // PinPipeline(): every map of `spec` pinned at <dir>/<name> (program
  // arrays with their entries read from the kernel) and the entry link at
  // <dir>/link. Frozen data sections (.rodata, .kconfig) belong to a build
  // and are not adopted.
  static absl::StatusOr<Pipeline> AdoptPinned(const CollectionSpec& spec, const std::string& dir,
                                              const std::string& entry);
};

// Pins every map of `pipeline` but frozen data sections at <dir>/<name>
// and its link at <dir>/link, so that the arrays and the attachment
// outlive the process. Sets pipeline.pin_dir.
absl::Status PinPipeline(Pipeline& pipeline, const std::string& dir);

// Copies what it wants from the running build's map into the new build's
// (made from `new_spec`, empty). Runs before the entry switches.
using MapMigration =
    std::function<absl::Status(const Map& old_map, const MapSpec& new_spec, const Map& new_map)>;

struct ReplaceOptions {
  // For loading the new build. replace_maps is filled by the replacement
  // with the kept maps (entries given here win).
  CollectionOptions load;
  // Update the running build's program arrays in place, slot by slot (each
  // update is one atomic xchg in the kernel), rather than filling new
  // arrays. A pinned pipeline always does.
  bool reuse_program_arrays = false;
  // By map name: how to carry a map whose spec changed. Without one, such
  // a map is refused with FailedPrecondition naming the map and the field.
  absl::flat_hash_map<std::string, MapMigration> migrations;
  // Maps to make new although their layout did not change (their contents
  // start from the spec). Frozen data sections always are.
  std::set<std::string> fresh_maps;
};

// One step of a replacement plan, by names in the new build.
struct ReplacementStep {
  enum class Kind { kFillSlot, kSwitchEntry, kReleaseOld };
  Kind kind = Kind::kFillSlot;
  std::string array;    // kFillSlot
  uint32_t slot = 0;    // kFillSlot
  std::string program;  // kFillSlot
};

struct ReplaceStats {
  uint32_t maps_kept = 0;
  uint32_t maps_migrated = 0;
  uint32_t maps_new = 0;
  uint32_t arrays_in_place = 0;
  uint32_t arrays_new = 0;
  uint32_t slots_filled = 0;  // by the plan, besides the static `.values`
};

// A new build loaded next to the running one, and the plan that switches
// to it. Nothing the running pipeline reaches has changed yet, except
// that in-place arrays already hold the new build's static entries (each
// written by one xchg, so never empty).
class PreparedReplacement {
 public:
  // The plan, in order. Tests and tools may reorder it; Commit checks it.
  std::vector<ReplacementStep>& steps() { return steps_; }
  const std::vector<ReplacementStep>& steps() const { return steps_; }
  const Collection& collection() const { return collection_; }
  const ReplaceStats& stats() const { return stats_; }

  // Asks the object graph whether the plan leaves a slot that the new
  // entry reaches empty at the switch (FailedPrecondition if so).
  absl::Status Check() const;
  // Runs the migrations, checks the plan, then runs it. On success
  // `running` is the new pipeline and the old build's handles are gone.
  // A failure before the switch leaves `running` and its hook as they
  // were (in-place arrays keep the slots already swapped: still full).
  absl::Status Commit(Pipeline& running);

 private:
  friend absl::StatusOr<PreparedReplacement> PrepareReplacement(const Pipeline&,
                                                                const CollectionSpec&,
                                                                const ReplaceOptions&);
  friend class ReplacementPlanner;
  absl::Status RunMigrations(const Pipeline& running) const;
  absl::Status SwitchEntry(const Pipeline& running) const;
  absl::Status ReleaseOld(Pipeline& running);
  Collection collection_;
  std::string entry_;
  Program old_entry_;  // what the switch expects the hook to run
  std::vector<ReplacementStep> steps_;
  // Map name -> required slots, for Check().
  std::map<std::string, std::set<uint32_t>> required_;
  absl::flat_hash_map<std::string, MapMigration> migrations_;
  std::map<std::string, MapSpec> migrated_;  // the new specs of migrated maps
  std::set<std::string> new_arrays_;  // arrays of the new build that are not the running one's
  ReplaceStats stats_;
};

absl::StatusOr<PreparedReplacement> PrepareReplacement(const Pipeline& running,
                                                       const CollectionSpec& new_spec,
                                                       const ReplaceOptions& options = {});

// PrepareReplacement, then Commit. Errors name the map, array, slot or
// program at fault; a map whose spec changed without a migration is
// FailedPrecondition "map '<name>' changed its <field> (...)".
absl::Status ReplacePipeline(Pipeline& running, const CollectionSpec& new_spec,
                             const ReplaceOptions& options = {}, ReplaceStats* stats = nullptr);

}  // namespace tether

#endif  // TETHER_REPLACE_H_
