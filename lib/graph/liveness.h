// What keeps an object alive, and the kernel's rule for program arrays
// (LIFECYCLE.md 2): when an array's last user reference goes, the kernel
// clears every entry. Internal.
#ifndef TETHER_LIB_GRAPH_LIVENESS_H_
#define TETHER_LIB_GRAPH_LIVENESS_H_

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "graph/store.h"
#include "tether/graph.h"

namespace tether::detail {

// The nodes a liveness walk has visited: a short list, since the usual
// walk visits a few (no allocation), and a hash set once it grows.
class VisitedNodes {
 public:
  // False when `ref` was visited already.
  bool Insert(NodeRef ref);

 private:
  absl::InlinedVector<NodeRef, 16> list_;
  absl::flat_hash_set<NodeRef> set_;  // all of them, once list_ is full
};

class Liveness {
 public:
  // Which references count.
  enum class Count {
    kAll,             // every reference the kernel sees
    kNoDeferred,      // all but the fds the graph holds for deferred verdicts
    kOutsideProcess,  // only what outlives this process's handles: pins,
                      // legacy hooks, fds in other processes (and what those hold)
  };
  explicit Liveness(const Store& store, Count count = Count::kAll)
      : store_(store), count_(count) {}

  bool Pinned(const NodeData& n) const;
  // An array with a user reference keeps its entries: a handle, a kept or
  // deferred fd, or a pin. Holders in other processes count too.
  bool ArrayHasUserRef(const NodeData& n) const;
  // The references of `n` that are not edges (handles, fds, hooks).
  bool HasOwnHolder(const NodeData& n) const;
  // Whether something keeps `ref` alive, not counting the entries of
  // `excluded_array` (the array whose fate is being decided).
  bool Live(NodeRef ref, NodeRef excluded_array = NodeRef{NodeKind::kPin, 0}) const;
  bool Live(const NodeData& n, NodeRef excluded_array) const;
  // Programs that use `array` and stay alive without it.
  std::vector<NodeRef> LiveUsers(NodeRef array) const;
  // The array's filled slots, in order.
  std::vector<uint32_t> Slots(const NodeData& array) const;

  // The hazard: the last user reference of an array with entries, which
  // live programs tail-call through, is about to go (its tether handles
  // are taken as going). Fills `users` with
  // those programs.
  bool OrphanHazard(const NodeData& array, std::vector<NodeRef>* users) const;

 private:
  bool Live(const NodeData& n, NodeRef excluded_array, VisitedNodes* seen) const;

  const Store& store_;
  Count count_;
};

// Plays the kernel's part: empties `ref` when it is a program array that
// has just lost its last user reference.
void ClearIfLastUserRefGone(Store& store, NodeRef ref);

}  // namespace tether::detail

#endif  // TETHER_LIB_GRAPH_LIVENESS_H_
