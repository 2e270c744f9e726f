// The object graph's shape: names of its kinds, the process-wide graph and
// standalone ones, and consistent snapshots of nodes and edges. The rest
// lives beside it by concept: store, liveness, cycles, explain, lifetime
// (the policies), events (what handles report) and formats.
#include "tether/graph.h"

#include <algorithm>
#include <memory>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "graph/cycles.h"
#include "graph/store.h"

namespace tether {

const char* NodeKindName(NodeKind kind) {
  switch (kind) {
    case NodeKind::kMap: return "map";
    case NodeKind::kProgram: return "program";
    case NodeKind::kLink: return "link";
    case NodeKind::kPin: return "pin";
  }
  return "?";
}

const char* EdgeKindName(EdgeKind kind) {
  switch (kind) {
    case EdgeKind::kTailCall: return "tail_call";
    case EdgeKind::kUsesMap: return "uses_map";
    case EdgeKind::kLinkHolds: return "link_holds";
    case EdgeKind::kPinHolds: return "pin_holds";
    case EdgeKind::kInnerMap: return "inner_map";
    case EdgeKind::kStructOps: return "struct_ops";
  }
  return "?";
}

bool GraphNode::is_program_array() const {
  return ref.kind == NodeKind::kMap && detail::IsProgArrayType(type);
}

std::string Cycle::ToString() const {
  std::vector<std::string> parts;
  for (const NodeRef& r : nodes) parts.push_back(absl::StrCat(NodeKindName(r.kind), " ", r.id));
  if (!nodes.empty()) parts.push_back(absl::StrCat(NodeKindName(nodes[0].kind), " ", nodes[0].id));
  return absl::StrJoin(parts, " -> ");
}

ObjectGraph& graph() {
  static ObjectGraph* g = new ObjectGraph(&detail::State());
  return *g;
}

ObjectGraph::ObjectGraph(detail::GraphState* state) : state_(state) {}

void detail::PopulateGraph(ObjectGraph& graph, const std::vector<GraphNode>& nodes,
                           const std::vector<GraphEdge>& edges) {
  LockedStore store(*graph.state_);
  for (const GraphNode& n : nodes) store.Ensure(n.ref).Assign(n);
  CycleFinder cycles(store);
  for (const GraphEdge& e : edges) {
    store.AddEdge(e.from, e.to, e.kind, e.slot);
    cycles.OnNewEdge(e.from, e.to, e.kind);
  }
}

std::unique_ptr<ObjectGraph> detail::NewStandaloneGraph() {
  // Owns its state; used for snapshots of the whole system.
  struct Owning : ObjectGraph {
    explicit Owning(std::unique_ptr<GraphState> s) : ObjectGraph(s.get()), owned(std::move(s)) {}
    std::unique_ptr<GraphState> owned;
  };
  return std::make_unique<Owning>(std::make_unique<GraphState>());
}

// --- queries (consistent snapshots) ----------------------------------------------------

std::vector<GraphNode> ObjectGraph::Nodes() const {
  detail::LockedStore store(*state_);
  std::vector<GraphNode> out;
  out.reserve(store.state().nodes.size());
  for (const auto& [ref, n] : store.state().nodes) {
    out.push_back(n.ToGraphNode());
  }
  std::sort(out.begin(), out.end(), [](const GraphNode& a, const GraphNode& b) {
    return std::make_pair(a.ref.kind, a.ref.id) < std::make_pair(b.ref.kind, b.ref.id);
  });
  return out;
}

std::vector<GraphEdge> ObjectGraph::Edges() const {
  detail::LockedStore store(*state_);
  std::vector<GraphEdge> out;
  for (const auto& [ref, n] : store.state().nodes)
    for (const detail::Edge& e : n.out) out.push_back(GraphEdge{ref, e.peer_ref(), e.kind, e.slot});
  std::sort(out.begin(), out.end(), [](const GraphEdge& a, const GraphEdge& b) {
    return std::make_tuple(a.from.kind, a.from.id, a.kind, a.slot, a.to.kind, a.to.id) <
           std::make_tuple(b.from.kind, b.from.id, b.kind, b.slot, b.to.kind, b.to.id);
  });
  return out;
}

absl::optional<GraphNode> ObjectGraph::Node(NodeRef ref) const {
  detail::LockedStore store(*state_);
  auto it = store.state().nodes.find(ref);
  if (it == store.state().nodes.end()) return absl::nullopt;
  return it->second.ToGraphNode();
}

size_t ObjectGraph::node_count() const {
  detail::LockedStore store(*state_);
  return store.state().nodes.size();
}

size_t ObjectGraph::edge_count() const {
  detail::LockedStore store(*state_);
  return store.state().edge_count;
}

}  // namespace tether
