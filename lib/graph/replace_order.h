// The order of a live replacement, checked against the object graph before
// any of it runs: the entry may switch only once every program array that
// the new entry reaches has every slot it needs filled. Internal: the
// replacement (lib/upgrade/) builds the plan from handles; the graph knows
// only kernel ids.
#ifndef TETHER_LIB_GRAPH_REPLACE_ORDER_H_
#define TETHER_LIB_GRAPH_REPLACE_ORDER_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace tether::detail {

struct PlannedStep {
  enum class Kind { kFillSlot, kSwitchEntry, kReleaseOld };
  Kind kind = Kind::kFillSlot;
  // kFillSlot: program `prog_id` goes into slot `slot` of array `array_id`.
  uint32_t array_id = 0;
  uint32_t slot = 0;
  uint32_t prog_id = 0;
};

struct ReplacementOrder {
  // The program the entry switches to.
  uint32_t new_entry_id = 0;
  std::vector<PlannedStep> steps;
  // Per program array id: the slots that must hold a program when the
  // entry switches (the old build's filled slots and the static ones).
  std::map<uint32_t, std::set<uint32_t>> required;
};

// Plays `order` on the graph's current tail-call entries: the fills before
// the switch are applied, then every program array reachable from the new
// entry (program -> used program array -> entry program -> ...) is checked
// for its required slots. FailedPrecondition naming the array, the slot and
// the step if one would be empty at the switch, if the switch is missing,
// or if the old build is released before the switch.
absl::Status GraphCheckReplacementOrder(const ReplacementOrder& order);

// The tail-call entries of program array `array_id` the graph knows
// (slot -> program id): those set through this process's handles and
// those read from the kernel when an array was adopted.
std::map<uint32_t, uint32_t> GraphTailCallEntries(uint32_t array_id);

}  // namespace tether::detail

#endif  // TETHER_LIB_GRAPH_REPLACE_ORDER_H_
