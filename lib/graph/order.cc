#include "graph/order.h"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace tether::detail {
namespace {

// How many nodes one edge may reorder. Pearce-Kelly's worst case is a long
// chain built against the order (every array first, then the programs that
// link them), where each edge would reorder the chain behind it. Past this
// the order is given up (invalid, not stale): new edges are searched from
// as before the order existed, until an edge removal lets a rebuild try.
constexpr size_t kMaxRegion = 4096;

bool Ordered(const Edge& e) { return IsOrderedEdge(e.kind); }

bool ByOrder(const NodeData* a, const NodeData* b) { return a->order < b->order; }

// The nodes `to` reaches with an order below `from`'s; false when `from`
// is among them (the new edge closed a cycle) or past kMaxRegion.
bool ForwardRegion(NodeData* to, NodeData* from, uint64_t mark,
                   std::vector<NodeData*>* region) {
  to->mark = mark;
  region->push_back(to);
  for (size_t i = 0; i < region->size(); ++i) {
    for (const Edge& e : (*region)[i]->out) {
      if (!Ordered(e)) continue;
      NodeData* w = e.peer;
      if (w->mark == mark) continue;
      if (w == from) return false;
      if (w->order > from->order) continue;
      w->mark = mark;
      region->push_back(w);
      if (region->size() > kMaxRegion) return false;
    }
  }
  return true;
}

// The nodes that reach `from` with an order above `to`'s; false past
// kMaxRegion.
bool BackwardRegion(NodeData* from, uint64_t lower, uint64_t mark,
                    std::vector<NodeData*>* region) {
  from->mark = mark;
  region->push_back(from);
  for (size_t i = 0; i < region->size(); ++i) {
    for (const Edge& e : (*region)[i]->in) {
      if (!Ordered(e)) continue;
      NodeData* w = e.peer;
      if (w->mark == mark || w->order < lower) continue;
      w->mark = mark;
      region->push_back(w);
      if (region->size() > kMaxRegion) return false;
    }
  }
  return true;
}

// Kahn's algorithm over the whole graph: a fresh order, valid if the
// ordered edges have no cycle.
void Rebuild(Store& store) {
  GraphState& s = store.state();
  absl::flat_hash_map<NodeData*, size_t> in_degree;
  std::vector<NodeData*> ready;
  for (auto& [ref, n] : s.nodes) {
    size_t d = 0;
    for (const Edge& e : n.in) d += Ordered(e);
    if (d == 0) ready.push_back(&n);
    else in_degree[&n] = d;
  }
  uint64_t next = 1;
  while (!ready.empty()) {
    NodeData* n = ready.back();
    ready.pop_back();
    n->order = next++;
    for (const Edge& e : n->out) {
      if (!Ordered(e)) continue;
      NodeData* w = e.peer;
      if (w && --in_degree[w] == 0) ready.push_back(w);
    }
  }
  s.order_valid = next == s.nodes.size() + 1;
  s.order_stale = false;
  // Orders given to new nodes must stay above every order handed out.
  s.next_order = std::max(s.next_order, next);
}

}  // namespace

bool IsOrderedEdge(EdgeKind kind) {
  return kind == EdgeKind::kTailCall || kind == EdgeKind::kUsesMap;
}

void OrderOnEdgeAdded(Store& store, NodeData* f, NodeData* t) {
  GraphState& s = store.state();
  if (!s.order_valid) return;
  if (f->order < t->order) return;  // already in order: the common case
  if (f == t) {
    s.order_valid = false;
    return;
  }
  // Pearce-Kelly: only nodes ordered between to and from can be out of
  // order now. Those `to` reaches move after those that reach `from`,
  // reusing the same order numbers.
  std::vector<NodeData*> forward, backward;
  if (!ForwardRegion(t, f, ++s.mark_epoch, &forward)) {
    s.order_valid = false;
    s.order_stale = false;
    return;
  }
  if (!BackwardRegion(f, t->order, ++s.mark_epoch, &backward)) {
    s.order_valid = false;
    s.order_stale = false;
    return;
  }
  std::sort(forward.begin(), forward.end(), ByOrder);
  std::sort(backward.begin(), backward.end(), ByOrder);
  std::vector<uint64_t> slots;
  slots.reserve(forward.size() + backward.size());
  for (NodeData* n : backward) slots.push_back(n->order);
  for (NodeData* n : forward) slots.push_back(n->order);
  std::sort(slots.begin(), slots.end());
  size_t i = 0;
  for (NodeData* n : backward) n->order = slots[i++];
  for (NodeData* n : forward) n->order = slots[i++];
}

void OrderOnEdgeRemoved(GraphState& s) {
  if (!s.order_valid) s.order_stale = true;
}

bool OrderProvesAcyclic(Store& store) {
  GraphState& s = store.state();
  if (!s.order_valid && s.order_stale) Rebuild(store);
  return s.order_valid;
}

}  // namespace tether::detail
