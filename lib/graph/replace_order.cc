#include "graph/replace_order.h"

#include <deque>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "graph/store.h"

namespace tether::detail {
namespace {

using Entries = std::map<uint32_t, std::map<uint32_t, uint32_t>>;  // array -> slot -> prog

std::map<uint32_t, uint32_t> EntriesLocked(const Store& store, uint32_t array_id) {
  std::map<uint32_t, uint32_t> out;
  const NodeData* n = store.Find(NodeRef{NodeKind::kMap, array_id});
  if (n == nullptr) return out;
  for (const Edge& e : n->out) {
    if (e.kind == EdgeKind::kTailCall) out[e.slot] = e.peer_ref().id;
  }
  return out;
}

std::string NameOf(const Store& store, NodeRef ref) {
  const NodeData* n = store.Find(ref);
  std::string name = n != nullptr && !n->name.empty() ? n->name : "?";
  return absl::StrFormat("%s '%s' (id %u)", ref.kind == NodeKind::kMap ? "program array" : "program",
                         name, ref.id);
}

// The program arrays a program uses, as the graph recorded at its load.
std::vector<uint32_t> ArraysUsedBy(const Store& store, uint32_t prog_id) {
  std::vector<uint32_t> out;
  const NodeData* n = store.Find(NodeRef{NodeKind::kProgram, prog_id});
  if (n == nullptr) return out;
  for (const Edge& e : n->out) {
    if (e.kind != EdgeKind::kUsesMap) continue;
    const NodeData* m = e.peer;
    if (m != nullptr && IsProgArrayType(m->type)) out.push_back(e.peer_ref().id);
  }
  return out;
}

// Every array reachable from `entry` through the simulated entries.
std::set<uint32_t> ReachableArrays(const Store& store, uint32_t entry, Entries& entries) {
  std::set<uint32_t> arrays, programs{entry};
  std::deque<uint32_t> todo{entry};
  while (!todo.empty()) {
    uint32_t prog = todo.front();
    todo.pop_front();
    for (uint32_t array : ArraysUsedBy(store, prog)) {
      if (!arrays.insert(array).second) continue;
      if (!entries.count(array)) entries[array] = EntriesLocked(store, array);
      for (const auto& [slot, target] : entries[array]) {
        if (programs.insert(target).second) todo.push_back(target);
      }
    }
  }
  return arrays;
}

absl::Status CheckAtSwitch(const Store& store, const ReplacementOrder& order, size_t step,
                           Entries& entries) {
  for (uint32_t array : ReachableArrays(store, order.new_entry_id, entries)) {
    auto need = order.required.find(array);
    if (need == order.required.end()) continue;
    for (uint32_t slot : need->second) {
      if (entries[array].count(slot)) continue;
      return absl::FailedPreconditionError(absl::StrFormat(
          "replacement plan refused: step %u switches the entry to %s while slot %u of %s, "
          "which the new entry reaches, is still empty (every tail call through it would miss); "
          "fill the slot before the switch",
          step, NameOf(store, NodeRef{NodeKind::kProgram, order.new_entry_id}), slot,
          NameOf(store, NodeRef{NodeKind::kMap, array})));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status GraphCheckReplacementOrder(const ReplacementOrder& order) {
  LockedStore store(State());
  Entries entries;  // the arrays touched so far, as the plan leaves them
  bool switched = false;
  for (size_t i = 0; i < order.steps.size(); ++i) {
    const PlannedStep& s = order.steps[i];
    switch (s.kind) {
      case PlannedStep::Kind::kFillSlot:
        if (!entries.count(s.array_id)) entries[s.array_id] = EntriesLocked(store, s.array_id);
        entries[s.array_id][s.slot] = s.prog_id;
        break;
      case PlannedStep::Kind::kSwitchEntry:
        if (switched) {
          return absl::FailedPreconditionError(
              absl::StrFormat("replacement plan refused: step %u switches the entry a second time", i));
        }
        {
          absl::Status st = CheckAtSwitch(store, order, i, entries);
          if (!st.ok()) return st;
        }
        switched = true;
        break;
      case PlannedStep::Kind::kReleaseOld:
        if (!switched) {
          return absl::FailedPreconditionError(absl::StrFormat(
              "replacement plan refused: step %u releases the old build before the entry "
              "switched; the running entry would tail-call into arrays the kernel clears",
              i));
        }
        break;
    }
  }
  if (!switched) {
    return absl::FailedPreconditionError("replacement plan refused: it never switches the entry");
  }
  return absl::OkStatus();
}

std::map<uint32_t, uint32_t> GraphTailCallEntries(uint32_t array_id) {
  LockedStore store(State());
  return EntriesLocked(store, array_id);
}

}  // namespace tether::detail
