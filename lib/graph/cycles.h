// The program -> array -> program cycles (LIFECYCLE.md 2): the references
// that the kernel breaks by clearing an array. Internal.
#ifndef TETHER_LIB_GRAPH_CYCLES_H_
#define TETHER_LIB_GRAPH_CYCLES_H_

#include "graph/store.h"
#include "tether/graph.h"

namespace tether::detail {

class CycleFinder {
 public:
  explicit CycleFinder(Store& store) : store_(store) {}

  // Records every cycle that the new edge from -> to closes: the paths
  // to ~> from over tail-call and uses-array edges.
  void OnNewEdge(NodeRef from, NodeRef to, EdgeKind kind);
  // The same for nodes already at hand.
  void OnNewEdge(const NodeData& from, NodeData& to, EdgeKind kind);
  // Drops the recorded cycles that an edge removal has opened since.
  void DropOpenCycles();

 private:
  // Whether an edge of this kind into `to` can be part of a cycle: a tail
  // call, or a program's use of a program array.
  bool Follows(EdgeKind kind, NodeRef to) const;
  bool EnterableAlongCycle(const NodeData& start) const;
  // Whether from -> to is there twice (two slots of one array holding the
  // same program), the new edge counted.
  bool HasParallelCycleEdge(const NodeData& from, NodeRef to) const;
  void Search(NodeRef from, NodeData& to);
  void AddCycle(Cycle c);
  bool HasCycleEdge(NodeRef from, NodeRef to) const;
  bool Closed(const Cycle& c) const;

  Store& store_;
};

}  // namespace tether::detail

#endif  // TETHER_LIB_GRAPH_CYCLES_H_
