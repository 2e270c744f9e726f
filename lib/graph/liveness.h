// What keeps an object alive, and the kernel's rule for program arrays
// (LIFECYCLE.md 2): when an array's last user reference goes, the kernel
// clears every entry. Internal.
#ifndef TETHER_LIB_GRAPH_LIVENESS_H_
#define TETHER_LIB_GRAPH_LIVENESS_H_

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "graph/store.h"
#include "tether/graph.h"

namespace tether::detail {

class Liveness {
 public:
  explicit Liveness(const Store& store) : store_(store) {}

  bool Pinned(const NodeData& n) const;
  // An array with a user reference keeps its entries: a handle, a kept fd,
  // or a pin. Holders in other processes count too.
  bool ArrayHasUserRef(const NodeData& n) const;
  // Whether something keeps `ref` alive, not counting the entries of
  // `excluded_array` (the array whose fate is being decided).
  bool Live(NodeRef ref, NodeRef excluded_array = NodeRef{NodeKind::kPin, 0}) const;
  // Programs that use `array` and stay alive without it.
  std::vector<NodeRef> LiveUsers(NodeRef array) const;
  // The array's filled slots, in order.
  std::vector<uint32_t> Slots(const NodeData& array) const;

  // The hazard: the last user reference of an array with entries, which
  // live programs tail-call through, is about to go. Fills `users` with
  // those programs.
  bool OrphanHazard(const NodeData& array, std::vector<NodeRef>* users) const;

 private:
  bool Live(NodeRef ref, NodeRef excluded_array, absl::flat_hash_set<NodeRef>* seen) const;

  const Store& store_;
};

// Plays the kernel's part: empties `ref` when it is a program array that
// has just lost its last user reference.
void ClearIfLastUserRefGone(Store& store, NodeRef ref);

}  // namespace tether::detail

#endif  // TETHER_LIB_GRAPH_LIVENESS_H_
