#include "tether/graph.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/json_internal.h"
#include "base/mutex_internal.h"
#include "graph/graph_internal.h"
#include "sys/bpf.h"
#include "sys/uapi_names.h"

namespace tether {
namespace detail {

struct Edge {
  NodeRef from;
  NodeRef to;
  EdgeKind kind;
  uint32_t slot;
};

struct NodeData {
  GraphNode node;
  int kept_fd = -1;
  std::vector<Edge> out;
  std::vector<Edge> in;
};

class GraphState {
 public:
  detail::Mutex mu;
  absl::flat_hash_map<NodeRef, NodeData> nodes ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<std::string, uint32_t> pin_ids ABSL_GUARDED_BY(mu);
  uint32_t next_pin_id ABSL_GUARDED_BY(mu) = 1;
  std::vector<Cycle> cycles ABSL_GUARDED_BY(mu);
  LifetimePolicy default_policy ABSL_GUARDED_BY(mu) = LifetimePolicy::kWarn;
  std::string pin_dir ABSL_GUARDED_BY(mu) = "/sys/fs/bpf/tether";
  size_t edge_count ABSL_GUARDED_BY(mu) = 0;

  detail::Mutex sink_mu;
  DiagnosticSink sink ABSL_GUARDED_BY(sink_mu);
};


}  // namespace detail

namespace {

using detail::Edge;
using detail::GraphState;
using detail::NodeData;

using sys::MapTypeName;
using sys::ProgramTypeName;

constexpr size_t kMaxCyclesPerEdge = 64;
constexpr size_t kMaxCyclesKept = 4096;

// Leaked on purpose: handles may be destroyed during static destruction.
GraphState& State() {
  static GraphState* state = new GraphState();
  return *state;
}

bool IsProgArrayType(uint32_t type) { return type == BPF_MAP_TYPE_PROG_ARRAY; }

// All of the graph's logic runs with State().mu held; these helpers assume it.
class Locked {
 public:
  explicit Locked(GraphState& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) : s_(s) {}

  NodeData* Find(NodeRef ref) {
    auto it = s_.nodes.find(ref);
    return it == s_.nodes.end() ? nullptr : &it->second;
  }
  const NodeData* Find(NodeRef ref) const {
    auto it = s_.nodes.find(ref);
    return it == s_.nodes.end() ? nullptr : &it->second;
  }

  NodeData& Ensure(NodeRef ref) {
    auto [it, inserted] = s_.nodes.try_emplace(ref);
    if (inserted) it->second.node.ref = ref;
    return it->second;
  }

  void AddEdge(NodeRef from, NodeRef to, EdgeKind kind, uint32_t slot) {
    Edge e{from, to, kind, slot};
    Ensure(from).out.push_back(e);
    Ensure(to).in.push_back(e);
    ++s_.edge_count;
  }

  // Removes edges out of `from` that match; returns the targets touched.
  std::vector<NodeRef> RemoveEdges(NodeRef from, const std::function<bool(const Edge&)>& match) {
    std::vector<NodeRef> touched;
    NodeData* n = Find(from);
    if (!n) return touched;
    auto& out = n->out;
    for (size_t i = 0; i < out.size();) {
      if (match(out[i])) {
        Edge e = out[i];
        out[i] = out.back();
        out.pop_back();
        if (NodeData* t = Find(e.to)) {
          auto& in = t->in;
          for (size_t j = 0; j < in.size(); ++j) {
            if (in[j].from == e.from && in[j].kind == e.kind && in[j].slot == e.slot) {
              in[j] = in.back();
              in.pop_back();
              break;
            }
          }
        }
        --s_.edge_count;
        touched.push_back(e.to);
      } else {
        ++i;
      }
    }
    return touched;
  }

  bool Pinned(const NodeData& n) const {
    for (const Edge& e : n.in)
      if (e.kind == EdgeKind::kPinHolds) return true;
    return false;
  }

  // An array with a user reference keeps its entries: a handle, a kept fd,
  // or a pin.
  bool ArrayHasUserRef(const NodeData& n) const {
    return n.node.handles > 0 || !n.node.holders.empty() || n.kept_fd >= 0 || Pinned(n);
  }

  // Whether something keeps `ref` alive, not counting entries of
  // `excluded_array` (the array whose fate is being decided).
  bool Live(NodeRef ref, NodeRef excluded_array, absl::flat_hash_set<NodeRef>* seen) const {
    if (!seen->insert(ref).second) return false;
    const NodeData* n = Find(ref);
    if (!n) return false;
    if (n->node.handles > 0 || !n->node.holders.empty() || n->kept_fd >= 0 ||
        !n->node.legacy_hooks.empty())
      return true;
    for (const Edge& e : n->in) {
      switch (e.kind) {
        case EdgeKind::kPinHolds:
          return true;
        case EdgeKind::kTailCall: {
          if (e.from == excluded_array) break;
          const NodeData* a = Find(e.from);
          if (a && ArrayHasUserRef(*a)) return true;
          break;
        }
        case EdgeKind::kLinkHolds:
        case EdgeKind::kUsesMap:
        case EdgeKind::kInnerMap:
          if (Live(e.from, excluded_array, seen)) return true;
          break;
      }
    }
    return false;
  }
  bool Live(NodeRef ref, NodeRef excluded = NodeRef{NodeKind::kPin, 0}) const {
    absl::flat_hash_set<NodeRef> seen;
    return Live(ref, excluded, &seen);
  }

  std::string Label(NodeRef ref) const {
    const NodeData* n = Find(ref);
    std::string name = n ? n->node.name : "";
    if (ref.kind == NodeKind::kPin) return absl::StrCat("pin ", name);
    if (name.empty()) name = "?";
    return absl::StrFormat("%s '%s' (id %u)",
                           ref.kind == NodeKind::kMap
                               ? (n && IsProgArrayType(n->node.type) ? "program array" : "map")
                               : NodeKindName(ref.kind),
                           name, ref.id);
  }
  std::string ShortLabel(NodeRef ref) const {
    const NodeData* n = Find(ref);
    std::string name = n && !n->node.name.empty() ? n->node.name : "?";
    if (ref.kind == NodeKind::kPin) return name;
    return absl::StrFormat("%s (id %u)", name, ref.id);
  }

  std::vector<uint32_t> Slots(const NodeData& array) const {
    std::vector<uint32_t> slots;
    for (const Edge& e : array.out)
      if (e.kind == EdgeKind::kTailCall) slots.push_back(e.slot);
    std::sort(slots.begin(), slots.end());
    return slots;
  }

  static std::string FormatSlots(const std::vector<uint32_t>& slots) {
    // [0..2, 5] reads better than [0, 1, 2, 5].
    std::vector<std::string> parts;
    for (size_t i = 0; i < slots.size();) {
      size_t j = i;
      while (j + 1 < slots.size() && slots[j + 1] == slots[j] + 1) ++j;
      parts.push_back(j > i ? absl::StrCat(slots[i], "..", slots[j]) : absl::StrCat(slots[i]));
      i = j + 1;
    }
    return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
  }

  // Programs that use `array` and stay alive without it.
  std::vector<NodeRef> LiveUsers(NodeRef array) const {
    std::vector<NodeRef> users;
    const NodeData* a = Find(array);
    if (!a) return users;
    for (const Edge& e : a->in) {
      if (e.kind == EdgeKind::kUsesMap && Live(e.from, array)) users.push_back(e.from);
    }
    return users;
  }

  // The hazard: the last user reference of an array with entries, which
  // live programs tail-call through, is about to go.
  bool OrphanHazard(const NodeData& a, std::vector<NodeRef>* users) const {
    if (!IsProgArrayType(a.node.type) || Pinned(a) || a.kept_fd >= 0) return false;
    if (Slots(a).empty()) return false;
    *users = LiveUsers(a.node.ref);
    return !users->empty();
  }

  std::string HazardMessage(const NodeData& a, const std::vector<NodeRef>& users,
                            absl::string_view what) const {
    std::vector<std::string> names;
    for (NodeRef u : users) names.push_back(ShortLabel(u));
    std::vector<uint32_t> slots = Slots(a);
    return absl::StrFormat(
        "tether: %s: the last user reference of program array '%s' (id %u) %s.\n"
        "  It has %u entr%s %s, and these programs tail-call through it: %s.\n"
        "  The kernel clears every entry of a program array when its last fd or pin goes;\n"
        "  from then on those tail calls miss silently.\n"
        "  Fix: pin the array (Map::Pin, or LifetimePolicy::kPin), or keep a Map handle to it\n"
        "  for as long as the programs run (or LifetimePolicy::kKeepAlive).",
        what, a.node.name, a.node.ref.id, what == "close refused" ? "would go" : "is going",
        slots.size(), slots.size() == 1 ? "y" : "ies", FormatSlots(slots),
        absl::StrJoin(names, ", "));
  }

  // The kernel empties an array that lost its last user reference.
  void ClearArrayEntries(NodeRef array) {
    NodeData* a = Find(array);
    if (!a) return;
    a->node.cleared_by_kernel = true;
    auto touched = RemoveEdges(array, [](const Edge& e) { return e.kind == EdgeKind::kTailCall; });
    for (NodeRef t : touched) Collect(t);
  }

  // Drops nodes nothing holds any more, and what only they held.
  void Collect(NodeRef ref) {
    NodeData* n = Find(ref);
    if (!n) return;
    if (n->node.handles > 0 || n->kept_fd >= 0 || !n->node.legacy_hooks.empty()) return;
    if (!n->in.empty()) return;
    auto touched = RemoveEdges(ref, [](const Edge&) { return true; });
    s_.nodes.erase(ref);
    // A cycle through a node that is gone is gone too. Dropping it here
    // keeps the list at the live cycles: an agent that reloads its
    // collections would otherwise pile up stale ones, and every AddCycle
    // compares against the whole list.
    if (!s_.cycles.empty()) {
      s_.cycles.erase(std::remove_if(s_.cycles.begin(), s_.cycles.end(),
                                     [&](const Cycle& c) {
                                       return std::find(c.nodes.begin(), c.nodes.end(), ref) !=
                                              c.nodes.end();
                                     }),
                      s_.cycles.end());
    }
    for (NodeRef t : touched) Collect(t);
  }

  // Records every cycle that the new edge from -> to closes: the paths
  // to ~> from over tail-call and uses-array edges.
  void FindCycles(NodeRef from, NodeRef to) {
    std::vector<NodeRef> path{to};
    absl::flat_hash_set<NodeRef> on_path{to};
    size_t found = 0;
    std::function<void(NodeRef)> dfs = [&](NodeRef cur) {
      if (found >= kMaxCyclesPerEdge) return;
      const NodeData* n = Find(cur);
      if (!n) return;
      for (const Edge& e : n->out) {
        bool follows = e.kind == EdgeKind::kTailCall ||
                       (e.kind == EdgeKind::kUsesMap && Find(e.to) &&
                        IsProgArrayType(Find(e.to)->node.type));
        if (!follows) continue;
        if (e.to == from) {
          Cycle c;
          c.nodes.push_back(from);
          c.nodes.insert(c.nodes.end(), path.begin(), path.end());
          AddCycle(std::move(c));
          ++found;
          continue;
        }
        if (on_path.contains(e.to)) continue;
        path.push_back(e.to);
        on_path.insert(e.to);
        dfs(e.to);
        on_path.erase(e.to);
        path.pop_back();
      }
    };
    if (from == to) {
      AddCycle(Cycle{{from}});
      return;
    }
    // A cycle through from -> to must come back into `from` along an edge
    // the search follows. Most new edges start at a node nothing enters
    // that way (a program just loaded, its array not filled yet), and then
    // the search, which can cover the whole graph, is skipped.
    const NodeData* start = Find(from);
    bool enterable = false;
    if (start) {
      bool from_is_array = IsProgArrayType(start->node.type);
      for (const Edge& e : start->in) {
        enterable |= e.kind == EdgeKind::kTailCall || (e.kind == EdgeKind::kUsesMap && from_is_array);
      }
    }
    if (!enterable) return;
    dfs(to);
  }

  void AddCycle(Cycle c) {
    // Canonical form: rotate so that a program with the smallest id leads.
    size_t best = 0;
    for (size_t i = 0; i < c.nodes.size(); ++i) {
      const NodeRef& a = c.nodes[i];
      const NodeRef& b = c.nodes[best];
      if (a.kind == NodeKind::kProgram &&
          (b.kind != NodeKind::kProgram || a.id < b.id)) {
        best = i;
      }
    }
    std::rotate(c.nodes.begin(), c.nodes.begin() + best, c.nodes.end());
    for (const Cycle& existing : s_.cycles)
      if (existing.nodes == c.nodes) return;
    if (s_.cycles.size() >= kMaxCyclesKept) {
      // Edges overwritten in place (a slot set again) leave cycles that no
      // longer close; make room from those before giving up on this one.
      s_.cycles.erase(std::remove_if(s_.cycles.begin(), s_.cycles.end(),
                                     [&](const Cycle& old) { return !CycleClosed(old); }),
                      s_.cycles.end());
    }
    if (s_.cycles.size() < kMaxCyclesKept) s_.cycles.push_back(std::move(c));
  }

  bool HasEdge(NodeRef from, NodeRef to) const {
    const NodeData* n = Find(from);
    if (!n) return false;
    for (const Edge& e : n->out)
      if (e.to == to && (e.kind == EdgeKind::kTailCall || e.kind == EdgeKind::kUsesMap))
        return true;
    return false;
  }

  bool CycleClosed(const Cycle& c) const {
    for (size_t i = 0; i < c.nodes.size(); ++i) {
      if (!HasEdge(c.nodes[i], c.nodes[(i + 1) % c.nodes.size()])) return false;
    }
    return true;
  }

  // --- explanations -----------------------------------------------------------

  void ExplainInto(NodeRef ref, int depth, absl::flat_hash_set<NodeRef>* seen,
                   std::vector<std::string>* lines) const {
    std::string indent(depth * 2, ' ');
    if (!seen->insert(ref).second) {
      lines->push_back(absl::StrCat(indent, "(", Label(ref), " again: a cycle)"));
      return;
    }
    const NodeData* n = Find(ref);
    if (!n) return;
    if (n->node.handles > 0)
      lines->push_back(absl::StrFormat("%s%u tether handle object(s) in this process (pid %d)",
                                       indent, n->node.handles, getpid()));
    for (const std::string& holder : n->node.holders)
      lines->push_back(absl::StrCat(indent, "an open fd in ", holder));
    if (n->kept_fd >= 0)
      lines->push_back(absl::StrCat(indent, "kept alive by tether's KeepAlive policy (fd ",
                                    n->kept_fd, ") until ReleaseKept() or exit"));
    for (const std::string& hook : n->node.legacy_hooks)
      lines->push_back(absl::StrCat(indent, "attached by a legacy hook: ", hook,
                                    " (not pinnable; lasts until detached or the hook goes)"));
    for (const Edge& e : n->in) {
      switch (e.kind) {
        case EdgeKind::kPinHolds:
          lines->push_back(absl::StrCat(indent, "pinned at ", Find(e.from)->node.name));
          break;
        case EdgeKind::kTailCall: {
          const NodeData* a = Find(e.from);
          bool holds = a && ArrayHasUserRef(*a);
          lines->push_back(absl::StrFormat("%sentry [%u] of %s%s", indent, e.slot, Label(e.from),
                                           holds ? ", which is held by:" : ", which has no user reference left"));
          if (holds) ExplainInto(e.from, depth + 1, seen, lines);
          break;
        }
        case EdgeKind::kLinkHolds:
          lines->push_back(absl::StrCat(indent, "held by ", Label(e.from), ", which is held by:"));
          ExplainInto(e.from, depth + 1, seen, lines);
          break;
        case EdgeKind::kUsesMap:
          lines->push_back(absl::StrCat(indent, "used by ", Label(e.from), ", which is held by:"));
          ExplainInto(e.from, depth + 1, seen, lines);
          break;
        case EdgeKind::kInnerMap:
          lines->push_back(absl::StrFormat("%sinner map at [%u] of %s, which is held by:", indent,
                                           e.slot, Label(e.from)));
          ExplainInto(e.from, depth + 1, seen, lines);
          break;
      }
    }
  }

  // Effects of `ref` losing every user reference it has in this process.
  void BreaksInto(NodeRef ref, std::vector<std::string>* out) const {
    const NodeData* n = Find(ref);
    if (!n) return;
    if (ref.kind == NodeKind::kPin) {
      for (const Edge& e : n->out) {
        const NodeData* t = Find(e.to);
        if (!t) continue;
        bool other_refs = t->node.handles > 0 || t->kept_fd >= 0;
        for (const Edge& p : t->in)
          if (p.kind == EdgeKind::kPinHolds && p.from != ref) other_refs = true;
        if (other_refs) {
          out->push_back(absl::StrCat("nothing immediate: ", Label(e.to),
                                      " has other user references; it will no longer outlive "
                                      "this process through ", n->node.name));
        } else {
          BreaksOfObject(e.to, out);
        }
      }
      return;
    }
    BreaksOfObject(ref, out);
  }

  void BreaksOfObject(NodeRef ref, std::vector<std::string>* out) const {
    const NodeData* n = Find(ref);
    if (!n) return;
    if (ref.kind == NodeKind::kMap && IsProgArrayType(n->node.type)) {
      if (Pinned(*n)) {
        out->push_back(absl::StrCat("nothing: ", Label(ref), " is pinned, so it keeps its entries"));
        return;
      }
      std::vector<uint32_t> slots = Slots(*n);
      if (slots.empty()) {
        out->push_back(absl::StrCat("nothing: ", Label(ref), " has no entries"));
        return;
      }
      std::vector<NodeRef> users = LiveUsers(ref);
      for (NodeRef u : users) {
        out->push_back(absl::StrFormat("tail calls from %s into %s%s will miss", ShortLabel(u),
                                       n->node.name, FormatSlots(slots)));
      }
      for (const Edge& e : n->out) {
        if (e.kind == EdgeKind::kTailCall && !Live(e.to, ref))
          out->push_back(absl::StrCat(Label(e.to), " (entry [", e.slot,
                                      "]) will be freed: nothing else holds it"));
      }
      if (users.empty())
        out->push_back(absl::StrCat(Label(ref), " will be cleared, but no live program uses it"));
      return;
    }
    if (ref.kind == NodeKind::kLink) {
      for (const Edge& e : n->out) {
        out->push_back(absl::StrCat(Label(e.to), " detaches from the hook of ", Label(ref)));
      }
      return;
    }
    if (ref.kind == NodeKind::kProgram) {
      bool held = Pinned(*n) || !n->node.legacy_hooks.empty();
      for (const Edge& e : n->in) {
        if (e.kind == EdgeKind::kLinkHolds) held = true;
        if (e.kind == EdgeKind::kTailCall) {
          const NodeData* a = Find(e.from);
          if (a && ArrayHasUserRef(*a)) held = true;
        }
      }
      if (held) {
        out->push_back(absl::StrCat("nothing: ", Label(ref), " is still held (see Explain)"));
      } else {
        out->push_back(absl::StrCat(Label(ref), " will be freed"));
        for (const Edge& e : n->out) {
          if (e.kind == EdgeKind::kUsesMap) {
            const NodeData* m = Find(e.to);
            if (m && m->node.handles == 0 && m->kept_fd < 0 && !Pinned(*m)) {
              bool other_user = false;
              for (const Edge& u : m->in)
                if (u.from != ref && u.kind == EdgeKind::kUsesMap && Live(u.from)) other_user = true;
              if (!other_user) out->push_back(absl::StrCat(Label(e.to), " will be freed with it"));
            }
          }
        }
      }
      return;
    }
    // A plain map: programs keep it alive; only user-space access goes.
    std::vector<std::string> users;
    for (const Edge& e : n->in)
      if (e.kind == EdgeKind::kUsesMap && Live(e.from)) users.push_back(ShortLabel(e.from));
    if (!users.empty() || Pinned(*n)) {
      out->push_back(absl::StrCat("nothing for programs: ", Label(ref), " stays alive (",
                                  users.empty() ? "pinned" : absl::StrCat("used by ", absl::StrJoin(users, ", ")),
                                  "); this process only loses access to it"));
    } else {
      out->push_back(absl::StrCat(Label(ref), " will be freed with its contents"));
    }
  }

 private:
  GraphState& s_;
};

using detail::JsonEscape;

std::string NodeKey(NodeRef r) { return absl::StrCat(NodeKindName(r.kind), ":", r.id); }

}  // namespace

// --- names ------------------------------------------------------------------------

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
  }
  return "?";
}

const char* LifetimePolicyName(LifetimePolicy policy) {
  switch (policy) {
    case LifetimePolicy::kDefault: return "default";
    case LifetimePolicy::kWarn: return "warn";
    case LifetimePolicy::kKeepAlive: return "keep_alive";
    case LifetimePolicy::kPin: return "pin";
    case LifetimePolicy::kIgnore: return "ignore";
  }
  return "?";
}

bool GraphNode::is_program_array() const {
  return ref.kind == NodeKind::kMap && IsProgArrayType(type);
}

std::string Cycle::ToString() const {
  std::vector<std::string> parts;
  for (const NodeRef& r : nodes) parts.push_back(absl::StrCat(NodeKindName(r.kind), " ", r.id));
  if (!nodes.empty()) parts.push_back(absl::StrCat(NodeKindName(nodes[0].kind), " ", nodes[0].id));
  return absl::StrJoin(parts, " -> ");
}

std::string Explanation::ToString() const {
  std::string head = absl::StrCat(NodeKindName(subject.kind), " ", subject.id);
  if (!known) return absl::StrCat(head, ": not in tether's graph");
  if (!alive && holders.empty()) return absl::StrCat(head, ": nothing holds it; it is being freed");
  return absl::StrCat(head, " is alive because:\n  ", absl::StrJoin(holders, "\n  "));
}

void SetDiagnosticSink(DiagnosticSink sink) {
  detail::MutexLock lock(&State().sink_mu);
  State().sink = std::move(sink);
}

void detail::DeliverDiagnostic(const Diagnostic& diagnostic) {
  DiagnosticSink sink;
  {
    detail::MutexLock lock(&State().sink_mu);
    sink = State().sink;
  }
  if (sink) {
    sink(diagnostic);
  } else {
    fprintf(stderr, "%s\n", diagnostic.message.c_str());
  }
}

ObjectGraph& graph() {
  static ObjectGraph* g = new ObjectGraph(&State());
  return *g;
}

ObjectGraph::ObjectGraph(detail::GraphState* state) : state_(state) {}

void detail::PopulateGraph(ObjectGraph& graph, const std::vector<GraphNode>& nodes,
                           const std::vector<GraphEdge>& edges) {
  GraphState& s = *graph.state_;
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  for (const GraphNode& n : nodes) g.Ensure(n.ref).node = n;
  for (const GraphEdge& e : edges) {
    g.AddEdge(e.from, e.to, e.kind, e.slot);
    const NodeData* to = g.Find(e.to);
    if (e.kind == EdgeKind::kTailCall ||
        (e.kind == EdgeKind::kUsesMap && to && IsProgArrayType(to->node.type))) {
      g.FindCycles(e.from, e.to);
    }
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

// --- policies -------------------------------------------------------------------------

void ObjectGraph::SetDefaultPolicy(LifetimePolicy policy) {
  if (policy == LifetimePolicy::kDefault) policy = LifetimePolicy::kWarn;
  detail::MutexLock lock(&(*state_).mu);
  (*state_).default_policy = policy;
}

LifetimePolicy ObjectGraph::default_policy() const {
  detail::MutexLock lock(&(*state_).mu);
  return (*state_).default_policy;
}

void ObjectGraph::SetPinDirectory(const std::string& dir) {
  detail::MutexLock lock(&(*state_).mu);
  (*state_).pin_dir = dir;
}

std::string ObjectGraph::pin_directory() const {
  detail::MutexLock lock(&(*state_).mu);
  return (*state_).pin_dir;
}

size_t ObjectGraph::ReleaseKept() {
  GraphState& s = (*state_);
  std::vector<int> fds;
  {
    detail::MutexLock lock(&s.mu);
    Locked g(s);
    std::vector<NodeRef> released;
    for (auto& [ref, n] : s.nodes) {
      if (n.kept_fd >= 0) {
        fds.push_back(n.kept_fd);
        n.kept_fd = -1;
        n.node.kept_alive = false;
        released.push_back(ref);
      }
    }
    for (NodeRef ref : released) {
      NodeData* n = g.Find(ref);
      if (n && !g.ArrayHasUserRef(*n)) g.ClearArrayEntries(ref);
      g.Collect(ref);
    }
  }
  for (int fd : fds) close(fd);
  return fds.size();
}

// --- queries ------------------------------------------------------------------------

std::vector<GraphNode> ObjectGraph::Nodes() const {
  detail::MutexLock lock(&(*state_).mu);
  std::vector<GraphNode> out;
  out.reserve((*state_).nodes.size());
  for (const auto& [ref, n] : (*state_).nodes) {
    out.push_back(n.node);
    out.back().kept_alive = n.kept_fd >= 0;
  }
  std::sort(out.begin(), out.end(), [](const GraphNode& a, const GraphNode& b) {
    return std::make_pair(a.ref.kind, a.ref.id) < std::make_pair(b.ref.kind, b.ref.id);
  });
  return out;
}

std::vector<GraphEdge> ObjectGraph::Edges() const {
  detail::MutexLock lock(&(*state_).mu);
  std::vector<GraphEdge> out;
  for (const auto& [ref, n] : (*state_).nodes)
    for (const Edge& e : n.out) out.push_back(GraphEdge{e.from, e.to, e.kind, e.slot});
  std::sort(out.begin(), out.end(), [](const GraphEdge& a, const GraphEdge& b) {
    return std::make_tuple(a.from.kind, a.from.id, a.kind, a.slot, a.to.kind, a.to.id) <
           std::make_tuple(b.from.kind, b.from.id, b.kind, b.slot, b.to.kind, b.to.id);
  });
  return out;
}

absl::optional<GraphNode> ObjectGraph::Node(NodeRef ref) const {
  detail::MutexLock lock(&(*state_).mu);
  auto it = (*state_).nodes.find(ref);
  if (it == (*state_).nodes.end()) return absl::nullopt;
  GraphNode n = it->second.node;
  n.kept_alive = it->second.kept_fd >= 0;
  return n;
}

size_t ObjectGraph::node_count() const {
  detail::MutexLock lock(&(*state_).mu);
  return (*state_).nodes.size();
}

size_t ObjectGraph::edge_count() const {
  detail::MutexLock lock(&(*state_).mu);
  return (*state_).edge_count;
}

std::vector<Cycle> ObjectGraph::Cycles() const {
  GraphState& s = (*state_);
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  // Drop the cycles that an edge removal has opened since.
  s.cycles.erase(std::remove_if(s.cycles.begin(), s.cycles.end(),
                                [&](const Cycle& c) { return !g.CycleClosed(c); }),
                 s.cycles.end());
  return s.cycles;
}

Explanation ObjectGraph::Explain(NodeRef ref) const {
  GraphState& s = (*state_);
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  Explanation ex;
  ex.subject = ref;
  if (!g.Find(ref)) return ex;
  ex.known = true;
  absl::flat_hash_set<NodeRef> seen;
  g.ExplainInto(ref, 0, &seen, &ex.holders);
  ex.alive = ref.kind == NodeKind::kPin || g.Live(ref);
  return ex;
}

std::vector<std::string> ObjectGraph::WhatBreaks(NodeRef ref) const {
  GraphState& s = (*state_);
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  std::vector<std::string> out;
  if (!g.Find(ref)) {
    out.push_back(absl::StrCat(NodeKindName(ref.kind), " ", ref.id, " is not in tether's graph"));
    return out;
  }
  g.BreaksInto(ref, &out);
  return out;
}

std::string ObjectGraph::ToText() const {
  std::vector<GraphNode> nodes = Nodes();
  std::vector<GraphEdge> edges = Edges();
  std::vector<Cycle> cycles = Cycles();
  GraphState& s = (*state_);
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  std::string out;
  for (const GraphNode& n : nodes) {
    std::vector<std::string> flags;
    if (n.handles) flags.push_back(absl::StrCat(n.handles, " handle(s)"));
    if (n.kept_alive) flags.push_back("kept alive");
    if (n.cleared_by_kernel) flags.push_back("cleared by the kernel");
    for (const auto& h : n.legacy_hooks) flags.push_back(absl::StrCat("legacy hook: ", h));
    for (const auto& h : n.holders) flags.push_back(absl::StrCat("fd in ", h));
    std::string type;
    if (n.ref.kind == NodeKind::kMap) type = MapTypeName(n.type);
    if (n.ref.kind == NodeKind::kProgram) type = ProgramTypeName(n.type);
    absl::StrAppend(&out, g.Label(n.ref), type.empty() ? "" : absl::StrCat(" [", type, "]"),
                    flags.empty() ? "" : absl::StrCat(" {", absl::StrJoin(flags, ", "), "}"), "\n");
    for (const GraphEdge& e : edges) {
      if (e.from != n.ref) continue;
      std::string slot = (e.kind == EdgeKind::kTailCall || e.kind == EdgeKind::kInnerMap)
                             ? absl::StrCat("[", e.slot, "] ")
                             : "";
      absl::StrAppend(&out, "  ", EdgeKindName(e.kind), " ", slot, "-> ", g.Label(e.to), "\n");
    }
    for (const auto& note : n.notes) absl::StrAppend(&out, "  !! ", note, "\n");
  }
  for (const Cycle& c : cycles) absl::StrAppend(&out, "cycle: ", c.ToString(), "\n");
  return out;
}

std::string ObjectGraph::ToDot() const {
  std::vector<GraphNode> nodes = Nodes();
  std::vector<GraphEdge> edges = Edges();
  std::vector<Cycle> cycles = Cycles();
  absl::flat_hash_set<NodeRef> in_cycle;
  for (const Cycle& c : cycles)
    for (NodeRef r : c.nodes) in_cycle.insert(r);
  std::string out = "digraph tether {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n";
  for (const GraphNode& n : nodes) {
    std::string shape = "box";
    std::string extra;
    std::string label;
    switch (n.ref.kind) {
      case NodeKind::kMap:
        shape = n.is_program_array() ? "box3d" : "box";
        label = absl::StrFormat("%s\n%s id %u", n.name, MapTypeName(n.type), n.ref.id);
        break;
      case NodeKind::kProgram:
        shape = "ellipse";
        label = absl::StrFormat("%s\n%s id %u", n.name, ProgramTypeName(n.type), n.ref.id);
        break;
      case NodeKind::kLink:
        shape = "diamond";
        label = absl::StrFormat("link %u\n%s", n.ref.id, n.name);
        break;
      case NodeKind::kPin:
        shape = "note";
        label = n.name;
        break;
    }
    if (n.handles) absl::StrAppend(&label, "\n", n.handles, " handle(s)");
    if (n.kept_alive) absl::StrAppend(&label, "\nkept alive");
    if (!n.holders.empty()) absl::StrAppend(&label, "\n", n.holders.size(), " fd holder(s)");
    if (n.cleared_by_kernel) absl::StrAppend(&label, "\ncleared by kernel");
    for (const auto& note : n.notes) absl::StrAppend(&label, "\n!! ", note);
    if (n.cleared_by_kernel || !n.notes.empty()) extra = ", color=red, fontcolor=red";
    if (in_cycle.contains(n.ref)) extra += ", penwidth=2";
    absl::StrAppend(&out, "  \"", NodeKey(n.ref), "\" [shape=", shape, ", label=\"",
                    JsonEscape(label), "\"", extra, "];\n");
  }
  for (const GraphEdge& e : edges) {
    std::string label = EdgeKindName(e.kind);
    if (e.kind == EdgeKind::kTailCall || e.kind == EdgeKind::kInnerMap)
      label = absl::StrCat("[", e.slot, "]");
    std::string style = e.kind == EdgeKind::kUsesMap ? ", style=dashed" : "";
    absl::StrAppend(&out, "  \"", NodeKey(e.from), "\" -> \"", NodeKey(e.to), "\" [label=\"",
                    label, "\"", style, "];\n");
  }
  out += "}\n";
  return out;
}

std::string ObjectGraph::ToJson() const {
  std::vector<GraphNode> nodes = Nodes();
  std::vector<GraphEdge> edges = Edges();
  std::vector<Cycle> cycles = Cycles();
  std::string out = "{\n  \"version\": 1,\n  \"nodes\": [";
  for (size_t i = 0; i < nodes.size(); ++i) {
    const GraphNode& n = nodes[i];
    std::string type;
    if (n.ref.kind == NodeKind::kMap) type = MapTypeName(n.type);
    if (n.ref.kind == NodeKind::kProgram) type = ProgramTypeName(n.type);
    auto json_list = [](const std::vector<std::string>& items) {
      std::vector<std::string> quoted;
      for (const auto& h : items) quoted.push_back(absl::StrCat("\"", JsonEscape(h), "\""));
      return absl::StrCat("[", absl::StrJoin(quoted, ", "), "]");
    };
    absl::StrAppend(&out, i ? "," : "", "\n    {\"key\": \"", NodeKey(n.ref), "\", \"kind\": \"",
                    NodeKindName(n.ref.kind), "\", \"id\": ", n.ref.id, ", \"name\": \"",
                    JsonEscape(n.name), "\", \"type\": \"", type, "\", \"handles\": ", n.handles,
                    ", \"kept_alive\": ", n.kept_alive ? "true" : "false",
                    ", \"cleared_by_kernel\": ", n.cleared_by_kernel ? "true" : "false",
                    ", \"legacy_hooks\": ", json_list(n.legacy_hooks),
                    ", \"holders\": ", json_list(n.holders), ", \"notes\": ", json_list(n.notes), "}");
  }
  out += "\n  ],\n  \"edges\": [";
  for (size_t i = 0; i < edges.size(); ++i) {
    const GraphEdge& e = edges[i];
    absl::StrAppend(&out, i ? "," : "", "\n    {\"from\": \"", NodeKey(e.from), "\", \"to\": \"",
                    NodeKey(e.to), "\", \"kind\": \"", EdgeKindName(e.kind), "\", \"slot\": ",
                    e.slot, "}");
  }
  out += "\n  ],\n  \"cycles\": [";
  for (size_t i = 0; i < cycles.size(); ++i) {
    std::vector<std::string> keys;
    for (NodeRef r : cycles[i].nodes) keys.push_back(absl::StrCat("\"", NodeKey(r), "\""));
    absl::StrAppend(&out, i ? ", " : "", "[", absl::StrJoin(keys, ", "), "]");
  }
  out += "]\n}\n";
  return out;
}

// --- updates from handles ----------------------------------------------------------------

namespace detail {

void GraphOnMapCreated(uint32_t map_id, const std::string& name, uint32_t map_type) {
  GraphState& s = State();
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  NodeData& n = g.Ensure(NodeRef{NodeKind::kMap, map_id});
  n.node.name = name;
  n.node.type = map_type;
  n.node.handles++;
}

absl::Status GraphCheckLastRelease(uint32_t map_id) {
  GraphState& s = State();
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  const NodeData* n = g.Find(NodeRef{NodeKind::kMap, map_id});
  if (!n || n->node.handles > 1) return absl::OkStatus();
  std::vector<NodeRef> users;
  if (!g.OrphanHazard(*n, &users)) return absl::OkStatus();
  return absl::FailedPreconditionError(g.HazardMessage(*n, users, "close refused"));
}

MapReleaseVerdict GraphOnMapReleased(uint32_t map_id, int fd, LifetimePolicy map_policy) {
  GraphState& s = State();
  MapReleaseVerdict verdict;
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  NodeRef ref{NodeKind::kMap, map_id};
  NodeData* n = g.Find(ref);
  if (!n) return verdict;
  if (n->node.handles > 0) n->node.handles--;
  if (n->node.handles > 0) return verdict;

  std::vector<NodeRef> users;
  if (g.OrphanHazard(*n, &users)) {
    LifetimePolicy policy = map_policy;
    if (policy == LifetimePolicy::kDefault) policy = s.default_policy;
    Diagnostic d;
    d.map_name = n->node.name;
    d.map_id = ref.id;
    d.entries = g.Slots(*n).size();
    for (NodeRef u : users) d.programs.push_back(g.ShortLabel(u));
    switch (policy) {
      case LifetimePolicy::kDefault:
      case LifetimePolicy::kWarn:
        d.kind = Diagnostic::Kind::kProgramArrayOrphaned;
        d.message = g.HazardMessage(*n, users, "warning");
        verdict.diagnostic = std::move(d);
        break;
      case LifetimePolicy::kKeepAlive:
        n->kept_fd = fd;
        n->node.kept_alive = true;
        verdict.action = MapReleaseVerdict::Action::kKeepAlive;
        break;  // no entries are lost, nothing to say
      case LifetimePolicy::kPin:
        verdict.action = MapReleaseVerdict::Action::kPin;
        verdict.pin_path = absl::StrFormat(
            "%s/%s_%u", s.pin_dir, n->node.name.empty() ? "prog_array" : n->node.name, ref.id);
        verdict.diagnostic = std::move(d);
        // The array keeps its entries until GraphOnPolicyPin hears how the
        // pin went: pinning is a syscall, made without the graph's lock.
        return verdict;
      case LifetimePolicy::kIgnore:
        break;
    }
  }
  if (n->node.type == BPF_MAP_TYPE_PROG_ARRAY && !g.ArrayHasUserRef(*n)) {
    g.ClearArrayEntries(ref);
  }
  g.Collect(ref);
  return verdict;
}

MapReleaseVerdict GraphOnPolicyPin(uint32_t map_id, int fd, MapReleaseVerdict verdict,
                                   const absl::Status& pinned) {
  GraphState& s = State();
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  NodeRef ref{NodeKind::kMap, map_id};
  Diagnostic& d = *verdict.diagnostic;
  if (pinned.ok()) {
    auto [it, inserted] = s.pin_ids.try_emplace(verdict.pin_path, s.next_pin_id);
    if (inserted) s.next_pin_id++;
    NodeRef pin{NodeKind::kPin, it->second};
    g.Ensure(pin).node.name = verdict.pin_path;
    g.AddEdge(pin, ref, EdgeKind::kPinHolds, 0);
    verdict.action = MapReleaseVerdict::Action::kClose;
    d.kind = Diagnostic::Kind::kProgramArrayPinned;
    d.pin_path = verdict.pin_path;
    d.message = absl::StrFormat(
        "tether: program array '%s' (id %u) lost its last handle; pinned it at %s "
        "(LifetimePolicy::kPin) so its tail calls keep working",
        d.map_name, ref.id, verdict.pin_path);
  } else {
    NodeData& n = g.Ensure(ref);
    n.kept_fd = fd;
    n.node.kept_alive = true;
    verdict.action = MapReleaseVerdict::Action::kKeepAlive;
    d.kind = Diagnostic::Kind::kPolicyFailed;
    d.message = absl::StrCat("tether: program array '", d.map_name, "' (id ", ref.id,
                             "): the Pin policy failed (", pinned.message(),
                             "); keeping it alive instead until ReleaseKept()");
  }
  NodeData* n = g.Find(ref);
  if (n->node.type == BPF_MAP_TYPE_PROG_ARRAY && !g.ArrayHasUserRef(*n)) {
    g.ClearArrayEntries(ref);
  }
  g.Collect(ref);
  return verdict;
}

void GraphOnProgramCreated(uint32_t prog_id, const std::string& name, uint32_t prog_type,
                           const std::vector<uint32_t>& used_map_ids) {
  GraphState& s = State();
  NodeRef ref{NodeKind::kProgram, prog_id};
  std::vector<uint32_t> unknown;
  {
    detail::MutexLock lock(&s.mu);
    Locked g(s);
    NodeData& n = g.Ensure(ref);
    n.node.name = name;
    n.node.type = prog_type;
    bool first = n.node.handles == 0 && n.out.empty();
    n.node.handles++;
    if (!first) return;  // a second object on a known program: edges exist
    for (uint32_t id : used_map_ids)
      if (!g.Find(NodeRef{NodeKind::kMap, id})) unknown.push_back(id);
  }
  // Name maps that no handle of ours owns, without holding the lock over
  // syscalls.
  std::vector<std::pair<uint32_t, bpf_map_info>> fetched;
  for (uint32_t id : unknown) {
    auto fd = sys::GetFdById(sys::ObjectKind::kMap, id);
    if (!fd.ok()) continue;
    auto mi = sys::GetMapInfo(fd->get());
    if (mi.ok()) fetched.emplace_back(id, *mi);
  }
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  for (auto& [id, mi] : fetched) {
    NodeData& m = g.Ensure(NodeRef{NodeKind::kMap, id});
    if (m.node.name.empty()) {
      m.node.name = mi.name;
      m.node.type = mi.type;
    }
  }
  for (uint32_t id : used_map_ids) {
    NodeRef map_ref{NodeKind::kMap, id};
    g.AddEdge(ref, map_ref, EdgeKind::kUsesMap, 0);
    const NodeData* m = g.Find(map_ref);
    if (m && IsProgArrayType(m->node.type)) g.FindCycles(ref, map_ref);
  }
}

void GraphOnProgramReleased(uint32_t prog_id) {
  GraphState& s = State();
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  NodeRef ref{NodeKind::kProgram, prog_id};
  NodeData* n = g.Find(ref);
  if (!n) return;
  if (n->node.handles > 0) n->node.handles--;
  g.Collect(ref);
}

void GraphSetTailCall(uint32_t array_id, uint32_t slot, uint32_t prog_id,
                      const std::string& prog_name, uint32_t prog_type) {
  GraphState& s = State();
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  NodeRef a{NodeKind::kMap, array_id};
  NodeRef p{NodeKind::kProgram, prog_id};
  auto replaced = g.RemoveEdges(
      a, [slot](const Edge& e) { return e.kind == EdgeKind::kTailCall && e.slot == slot; });
  NodeData& pn = g.Ensure(p);
  if (pn.node.name.empty()) {
    pn.node.name = prog_name;
    pn.node.type = prog_type;
  }
  g.Find(a)->node.cleared_by_kernel = false;
  g.AddEdge(a, p, EdgeKind::kTailCall, slot);
  g.FindCycles(a, p);
  for (NodeRef r : replaced) g.Collect(r);
}

void GraphNoteTailCallById(uint32_t array_id, uint32_t slot, uint32_t prog_id) {
  GraphState& s = State();
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  NodeRef a{NodeKind::kMap, array_id};
  NodeRef p{NodeKind::kProgram, prog_id};
  g.RemoveEdges(a, [slot](const Edge& e) { return e.kind == EdgeKind::kTailCall && e.slot == slot; });
  g.Ensure(p);
  g.AddEdge(a, p, EdgeKind::kTailCall, slot);
  g.FindCycles(a, p);
}

void GraphDeleteTailCall(uint32_t array_id, uint32_t slot) {
  GraphState& s = State();
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  NodeRef a{NodeKind::kMap, array_id};
  auto touched = g.RemoveEdges(
      a, [slot](const Edge& e) { return e.kind == EdgeKind::kTailCall && e.slot == slot; });
  for (NodeRef r : touched) g.Collect(r);
}

void GraphSetInnerMap(uint32_t outer_id, uint32_t slot, uint32_t inner_id) {
  GraphState& s = State();
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  NodeRef o{NodeKind::kMap, outer_id};
  auto replaced = g.RemoveEdges(
      o, [slot](const Edge& e) { return e.kind == EdgeKind::kInnerMap && e.slot == slot; });
  g.AddEdge(o, NodeRef{NodeKind::kMap, inner_id}, EdgeKind::kInnerMap, slot);
  for (NodeRef r : replaced) g.Collect(r);
}

void GraphDeleteInnerMap(uint32_t outer_id, uint32_t slot) {
  GraphState& s = State();
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  NodeRef o{NodeKind::kMap, outer_id};
  auto touched = g.RemoveEdges(
      o, [slot](const Edge& e) { return e.kind == EdgeKind::kInnerMap && e.slot == slot; });
  for (NodeRef r : touched) g.Collect(r);
}

void GraphAddPin(NodeRef target, const std::string& path) {
  GraphState& s = State();
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  auto [it, inserted] = s.pin_ids.try_emplace(path, s.next_pin_id);
  if (inserted) s.next_pin_id++;
  NodeRef pin{NodeKind::kPin, it->second};
  auto old = g.RemoveEdges(pin, [](const Edge&) { return true; });
  g.Ensure(pin).node.name = path;
  g.AddEdge(pin, target, EdgeKind::kPinHolds, 0);
  for (NodeRef r : old) g.Collect(r);
}

void GraphRemovePin(const std::string& path) {
  GraphState& s = State();
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  auto it = s.pin_ids.find(path);
  if (it == s.pin_ids.end()) return;
  NodeRef pin{NodeKind::kPin, it->second};
  s.pin_ids.erase(it);
  auto touched = g.RemoveEdges(pin, [](const Edge&) { return true; });
  s.nodes.erase(pin);
  for (NodeRef t : touched) {
    NodeData* n = g.Find(t);
    if (n && n->node.type == BPF_MAP_TYPE_PROG_ARRAY && t.kind == NodeKind::kMap &&
        !g.ArrayHasUserRef(*n)) {
      g.ClearArrayEntries(t);
    }
    g.Collect(t);
  }
}

std::string GraphPinPathOf(NodeRef target) {
  GraphState& s = State();
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  const NodeData* n = g.Find(target);
  if (!n) return "";
  for (const Edge& e : n->in)
    if (e.kind == EdgeKind::kPinHolds) return g.Find(e.from)->node.name;
  return "";
}

void GraphAddLegacyHook(NodeRef prog, const std::string& hook) {
  GraphState& s = State();
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  g.Ensure(prog).node.legacy_hooks.push_back(hook);
}

void GraphRemoveLegacyHook(NodeRef prog, const std::string& hook) {
  GraphState& s = State();
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  NodeData* n = g.Find(prog);
  if (!n) return;
  auto& hooks = n->node.legacy_hooks;
  auto it = std::find(hooks.begin(), hooks.end(), hook);
  if (it != hooks.end()) hooks.erase(it);
  g.Collect(prog);
}

void GraphOnLinkCreated(uint32_t link_id, uint32_t link_type, uint32_t prog_id,
                        const std::string& description) {
  GraphState& s = State();
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  NodeRef l{NodeKind::kLink, link_id};
  NodeData& n = g.Ensure(l);
  n.node.name = description;
  n.node.type = link_type;
  bool first = n.node.handles == 0 && n.out.empty();
  n.node.handles++;
  if (first) g.AddEdge(l, NodeRef{NodeKind::kProgram, prog_id}, EdgeKind::kLinkHolds, 0);
}

void GraphOnLinkReleased(uint32_t link_id) {
  GraphState& s = State();
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  NodeRef l{NodeKind::kLink, link_id};
  NodeData* n = g.Find(l);
  if (!n) return;
  if (n->node.handles > 0) n->node.handles--;
  g.Collect(l);
}

void GraphOnLinkProgramChanged(uint32_t link_id, uint32_t prog_id) {
  GraphState& s = State();
  detail::MutexLock lock(&s.mu);
  Locked g(s);
  NodeRef l{NodeKind::kLink, link_id};
  if (!g.Find(l)) return;
  auto old = g.RemoveEdges(l, [](const Edge& e) { return e.kind == EdgeKind::kLinkHolds; });
  if (prog_id != 0) g.AddEdge(l, NodeRef{NodeKind::kProgram, prog_id}, EdgeKind::kLinkHolds, 0);
  for (NodeRef r : old) g.Collect(r);
}

}  // namespace detail
}  // namespace tether
