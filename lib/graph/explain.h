// The graph's words: labels for objects, why an object is alive, what
// breaks when a reference goes, and the orphaned-array warning. Internal.
#ifndef TETHER_LIB_GRAPH_EXPLAIN_H_
#define TETHER_LIB_GRAPH_EXPLAIN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "graph/liveness.h"
#include "graph/store.h"
#include "tether/graph.h"

namespace tether::detail {

class Narrator {
 public:
  explicit Narrator(const Store& store) : store_(store), live_(store) {}

  // "program array 'jmp' (id 7)", "pin /sys/fs/bpf/x".
  std::string Label(NodeRef ref) const;
  // "jmp (id 7)".
  std::string ShortLabel(NodeRef ref) const;
  // [0..2, 5] reads better than [0, 1, 2, 5].
  static std::string FormatSlots(const std::vector<uint32_t>& slots);

  // The warning (or refusal) for an orphan hazard; `what` is "warning",
  // "refused" or "close refused", `when` "is going", "went earlier" or
  // "would go".
  std::string HazardMessage(const NodeData& array, const std::vector<NodeRef>& users,
                            absl::string_view what, absl::string_view when) const;

  // One line per reference that holds `ref`, and what holds that, indented.
  void Explain(NodeRef ref, int depth, absl::flat_hash_set<NodeRef>* seen,
               std::vector<std::string>* lines) const;

 private:
  void ExplainOwnHolders(const NodeData& n, const std::string& indent,
                         std::vector<std::string>* lines) const;

  const Store& store_;
  Liveness live_;
};

// Which references a WhatBreaks question takes away from an object.
enum class Removal {
  kProcessRefs,  // its tether handles, and the KeepAlive or deferred fd
  kAllUserRefs,  // those, every pin on it, and fds in other processes
};

// What stops working when `ref` (an object, or a pin node: that pin) loses
// the references `how` names. Computed on a copy of the graph with them
// removed and the kernel's rule played out. See what_breaks.cc.
std::vector<std::string> WhatBreaksOf(const Store& store, NodeRef ref, Removal how);

}  // namespace tether::detail

#endif  // TETHER_LIB_GRAPH_EXPLAIN_H_
