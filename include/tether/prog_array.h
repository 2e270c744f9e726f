// ProgramArray: a BPF_MAP_TYPE_PROG_ARRAY, the table that bpf_tail_call()
// jumps through. Every change goes to the object graph, which is how
// tether knows the array's entries when its last handle is about to go.
//
// A default-constructed or moved-from wrapper is empty, like the Map it
// holds: map() is an empty Map, and every operation returns an error
// naming the operation and "the handle is empty" (handle.h).
#ifndef TETHER_PROG_ARRAY_H_
#define TETHER_PROG_ARRAY_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/optional.h"
#include "tether/lifetime.h"
#include "tether/map.h"
#include "tether/program.h"

namespace tether {

class ProgramArray {
 public:
  ProgramArray() = default;

  static absl::StatusOr<ProgramArray> Create(const std::string& name, uint32_t max_entries,
                                             LifetimePolicy policy = LifetimePolicy::kDefault);
  // Wraps an existing map, which must be a program array. For an adopted
  // array (FromId, LoadPinned) the entries are read from the kernel into
  // the graph: a user-space lookup on a program array yields program ids.
  // A freshly created array has none: pass read_entries = false to skip.
  static absl::StatusOr<ProgramArray> FromMap(Map map, bool read_entries = true);

  // Points slot `index` at `program`.
  absl::Status Set(uint32_t index, const Program& program) const;
  // Empties slot `index`. NotFound if it was empty.
  absl::Status Delete(uint32_t index) const;
  // Empties every slot.
  absl::Status Clear() const;
  // The id of the program in slot `index`, or nullopt if it is empty.
  absl::StatusOr<absl::optional<uint32_t>> Get(uint32_t index) const;

  const Map& map() const { return map_; }
  Map& map() { return map_; }
  explicit operator bool() const { return static_cast<bool>(map_); }

 private:
  explicit ProgramArray(Map map) : map_(std::move(map)) {}
  Map map_;
};

}  // namespace tether

#endif  // TETHER_PROG_ARRAY_H_
