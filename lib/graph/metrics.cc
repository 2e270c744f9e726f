// Hazard classification and the OpenMetrics writer (tether/graph_metrics.h).
#include <cstdlib>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "graph/tail_call_counts.h"
#include "tether/graph.h"
#include "tether/graph_metrics.h"

namespace tether {
namespace {

struct InEdges {
  bool pinned = false;
  bool used_by_program = false;
  bool held_by_reference = false;  // a link, a tail-call slot, an outer map or a program
};

absl::flat_hash_map<NodeRef, InEdges> IndexInEdges(const std::vector<GraphEdge>& edges) {
  absl::flat_hash_map<NodeRef, InEdges> in;
  for (const GraphEdge& e : edges) {
    InEdges& to = in[e.to];
    if (e.kind == EdgeKind::kPinHolds) {
      to.pinned = true;
      continue;
    }
    if (e.kind == EdgeKind::kUsesMap) to.used_by_program = true;
    to.held_by_reference = true;
  }
  return in;
}

// Holders read "pid 812 (agent) fd 7"; the distinct pids, this process
// (its handles) counted as one more.
size_t HoldingProcesses(const GraphNode& n) {
  absl::flat_hash_set<absl::string_view> pids;
  for (const std::string& h : n.holders) {
    absl::string_view s(h);
    if (!absl::ConsumePrefix(&s, "pid ")) continue;
    pids.insert(s.substr(0, s.find(' ')));
  }
  return pids.size() + (n.handles > 0 || n.kept_alive ? 1 : 0);
}

absl::optional<HazardKind> Classify(const GraphNode& n, const InEdges& in) {
  size_t processes = HoldingProcesses(n);
  bool user_ref = processes > 0 || in.pinned;
  if (n.is_program_array()) {
    if (n.cleared_by_kernel && !user_ref) return HazardKind::kKernelOnlyProgramArray;
    if (!in.used_by_program) return absl::nullopt;
    if (!user_ref) return HazardKind::kKernelOnlyProgramArray;
    if (processes == 1 && !in.pinned) return HazardKind::kSingleProcessProgramArray;
    return absl::nullopt;
  }
  if (n.ref.kind == NodeKind::kProgram && !n.legacy_hooks.empty() && !user_ref &&
      !in.held_by_reference) {
    return HazardKind::kOrphanedLegacyHook;
  }
  if (n.ref.kind == NodeKind::kMap && !user_ref && !in.held_by_reference) {
    return HazardKind::kUnheldMap;
  }
  return absl::nullopt;
}

void AppendFamily(std::string* out, absl::string_view name, absl::string_view help,
                  absl::string_view type = "gauge") {
  absl::StrAppend(out, "# TYPE ", name, " ", type, "\n# HELP ", name, " ", help, "\n");
}

// A label value: OpenMetrics escapes backslash, double quote and newline.
// Names come from the objects, so they are untrusted text.
std::string LabelValue(absl::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out.push_back(c);
  }
  return out;
}

// One sample per counted tail-call site: a counter, since it only grows
// while the program lives.
void AppendTailCallMisses(std::string* out, const std::vector<GraphNode>& nodes) {
  AppendFamily(out, "tether_tail_call_misses",
               "Tail calls that fell through, per bpf_tail_call site of programs loaded with "
               "tether's miss counters.",
               "counter");
  for (const GraphNode& n : nodes) {
    for (const TailCallSite& s : n.tail_call_sites) {
      absl::StrAppend(out, "tether_tail_call_misses_total{program=\"", LabelValue(n.name),
                      "\",program_id=\"", n.ref.id, "\",site=\"", s.index, "\",function=\"",
                      LabelValue(s.function), "\",insn=\"", s.insn, "\",file=\"", LabelValue(s.file),
                      "\",line=\"", s.line, "\",array=\"", LabelValue(s.array), "\",array_id=\"",
                      s.array_id, "\"} ", s.misses, "\n");
    }
  }
}

}  // namespace

const char* HazardKindName(HazardKind kind) {
  switch (kind) {
    case HazardKind::kKernelOnlyProgramArray: return "kernel_only_program_array";
    case HazardKind::kSingleProcessProgramArray: return "single_process_program_array";
    case HazardKind::kOrphanedLegacyHook: return "orphaned_legacy_hook";
    case HazardKind::kUnheldMap: return "unheld_map";
  }
  return "unknown";
}

std::vector<Hazard> FindHazards(const std::vector<GraphNode>& nodes,
                                const std::vector<GraphEdge>& edges) {
  absl::flat_hash_map<NodeRef, InEdges> in = IndexInEdges(edges);
  std::vector<Hazard> hazards;
  for (const GraphNode& n : nodes) {
    auto it = in.find(n.ref);
    absl::optional<HazardKind> kind = Classify(n, it != in.end() ? it->second : InEdges{});
    if (kind) hazards.push_back({n.ref, *kind});
  }
  return hazards;
}

std::vector<Hazard> FindHazards(const ObjectGraph& graph) {
  return FindHazards(graph.Nodes(), graph.Edges());
}

std::string ToOpenMetrics(const ObjectGraph& graph) {
  std::vector<GraphNode> nodes = graph.Nodes();
  detail::AddTailCallCounts(&nodes);
  std::vector<GraphEdge> edges = graph.Edges();
  std::string out;

  AppendFamily(&out, "tether_objects", "BPF objects in the graph, by kind.");
  for (NodeKind kind : {NodeKind::kMap, NodeKind::kProgram, NodeKind::kLink, NodeKind::kPin}) {
    size_t n = 0;
    for (const GraphNode& node : nodes) n += node.ref.kind == kind;
    absl::StrAppend(&out, "tether_objects{kind=\"", NodeKindName(kind), "\"} ", n, "\n");
  }

  AppendFamily(&out, "tether_edges", "References between BPF objects, by kind.");
  for (EdgeKind kind : {EdgeKind::kTailCall, EdgeKind::kUsesMap, EdgeKind::kLinkHolds,
                        EdgeKind::kPinHolds, EdgeKind::kInnerMap, EdgeKind::kStructOps}) {
    size_t n = 0;
    for (const GraphEdge& e : edges) n += e.kind == kind;
    absl::StrAppend(&out, "tether_edges{kind=\"", EdgeKindName(kind), "\"} ", n, "\n");
  }

  AppendFamily(&out, "tether_cycles", "Program to program array cycles still closed.");
  absl::StrAppend(&out, "tether_cycles ", graph.Cycles().size(), "\n");

  AppendFamily(&out, "tether_hazards", "Objects with a lifetime hazard, by hazard kind.");
  std::vector<Hazard> hazards = FindHazards(nodes, edges);
  for (HazardKind kind : kAllHazardKinds) {
    size_t n = 0;
    for (const Hazard& h : hazards) n += h.kind == kind;
    absl::StrAppend(&out, "tether_hazards{kind=\"", HazardKindName(kind), "\"} ", n, "\n");
  }
  AppendTailCallMisses(&out, nodes);
  absl::StrAppend(&out, "# EOF\n");
  return out;
}

}  // namespace tether
