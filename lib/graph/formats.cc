// The graph's writers: text for people, DOT for Graphviz, JSON for tools.
// tether-cli, the docs and the tests read these byte for byte.
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/json_internal.h"
#include "graph/explain.h"
#include "graph/store.h"
#include "graph/tail_call_counts.h"
#include "base/printable.h"
#include "sys/uapi_names.h"
#include "tether/graph.h"

namespace tether {
namespace {

using detail::JsonEscape;
using sys::MapTypeName;
using sys::ProgramTypeName;

std::string NodeKey(NodeRef r) { return absl::StrCat(NodeKindName(r.kind), ":", r.id); }

// The counted misses of a program's tail calls through map `array_id`:
// nullopt when the program has no counted site through it.
absl::optional<uint64_t> MissesThrough(const GraphNode* program, uint32_t array_id) {
  if (program == nullptr) return absl::nullopt;
  absl::optional<uint64_t> total;
  for (const TailCallSite& s : program->tail_call_sites)
    if (s.array_id == array_id) total = total.value_or(0) + s.misses;
  return total;
}

const GraphNode* Find(const std::vector<GraphNode>& nodes, NodeRef ref) {
  for (const GraphNode& n : nodes)
    if (n.ref == ref) return &n;
  return nullptr;
}

std::string SiteText(const TailCallSite& s) {
  std::string where = s.line ? absl::StrCat(" (", s.file, ":", s.line, ")") : "";
  std::string fn = s.function != s.program ? absl::StrCat(" in ", s.function) : "";
  return absl::StrCat("tail call at insn ", s.insn, fn, where, " through ",
                      s.array.empty() ? std::string("an unknown array") : s.array, ": ", s.misses,
                      " miss(es)");
}

}  // namespace

std::string ObjectGraph::ToText() const {
  std::vector<GraphNode> nodes = Nodes();
  detail::AddTailCallCounts(&nodes);
  std::vector<GraphEdge> edges = Edges();
  std::vector<Cycle> cycles = Cycles();
  detail::LockedStore store(*state_);
  detail::Narrator g(store);
  std::string out;
  for (const GraphNode& n : nodes) {
    std::vector<std::string> flags;
    if (n.handles) flags.push_back(absl::StrCat(n.handles, " handle(s)"));
    if (n.kept_alive) flags.push_back("kept alive");
    if (n.deferred) flags.push_back("deferred");
    if (n.cleared_by_kernel) flags.push_back("cleared by the kernel");
    for (const auto& h : n.legacy_hooks) flags.push_back(absl::StrCat("legacy hook: ", base::Printable(h)));
    for (const auto& h : n.holders) flags.push_back(absl::StrCat("fd in ", base::Printable(h)));
    std::string type;
    if (n.ref.kind == NodeKind::kMap) type = MapTypeName(n.type);
    if (n.ref.kind == NodeKind::kProgram) type = ProgramTypeName(n.type);
    absl::StrAppend(&out, g.Label(n.ref), type.empty() ? "" : absl::StrCat(" [", type, "]"),
                    flags.empty() ? "" : absl::StrCat(" {", absl::StrJoin(flags, ", "), "}"), "\n");
    for (const GraphEdge& e : edges) {
      if (e.from != n.ref) continue;
      std::string slot = (e.kind == EdgeKind::kTailCall || e.kind == EdgeKind::kInnerMap ||
                         e.kind == EdgeKind::kStructOps)
                             ? absl::StrCat("[", e.slot, "] ")
                             : "";
      absl::optional<uint64_t> misses =
          e.kind == EdgeKind::kUsesMap ? MissesThrough(&n, e.to.id) : absl::nullopt;
      absl::StrAppend(&out, "  ", EdgeKindName(e.kind), " ", slot, "-> ", g.Label(e.to),
                      misses ? absl::StrCat(" [", *misses, " tail-call miss(es)]") : "", "\n");
    }
    for (const TailCallSite& s : n.tail_call_sites)
      absl::StrAppend(&out, "  ", base::Printable(SiteText(s)), "\n");
    for (const auto& note : n.notes) absl::StrAppend(&out, "  !! ", base::PrintableText(note), "\n");
  }
  for (const Cycle& c : cycles) absl::StrAppend(&out, "cycle: ", c.ToString(), "\n");
  return out;
}

std::string ObjectGraph::ToDot() const {
  std::vector<GraphNode> nodes = Nodes();
  detail::AddTailCallCounts(&nodes);
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
    if (e.kind == EdgeKind::kStructOps) label = absl::StrCat("struct_ops [", e.slot, "]");
    std::string style = e.kind == EdgeKind::kUsesMap ? ", style=dashed" : "";
    absl::optional<uint64_t> misses =
        e.kind == EdgeKind::kUsesMap ? MissesThrough(Find(nodes, e.from), e.to.id) : absl::nullopt;
    if (misses) {
      label = absl::StrCat(*misses, " miss(es)");
      if (*misses) style += ", color=red, fontcolor=red";
    }
    absl::StrAppend(&out, "  \"", NodeKey(e.from), "\" -> \"", NodeKey(e.to), "\" [label=\"",
                    label, "\"", style, "];\n");
  }
  out += "}\n";
  return out;
}

std::string ObjectGraph::ToJson() const {
  std::vector<GraphNode> nodes = Nodes();
  detail::AddTailCallCounts(&nodes);
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
                    ", \"holders\": ", json_list(n.holders), ", \"notes\": ", json_list(n.notes));
    if (!n.tail_call_sites.empty()) {
      std::vector<std::string> sites;
      for (const TailCallSite& t : n.tail_call_sites) {
        sites.push_back(absl::StrFormat(
            "{\"site\": %u, \"function\": \"%s\", \"insn\": %u, \"file\": \"%s\", \"line\": %u, "
            "\"array\": \"%s\", \"array_id\": %u, \"misses\": %u}",
            t.index, JsonEscape(t.function), t.insn, JsonEscape(t.file), t.line, JsonEscape(t.array),
            t.array_id, t.misses));
      }
      absl::StrAppend(&out, ", \"tail_call_sites\": [", absl::StrJoin(sites, ", "), "]");
    }
    out += "}";
  }
  out += "\n  ],\n  \"edges\": [";
  for (size_t i = 0; i < edges.size(); ++i) {
    const GraphEdge& e = edges[i];
    absl::StrAppend(&out, i ? "," : "", "\n    {\"from\": \"", NodeKey(e.from), "\", \"to\": \"",
                    NodeKey(e.to), "\", \"kind\": \"", EdgeKindName(e.kind), "\", \"slot\": ",
                    e.slot);
    absl::optional<uint64_t> misses =
        e.kind == EdgeKind::kUsesMap ? MissesThrough(Find(nodes, e.from), e.to.id) : absl::nullopt;
    if (misses) absl::StrAppend(&out, ", \"tail_call_misses\": ", *misses);
    out += "}";
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

}  // namespace tether
