// Live replacement of a running tail-call pipeline (tether/replace.h).
#include "tether/replace.h"

#include <linux/membarrier.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "graph/replace_order.h"
#include "load/compat.h"

namespace tether {
namespace {

constexpr char kLinkPinName[] = "link";

// .rodata and .kconfig are part of a build: their values are what the
// verifier proved the new programs against.
bool BelongsToBuild(const MapSpec& m) { return m.freeze; }

bool IsProgArray(const Map& m) { return m.type() == BPF_MAP_TYPE_PROG_ARRAY; }

bool SameObject(const Map& a, const Map& b) { return a && b && a.id() == b.id(); }

// The kernel keeps 15 bytes of a program's name.
bool SameProgramName(const std::string& spec_name, const std::string& kernel_name) {
  return spec_name == kernel_name ||
         (kernel_name.size() == BPF_OBJ_NAME_LEN - 1 &&
          spec_name.compare(0, kernel_name.size(), kernel_name) == 0);
}

// Returns once every CPU has left any RCU read-side section it was in,
// and so any run of the old entry that started before the switch: BPF
// programs run under RCU. MEMBARRIER_CMD_GLOBAL is synchronize_rcu() seen
// from user space; where it is refused (nohz_full), a pause far longer
// than one program run stands in.
void WaitForRunsInFlight() {
  if (syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0) return;
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

absl::StatusOr<Program> RunningEntry(const Pipeline& p) {
  if (auto it = p.programs.find(p.entry); it != p.programs.end() && it->second) return it->second;
  uint32_t id = 0;
  if (p.link) {
    TETHER_ASSIGN_OR_RETURN(id, p.link.ProgramId());
  } else if (p.entry_array) {
    TETHER_ASSIGN_OR_RETURN(absl::optional<uint32_t> slot, p.entry_array.Get(p.entry_slot));
    if (!slot) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "pipeline '%s': the dispatcher's slot %u is empty: nothing runs to replace", p.entry,
          p.entry_slot));
    }
    id = *slot;
  } else {
    return absl::InvalidArgumentError(absl::StrFormat(
        "pipeline '%s': neither a link nor a dispatcher slot runs the entry", p.entry));
  }
  return Program::FromId(id);
}

// The name, in the new build, of the program the running build keeps in
// an array slot: by handle when the pipeline owns it, else the kernel's.
absl::StatusOr<std::string> RunningProgramName(const Pipeline& p, uint32_t prog_id) {
  for (const auto& [name, prog] : p.programs) {
    if (prog && prog.id() == prog_id) return name;
  }
  auto prog = Program::FromId(prog_id);
  if (!prog.ok()) return prog.status();
  return prog->name();
}

}  // namespace

// Builds the load options and the plan; one step per method.
class ReplacementPlanner {
 public:
  ReplacementPlanner(const Pipeline& running, const CollectionSpec& spec, const ReplaceOptions& opt)
      : running_(running), spec_(spec), opt_(opt), load_(opt.load) {}

  absl::Status ChooseMaps() {
    const bool in_place = opt_.reuse_program_arrays || !running_.pin_dir.empty();
    for (const auto& [name, m] : spec_.maps) {
      auto old = running_.maps.find(name);
      if (old == running_.maps.end() || !old->second || BelongsToBuild(m) ||
          opt_.fresh_maps.count(name) || load_.replace_maps.count(name)) {
        ++out_.stats_.maps_new;
        continue;
      }
      const Map& have = old->second;
      if (m.type == BPF_MAP_TYPE_PROG_ARRAY && !in_place) {
        ++out_.stats_.arrays_new;
        continue;
      }
      absl::Status fits = detail::CheckMapMatchesSpec(m, have, "the running build's map");
      if (fits.ok()) {
        load_.replace_maps.emplace(name, have);
        ++(m.type == BPF_MAP_TYPE_PROG_ARRAY ? out_.stats_.arrays_in_place : out_.stats_.maps_kept);
        continue;
      }
      auto migration = opt_.migrations.find(name);
      if (migration == opt_.migrations.end() || m.type == BPF_MAP_TYPE_PROG_ARRAY) {
        std::string field;
        IsIncompatiblePin(fits, &field);
        return absl::FailedPreconditionError(absl::StrFormat(
            "replacement: map '%s' changed its %s (%s); %s", name, field, fits.message(),
            m.type == BPF_MAP_TYPE_PROG_ARRAY
                ? "a program array updated in place cannot change its layout"
                : "give ReplaceOptions::migrations an entry for it, or list it in fresh_maps"));
      }
      out_.migrations_.emplace(name, migration->second);
      out_.migrated_.emplace(name, m);
      ++out_.stats_.maps_migrated;
    }
    return absl::OkStatus();
  }

  absl::Status Load() {
    out_.entry_ = running_.entry;
    TETHER_ASSIGN_OR_RETURN(out_.old_entry_, RunningEntry(running_));
    TETHER_ASSIGN_OR_RETURN(out_.collection_, Collection::Load(spec_, load_));
    if (!out_.collection_.program(running_.entry)) {
      return absl::NotFoundError(absl::StrFormat(
          "replacement: the new build '%s' has no entry program '%s'", spec_.source, running_.entry));
    }
    return absl::OkStatus();
  }

  // Every slot the running build filled, and every static one, must hold a
  // program of the new build before the switch.
  absl::Status PlanFills() {
    for (const auto& [name, map] : out_.collection_.maps()) {
      if (!IsProgArray(map)) continue;
      std::set<uint32_t>& required = out_.required_[name];
      for (const MapInitEntry& e : spec_.maps.at(name).init) required.insert(e.key);
      auto old = running_.maps.find(name);
      if (old == running_.maps.end() || !old->second) continue;
      if (!SameObject(old->second, map)) out_.new_arrays_.insert(name);
      for (const auto& [slot, prog_id] : detail::GraphTailCallEntries(old->second.id())) {
        if (required.count(slot)) continue;
        TETHER_RETURN_IF_ERROR(PlanFill(name, slot, prog_id));
        required.insert(slot);
      }
    }
    out_.steps_.push_back({ReplacementStep::Kind::kSwitchEntry, "", 0, ""});
    out_.steps_.push_back({ReplacementStep::Kind::kReleaseOld, "", 0, ""});
    return absl::OkStatus();
  }

  PreparedReplacement Finish() { return std::move(out_); }

 private:
  absl::Status PlanFill(const std::string& array, uint32_t slot, uint32_t old_prog_id) {
    auto old_name = RunningProgramName(running_, old_prog_id);
    if (!old_name.ok()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "replacement: slot %u of program array '%s' holds program id %u, which cannot be "
          "named (%s)", slot, array, old_prog_id, old_name.status().message()));
    }
    for (const auto& [name, prog] : out_.collection_.programs()) {
      if (!SameProgramName(name, *old_name)) continue;
      out_.steps_.push_back({ReplacementStep::Kind::kFillSlot, array, slot, name});
      ++out_.stats_.slots_filled;
      return absl::OkStatus();
    }
    return absl::FailedPreconditionError(absl::StrFormat(
        "replacement: slot %u of program array '%s' holds program '%s' (id %u), which the new "
        "build '%s' does not have; the slot would be left empty or stale",
        slot, array, *old_name, old_prog_id, spec_.source));
  }

  const Pipeline& running_;
  const CollectionSpec& spec_;
  const ReplaceOptions& opt_;
  CollectionOptions load_;
  PreparedReplacement out_;
};

absl::StatusOr<PreparedReplacement> PrepareReplacement(const Pipeline& running,
                                                       const CollectionSpec& new_spec,
                                                       const ReplaceOptions& options) {
  ReplacementPlanner planner(running, new_spec, options);
  TETHER_RETURN_IF_ERROR(planner.ChooseMaps());
  TETHER_RETURN_IF_ERROR(planner.Load());
  TETHER_RETURN_IF_ERROR(planner.PlanFills());
  return planner.Finish();
}

absl::Status PreparedReplacement::Check() const {
  detail::ReplacementOrder order;
  order.new_entry_id = collection_.program(entry_).id();
  for (const ReplacementStep& s : steps_) {
    detail::PlannedStep p;
    switch (s.kind) {
      case ReplacementStep::Kind::kFillSlot: {
        Map array = collection_.map(s.array);
        Program prog = collection_.program(s.program);
        if (!array || !prog) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "replacement plan: fill of slot %u names array '%s' and program '%s'; the new build "
              "lacks one of them", s.slot, s.array, s.program));
        }
        p = {detail::PlannedStep::Kind::kFillSlot, array.id(), s.slot, prog.id()};
        break;
      }
      case ReplacementStep::Kind::kSwitchEntry:
        p.kind = detail::PlannedStep::Kind::kSwitchEntry;
        break;
      case ReplacementStep::Kind::kReleaseOld:
        p.kind = detail::PlannedStep::Kind::kReleaseOld;
        break;
    }
    order.steps.push_back(p);
  }
  for (const auto& [name, slots] : required_) order.required[collection_.map(name).id()] = slots;
  return detail::GraphCheckReplacementOrder(order);
}

absl::Status PreparedReplacement::SwitchEntry(const Pipeline& running) const {
  Program next = collection_.program(entry_);
  if (running.link) return running.link.Update(next, old_entry_);
  // A dispatcher's slot: one xchg, like every other slot. It has no
  // compare-and-swap, so the check that the slot still runs the old entry
  // is as close before the swap as user space can make it.
  TETHER_ASSIGN_OR_RETURN(absl::optional<uint32_t> now, running.entry_array.Get(running.entry_slot));
  if (!now || *now != old_entry_.id()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "replacement: the dispatcher's slot %u no longer runs the entry the plan replaces (id %u)",
        running.entry_slot, old_entry_.id()));
  }
  return running.entry_array.Set(running.entry_slot, next);
}

absl::Status PreparedReplacement::RunMigrations(const Pipeline& running) const {
  for (const auto& [name, migrate] : migrations_) {
    absl::Status st = migrate(running.maps.at(name), migrated_.at(name), collection_.map(name));
    if (!st.ok()) {
      return absl::Status(st.code(), absl::StrFormat("replacement: migrating map '%s': %s", name,
                                                     st.message()));
    }
  }
  return absl::OkStatus();
}

// The old build goes: its arrays that the new build does not share are
// retired on purpose (no orphan warning: nothing runs through them any
// more), and a pinned pipeline's pins now name the new build's maps.
absl::Status PreparedReplacement::ReleaseOld(Pipeline& running) {
  WaitForRunsInFlight();
  for (const std::string& name : new_arrays_) {
    auto old = running.maps.find(name);
    if (old != running.maps.end() && old->second) old->second.SetLifetimePolicy(LifetimePolicy::kIgnore);
  }
  Pipeline next;
  next.maps = collection_.maps();
  next.programs = collection_.programs();
  next.entry = running.entry;
  next.link = running.link;
  next.entry_array = running.entry_array;
  next.entry_slot = running.entry_slot;
  std::string dir = running.pin_dir;
  running = std::move(next);
  if (dir.empty()) return absl::OkStatus();
  return PinPipeline(running, dir);
}

absl::Status PreparedReplacement::Commit(Pipeline& running) {
  TETHER_RETURN_IF_ERROR(RunMigrations(running));
  TETHER_RETURN_IF_ERROR(Check());
  for (const ReplacementStep& s : steps_) {
    switch (s.kind) {
      case ReplacementStep::Kind::kFillSlot: {
        TETHER_ASSIGN_OR_RETURN(ProgramArray array,
                                ProgramArray::FromMap(collection_.map(s.array), /*read_entries=*/false));
        TETHER_RETURN_IF_ERROR(array.Set(s.slot, collection_.program(s.program)));
        break;
      }
      case ReplacementStep::Kind::kSwitchEntry:
        TETHER_RETURN_IF_ERROR(SwitchEntry(running));
        break;
      case ReplacementStep::Kind::kReleaseOld:
        TETHER_RETURN_IF_ERROR(ReleaseOld(running));
        break;
    }
  }
  return absl::OkStatus();
}

absl::Status ReplacePipeline(Pipeline& running, const CollectionSpec& new_spec,
                             const ReplaceOptions& options, ReplaceStats* stats) {
  TETHER_ASSIGN_OR_RETURN(PreparedReplacement prepared, PrepareReplacement(running, new_spec, options));
  if (stats != nullptr) *stats = prepared.stats();
  return prepared.Commit(running);
}

Pipeline Pipeline::FromCollection(const Collection& collection, const std::string& entry, Link link) {
  Pipeline p;
  p.maps = collection.maps();
  p.programs = collection.programs();
  p.entry = entry;
  p.link = std::move(link);
  return p;
}

absl::StatusOr<Pipeline> Pipeline::AdoptPinned(const CollectionSpec& spec, const std::string& dir,
                                               const std::string& entry) {
  Pipeline p;
  p.entry = entry;
  p.pin_dir = dir;
  for (const auto& [name, m] : spec.maps) {
    if (BelongsToBuild(m)) continue;
    std::string path = absl::StrCat(dir, "/", name);
    struct stat st;
    if (stat(path.c_str(), &st) != 0) continue;  // a map the running build did not have
    TETHER_ASSIGN_OR_RETURN(Map map, Map::LoadPinned(path));
    if (IsProgArray(map)) {
      // Its entries go into the graph: the plan refills every one of them.
      TETHER_RETURN_IF_ERROR(ProgramArray::FromMap(map, /*read_entries=*/true).status());
    }
    p.maps.emplace(name, std::move(map));
  }
  TETHER_ASSIGN_OR_RETURN(p.link, Link::LoadPinned(absl::StrCat(dir, "/", kLinkPinName)));
  return p;
}

absl::Status PinPipeline(Pipeline& pipeline, const std::string& dir) {
  for (const auto& [name, map] : pipeline.maps) {
    // Frozen data sections have no spec name here; they are the sections'.
    if (!name.empty() && name[0] == '.') continue;
    std::string path = absl::StrCat(dir, "/", name);
    if (map.PinPath() == path) continue;
    auto pinned = Map::LoadPinned(path);
    if (pinned.ok() && pinned->id() == map.id()) continue;
    if (pinned.ok()) unlink(path.c_str());  // a migrated map: the pin moves to the new one
    TETHER_RETURN_IF_ERROR(map.Pin(path));
  }
  if (pipeline.link) {
    std::string path = absl::StrCat(dir, "/", kLinkPinName);
    if (pipeline.link.PinPath() != path && !Link::LoadPinned(path).ok()) {
      TETHER_RETURN_IF_ERROR(pipeline.link.Pin(path));
    }
  }
  pipeline.pin_dir = dir;
  return absl::OkStatus();
}

}  // namespace tether
