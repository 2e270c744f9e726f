// An order of the graph's nodes kept up to date edge by edge (Pearce and
// Kelly's dynamic topological sort), so that "does the new tail call's
// target reach its source" is answered without walking the graph: while
// the order is valid, every tail-call and uses-map edge u -> v has
// order(u) < order(v), so the graph of those edges has no cycle at all.
// Internal.
#ifndef TETHER_LIB_GRAPH_ORDER_H_
#define TETHER_LIB_GRAPH_ORDER_H_

#include "graph/store.h"

namespace tether::detail {

// The edges the order covers: every edge a cycle can run along (a tail
// call, a program's use of a program array), and the uses of other maps,
// which end at maps with no tail calls out and so never close a cycle. They
// are covered too because a map node's type can be learnt after its edges.
bool IsOrderedEdge(EdgeKind kind);

// Keeps the order valid after the edge from -> to was added, moving only
// the nodes ordered between to and from; when the edge closes a cycle (or
// would reorder more than a few thousand nodes), the order becomes invalid
// until an edge removal lets a rebuild find the graph acyclic again.
void OrderOnEdgeAdded(Store& store, NodeData* from, NodeData* to);

// An ordered edge went: an invalid order may be rebuilt valid now.
void OrderOnEdgeRemoved(GraphState& s);

// Whether the ordered edges are known to have no cycle. An invalid order
// with edges removed since is rebuilt first (one pass over the graph).
bool OrderProvesAcyclic(Store& store);

}  // namespace tether::detail

#endif  // TETHER_LIB_GRAPH_ORDER_H_
