#include "graph/store.h"

#include <algorithm>

#include "graph/order.h"
#include "sys/bpf.h"

namespace tether::detail {

bool IsProgArrayType(uint32_t type) { return type == BPF_MAP_TYPE_PROG_ARRAY; }

// Leaked on purpose: handles may be destroyed during static destruction.
GraphState& State() {
  static GraphState* state = new GraphState();
  return *state;
}

// The leading node (the canonical rotation puts the smallest program
// first) and the length: cheap, and distinct for the usual cycles; equal
// hashes only mean a comparison with the list.
size_t CycleHash(const Cycle& c) {
  if (c.nodes.empty()) return 0;
  const NodeRef& first = c.nodes.front();
  uint64_t key = (uint64_t{static_cast<uint8_t>(first.kind)} << 32) | first.id;
  return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) ^ c.nodes.size());
}

void ForgetCycleHash(GraphState& s, const Cycle& c) {
  auto it = s.cycle_hashes.find(CycleHash(c));
  if (it != s.cycle_hashes.end() && --it->second == 0) s.cycle_hashes.erase(it);
}

NodeData::NodeData(const NodeData& other)
    : ref(other.ref),
      type(other.type),
      handles(other.handles),
      kept_fd(other.kept_fd),
      deferred_fd(other.deferred_fd),
      deferred_policy(other.deferred_policy),
      cleared_by_kernel(other.cleared_by_kernel),
      name(other.name),
      out(other.out),
      in(other.in),
      order(other.order),
      mark(other.mark),
      extra(other.extra ? std::make_unique<NodeExtra>(*other.extra) : nullptr) {}

NodeData& NodeData::operator=(const NodeData& other) {
  if (this != &other) *this = NodeData(other);
  return *this;
}

const std::vector<std::string>& NodeData::legacy_hooks() const {
  static const auto* none = new std::vector<std::string>();
  return extra ? extra->legacy_hooks : *none;
}

const std::vector<std::string>& NodeData::holders() const {
  static const auto* none = new std::vector<std::string>();
  return extra ? extra->holders : *none;
}

NodeExtra& NodeData::MutableExtra() {
  if (!extra) extra = std::make_unique<NodeExtra>();
  return *extra;
}

GraphNode NodeData::ToGraphNode() const {
  GraphNode n;
  n.ref = ref;
  n.name = name;
  n.type = type;
  n.handles = handles;
  n.kept_alive = kept_fd >= 0;
  n.deferred = deferred_fd >= 0;
  n.cleared_by_kernel = cleared_by_kernel;
  if (extra) {
    n.legacy_hooks = extra->legacy_hooks;
    n.holders = extra->holders;
    n.notes = extra->notes;
    n.tail_call_sites = extra->tail_call_sites;
  }
  return n;
}

void NodeData::Assign(const GraphNode& n) {
  ref = n.ref;
  name = n.name;
  type = n.type;
  handles = n.handles;
  cleared_by_kernel = n.cleared_by_kernel;
  if (n.legacy_hooks.empty() && n.holders.empty() && n.notes.empty() && n.tail_call_sites.empty()) {
    extra.reset();
  } else {
    extra = std::make_unique<NodeExtra>(
        NodeExtra{n.legacy_hooks, n.holders, n.notes, n.tail_call_sites});
  }
}

NodeData* Store::Find(NodeRef ref) {
  auto it = s_.nodes.find(ref);
  return it == s_.nodes.end() ? nullptr : &it->second;
}

const NodeData* Store::Find(NodeRef ref) const {
  auto it = s_.nodes.find(ref);
  return it == s_.nodes.end() ? nullptr : &it->second;
}

NodeData& Store::Ensure(NodeRef ref) {
  auto [it, inserted] = s_.nodes.try_emplace(ref);
  if (inserted) {
    it->second.ref = ref;
    it->second.order = s_.next_order++;
  }
  return it->second;
}

void Store::AddEdge(NodeRef from, NodeRef to, EdgeKind kind, uint32_t slot) {
  NodeData& f = Ensure(from);
  AddEdge(f, Ensure(to), kind, slot);
}

void Store::AddEdge(NodeData& from, NodeData& to, EdgeKind kind, uint32_t slot) {
  const size_t out_at = from.out.size(), in_at = to.in.size();
  // Past the limit the edge is not recorded (see kMaxEdgesPerNode).
  if (out_at >= kMaxEdgesPerNode || in_at >= kMaxEdgesPerNode) return;
  from.out.push_back(Edge{&to, slot, static_cast<uint32_t>(in_at), kind});
  to.in.push_back(Edge{&from, slot, static_cast<uint32_t>(out_at), kind});
  ++s_.edge_count;
  if (s_.incremental_cycles && IsOrderedEdge(kind)) OrderOnEdgeAdded(*this, &from, &to);
}

std::vector<NodeRef> Store::RemoveEdges(NodeRef from, absl::FunctionRef<bool(const Edge&)> match) {
  NodeData* n = Find(from);
  if (!n) return {};
  return RemoveEdges(*n, match);
}

// Each list fills the hole with its last entry, whose mirror then learns
// its new index: no scan of either list, whatever their length.
void Store::Unlink(NodeData& from, size_t i) {
  const Edge e = from.out[i];
  std::vector<Edge>& in = e.peer->in;
  const size_t j = e.twin;
  if (j + 1 != in.size()) {
    in[j] = in.back();
    const Edge& moved = in[j];
    moved.peer->out[moved.twin].twin = static_cast<uint32_t>(j);
  }
  in.pop_back();
  if (i + 1 != from.out.size()) {
    from.out[i] = from.out.back();
    const Edge& moved = from.out[i];
    moved.peer->in[moved.twin].twin = static_cast<uint32_t>(i);
  }
  from.out.pop_back();
}

std::vector<NodeRef> Store::RemoveEdges(NodeData& n, absl::FunctionRef<bool(const Edge&)> match) {
  std::vector<NodeRef> touched;
  auto& out = n.out;
  // In the order, and with the same moves, as before edges knew their
  // twins: the lists keep the order that diagnostics list users in.
  for (size_t i = 0; i < out.size();) {
    if (!match(out[i])) {
      ++i;
      continue;
    }
    const EdgeKind kind = out[i].kind;
    // Sized at the first match: most calls (a slot set in a fresh array)
    // match nothing, and then allocate nothing.
    if (touched.empty()) touched.reserve(out.size() - i);
    touched.push_back(out[i].peer_ref());
    Unlink(n, i);
    --s_.edge_count;
    if (IsOrderedEdge(kind)) OrderOnEdgeRemoved(s_);
  }
  return touched;
}

void Store::CopyNodesFrom(const GraphState& other) {
  s_.nodes = other.nodes;
  // The copies still point at `other`'s nodes: point them at their own.
  for (auto& [ref, n] : s_.nodes) {
    for (Edge& e : n.out) e.peer = &s_.nodes.find(e.peer->ref)->second;
    for (Edge& e : n.in) e.peer = &s_.nodes.find(e.peer->ref)->second;
  }
}

std::vector<NodeRef> Store::RemoveEntry(NodeRef from, EdgeKind kind, uint32_t slot) {
  return RemoveEdges(from, [kind, slot](const Edge& e) { return e.kind == kind && e.slot == slot; });
}

NodeRef Store::PinNode(const std::string& path) {
  auto [it, inserted] = s_.pin_ids.try_emplace(path, s_.next_pin_id);
  if (inserted) s_.next_pin_id++;
  return NodeRef{NodeKind::kPin, it->second};
}

// Whether nothing holds `n` but, perhaps, edges into it.
static bool HeldOutsideEdges(const NodeData& n) {
  return n.handles > 0 || n.kept_fd >= 0 || n.deferred_fd >= 0 || n.has_legacy_hooks();
}

void Store::Collect(NodeRef ref) {
  // Most calls find the node still held: answered without a worklist.
  const NodeData* n = Find(ref);
  if (!n || HeldOutsideEdges(*n) || !n->in.empty()) return;
  std::vector<NodeRef> work{ref}, gone;
  CollectWork(&work, &gone);
  DropCyclesThrough(gone);
}

void Store::Collect(const std::vector<NodeRef>& refs) {
  std::vector<NodeRef> work(refs.rbegin(), refs.rend()), gone;
  CollectWork(&work, &gone);
  DropCyclesThrough(gone);
}

// A cycle through a node that is gone is gone too. Dropping it here keeps
// the list at the live cycles: an agent that reloads its collections would
// otherwise pile up stale ones, and every AddCycle compares against the
// whole list. One pass for everything a collection removed, not one per
// node. Every node of a recorded cycle is in the graph until it goes (they
// are programs and arrays, which leave only through a collection), so a
// cycle node missing from the graph is one that went: one lookup each, no
// sorted copy of `gone` to search (a collection removes hundreds at once).
void Store::DropCyclesThrough(const std::vector<NodeRef>& gone) {
  if (gone.empty() || s_.cycles.empty()) return;
  s_.cycles.erase(std::remove_if(s_.cycles.begin(), s_.cycles.end(),
                                 [&](const Cycle& c) {
                                   for (NodeRef n : c.nodes) {
                                     if (Find(n) == nullptr) {
                                       ForgetCycleHash(s_, c);
                                       return true;
                                     }
                                   }
                                   return false;
                                 }),
                  s_.cycles.end());
}

void Store::CollectWork(std::vector<NodeRef>* work, std::vector<NodeRef>* gone) {
  while (!work->empty()) {
    const NodeRef ref = work->back();
    work->pop_back();
    // Found once: the erase below reuses the lookup.
    auto it = s_.nodes.find(ref);
    if (it == s_.nodes.end()) continue;
    NodeData* n = &it->second;
    if (HeldOutsideEdges(*n) || !n->in.empty()) continue;
    // Its edges go (in the order RemoveEdges takes them, so the targets'
    // lists end as they always did), and each target is examined next,
    // in that order, before what was waiting: the depth-first order of
    // the recursion this replaced, without its per-node list of targets.
    const size_t first = work->size();
    bool ordered = false;
    while (!n->out.empty()) {
      work->push_back(n->out.front().peer_ref());
      ordered = ordered || IsOrderedEdge(n->out.front().kind);
      Unlink(*n, 0);
      --s_.edge_count;
    }
    if (ordered) OrderOnEdgeRemoved(s_);
    std::reverse(work->begin() + first, work->end());
    // Cycles run through programs and program arrays only (a map whose
    // type is not known yet counts as one): other nodes leave no cycle to
    // drop, and most Collect calls then skip the list.
    uint32_t type = n->type;
    if (ref.kind == NodeKind::kProgram ||
        (ref.kind == NodeKind::kMap && (type == BPF_MAP_TYPE_UNSPEC || IsProgArrayType(type))))
      gone->push_back(ref);
    s_.nodes.erase(it);
  }
}

}  // namespace tether::detail
