#include "graph/cycles.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "graph/order.h"

namespace tether::detail {
namespace {

constexpr size_t kMaxCyclesPerEdge = 64;
constexpr size_t kMaxCyclesKept = 4096;

}  // namespace

bool CycleFinder::Follows(EdgeKind kind, NodeRef to) const {
  if (kind == EdgeKind::kTailCall) return true;
  if (kind != EdgeKind::kUsesMap) return false;
  const NodeData* n = store_.Find(to);
  return n && IsProgArrayType(n->type);
}

void CycleFinder::OnNewEdge(NodeRef from, NodeRef to, EdgeKind kind) {
  const NodeData* f = store_.Find(from);
  NodeData* t = store_.Find(to);
  if (f && t) {
    OnNewEdge(*f, *t, kind);
  } else if (kind == EdgeKind::kTailCall && from == to) {
    AddCycle(Cycle{{from}});
  }
}

void CycleFinder::OnNewEdge(const NodeData& f, NodeData& t, EdgeKind kind) {
  NodeRef from = f.ref, to = t.ref;
  if (kind != EdgeKind::kTailCall && !(kind == EdgeKind::kUsesMap && IsProgArrayType(t.type)))
    return;
  if (from == to) {
    AddCycle(Cycle{{from}});
    return;
  }
  // A cycle through from -> to must come back into `from` along an edge
  // the search follows. Most new edges start at a node nothing enters
  // that way (a program just loaded, its array not filled yet), and then
  // the search, which can cover the whole graph, is skipped.
  if (!EnterableAlongCycle(f)) return;
  if (store_.state().incremental_cycles) {
    // Another edge from -> to already closed every cycle this one would:
    // cycles are lists of nodes, so they are the ones recorded then.
    if (HasParallelCycleEdge(f, to)) return;
    // No cycle anywhere: then this edge closes none either.
    if (OrderProvesAcyclic(store_)) return;
  }
  Search(from, t);
}

bool CycleFinder::HasParallelCycleEdge(const NodeData& n, NodeRef to) const {
  int count = 0;
  for (const Edge& e : n.out)
    if (e.peer_ref() == to && Follows(e.kind, to)) ++count;
  return count > 1;
}

bool CycleFinder::EnterableAlongCycle(const NodeData& start) const {
  bool is_array = IsProgArrayType(start.type);
  for (const Edge& e : start.in) {
    if (e.kind == EdgeKind::kTailCall || (e.kind == EdgeKind::kUsesMap && is_array)) return true;
  }
  return false;
}

void CycleFinder::Search(NodeRef from, NodeData& to_node) {
  // Every simple path to ~> from, depth first. The stack is explicit: a
  // chain of tail calls can be as long as the graph, deeper than the
  // thread's stack would allow a recursion to go. The nodes on the path
  // carry this search's mark (no set to allocate), and the short paths
  // of the usual graph fit the inline vectors.
  struct Frame {
    NodeData* node;
    size_t next_edge;
  };
  const uint64_t on_path = ++store_.state().mark_epoch;
  NodeRef to = to_node.ref;
  absl::InlinedVector<NodeRef, 16> path{to};
  absl::InlinedVector<Frame, 16> stack{{&to_node, 0}};
  to_node.mark = on_path;
  size_t found = 0;
  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.next_edge == f.node->out.size()) {
      f.node->mark = 0;
      path.pop_back();
      stack.pop_back();
      continue;
    }
    const Edge& e = f.node->out[f.next_edge++];
    // Follows(), on the node the edge points at.
    if (e.kind != EdgeKind::kTailCall && e.kind != EdgeKind::kUsesMap) continue;
    NodeData* next = e.peer;
    if (e.kind == EdgeKind::kUsesMap && !IsProgArrayType(next->type)) continue;
    const NodeRef next_ref = next->ref;
    if (next_ref == from) {
      Cycle c;
      c.nodes.reserve(path.size() + 1);
      c.nodes.push_back(from);
      c.nodes.insert(c.nodes.end(), path.begin(), path.end());
      AddCycle(std::move(c));
      ++found;
      continue;
    }
    // Past the limit, the paths under way still report the cycles they
    // close with their own edges, but go no deeper.
    if (found >= kMaxCyclesPerEdge || next->mark == on_path) continue;
    path.push_back(next_ref);
    next->mark = on_path;
    stack.push_back(Frame{next, 0});
  }
}

void CycleFinder::AddCycle(Cycle c) {
  // Canonical form: rotate so that a program with the smallest id leads.
  size_t best = 0;
  for (size_t i = 0; i < c.nodes.size(); ++i) {
    const NodeRef& a = c.nodes[i];
    const NodeRef& b = c.nodes[best];
    if (a.kind == NodeKind::kProgram && (b.kind != NodeKind::kProgram || a.id < b.id)) best = i;
  }
  std::rotate(c.nodes.begin(), c.nodes.begin() + best, c.nodes.end());
  GraphState& s = store_.state();
  std::vector<Cycle>& cycles = s.cycles;
  size_t hash = CycleHash(c);
  if (s.cycle_hashes.contains(hash)) {
    for (const Cycle& existing : cycles)
      if (existing.nodes == c.nodes) return;
  }
  // Edges overwritten in place (a slot set again) leave cycles that no
  // longer close; make room from those before giving up on this one.
  if (cycles.size() >= kMaxCyclesKept) DropOpenCycles();
  if (cycles.size() < kMaxCyclesKept) {
    ++s.cycle_hashes[hash];
    cycles.push_back(std::move(c));
  }
}

void CycleFinder::DropOpenCycles() {
  std::vector<Cycle>& cycles = store_.state().cycles;
  cycles.erase(std::remove_if(cycles.begin(), cycles.end(),
                              [&](const Cycle& c) {
                                if (Closed(c)) return false;
                                ForgetCycleHash(store_.state(), c);
                                return true;
                              }),
               cycles.end());
}

bool CycleFinder::HasCycleEdge(NodeRef from, NodeRef to) const {
  const NodeData* n = store_.Find(from);
  if (!n) return false;
  for (const Edge& e : n->out)
    if (e.peer_ref() == to && (e.kind == EdgeKind::kTailCall || e.kind == EdgeKind::kUsesMap)) return true;
  return false;
}

bool CycleFinder::Closed(const Cycle& c) const {
  for (size_t i = 0; i < c.nodes.size(); ++i) {
    if (!HasCycleEdge(c.nodes[i], c.nodes[(i + 1) % c.nodes.size()])) return false;
  }
  return true;
}

}  // namespace tether::detail

namespace tether {

std::vector<Cycle> ObjectGraph::Cycles() const {
  detail::LockedStore store(*state_);
  detail::CycleFinder(store).DropOpenCycles();
  return store.state().cycles;
}

}  // namespace tether
