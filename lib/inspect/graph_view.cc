// Views of a scanned graph: what the scan cannot see, the parts a user
// asks for, and the unreachable maps summed up in one line.
#include <linux/bpf.h>

#include <cstring>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tether/system_graph.h"

namespace tether {
namespace {

// The id in the first "program '...' (id N)" before `end` in a verdict.
bool ProgramIdIn(const std::string& line, size_t end, uint32_t* id) {
  size_t p = line.find("program '");
  if (p == std::string::npos || p > end) return false;
  size_t open = line.find("(id ", p);
  if (open == std::string::npos || open > end) return false;
  size_t close = line.find(')', open);
  if (close == std::string::npos) return false;
  return absl::SimpleAtoi(line.substr(open + 4, close - open - 4), id);
}

std::unique_ptr<ObjectGraph> Subgraph(const ObjectGraph& graph,
                                      const absl::flat_hash_set<NodeRef>& keep) {
  std::vector<GraphNode> nodes;
  for (GraphNode& n : graph.Nodes())
    if (keep.contains(n.ref)) nodes.push_back(std::move(n));
  std::vector<GraphEdge> edges;
  for (const GraphEdge& e : graph.Edges())
    if (keep.contains(e.from) && keep.contains(e.to)) edges.push_back(e);
  auto out = detail::NewStandaloneGraph();
  detail::PopulateGraph(*out, nodes, edges);
  return out;
}

// What losing every user reference of `ref` costs. The graph library
// answers it with WhatBreaksIfUnreferenced where it has it (issue 18's
// library side: WhatBreaks(object) there keeps fds held by other processes,
// which are a scan's holders); before that, WhatBreaks(object) removed them
// too. Once both sides are merged this can call it directly.
template <typename G>
auto UnreferencedBreaks(const G& graph, NodeRef ref, int)
    -> decltype(graph.WhatBreaksIfUnreferenced(ref)) {
  return graph.WhatBreaksIfUnreferenced(ref);
}
template <typename G>
std::vector<std::string> UnreferencedBreaks(const G& graph, NodeRef ref, long) {
  return graph.WhatBreaks(ref);
}

bool UnderDir(const std::string& path, std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return path == dir || absl::StartsWith(path, dir + "/");
}

}  // namespace

std::string InvisibleHolders(uint32_t prog_type) {
  switch (prog_type) {
    case BPF_PROG_TYPE_SOCKET_FILTER:
      return "socket filters (SO_ATTACH_BPF, SO_ATTACH_REUSEPORT_EBPF)";
    case BPF_PROG_TYPE_SK_REUSEPORT:
      return "reuseport groups (SO_ATTACH_REUSEPORT_EBPF)";
    case BPF_PROG_TYPE_SCHED_CLS:
      return "tc filters in other network namespaces";
    case BPF_PROG_TYPE_SCHED_ACT:
      return "tc actions (act_bpf)";
    case BPF_PROG_TYPE_XDP:
      return "XDP on interfaces of other network namespaces, and devmap or cpumap entries";
    case BPF_PROG_TYPE_KPROBE:
    case BPF_PROG_TYPE_TRACEPOINT:
    case BPF_PROG_TYPE_PERF_EVENT:
      return "perf events (PERF_EVENT_IOC_SET_BPF)";
    case BPF_PROG_TYPE_FLOW_DISSECTOR:
      return "flow dissectors of other network namespaces";
    case BPF_PROG_TYPE_LIRC_MODE2:
      return "lirc devices";
    case BPF_PROG_TYPE_LWT_IN:
    case BPF_PROG_TYPE_LWT_OUT:
    case BPF_PROG_TYPE_LWT_XMIT:
    case BPF_PROG_TYPE_LWT_SEG6LOCAL:
      return "routes (lwt encapsulation)";
    case BPF_PROG_TYPE_STRUCT_OPS:
      return "struct_ops maps";
    default:
      return "";
  }
}

std::vector<std::string> WhatBreaksInScan(const ObjectGraph& graph, NodeRef ref) {
  // A pin: removing that pin. An object: losing every user reference.
  std::vector<std::string> lines = ref.kind == NodeKind::kPin ? graph.WhatBreaks(ref)
                                                              : UnreferencedBreaks(graph, ref, 0);
  // First the programs: "will be freed" only if no invisible holder may
  // keep them.
  bool qualified = false;
  std::vector<bool> is_program(lines.size(), false);
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string& line = lines[i];
    size_t at = line.find(" will be freed");
    uint32_t id = 0;
    if (at == std::string::npos || !ProgramIdIn(line, at, &id)) continue;
    is_program[i] = true;
    auto n = graph.Node({NodeKind::kProgram, id});
    std::string invisible = n ? InvisibleHolders(n->type) : "";
    if (invisible.empty()) continue;
    line = absl::StrCat(line.substr(0, at),
                        " is freed only if nothing the scan cannot see holds it: it may also be "
                        "held by ",
                        invisible, ", which a scan cannot see");
    qualified = true;
  }
  if (!qualified) return lines;
  // Then what would go with those programs: the maps only they use.
  for (size_t i = 0; i < lines.size(); ++i) {
    size_t at = lines[i].find(" will be freed");
    if (is_program[i] || at == std::string::npos || ref.kind == NodeKind::kMap) continue;
    lines[i] = absl::StrCat(lines[i].substr(0, at),
                            " is freed with the programs above, if they are");
  }
  return lines;
}

std::unique_ptr<ObjectGraph> FilterGraph(const ObjectGraph& graph, const GraphFilter& filter) {
  std::vector<GraphNode> nodes = graph.Nodes();
  std::vector<GraphEdge> edges = graph.Edges();
  absl::flat_hash_set<NodeRef> pinned_under;
  if (!filter.pinned_under.empty()) {
    for (const GraphNode& n : nodes) {
      if (n.ref.kind != NodeKind::kPin || !UnderDir(n.name, filter.pinned_under)) continue;
      pinned_under.insert(n.ref);
      for (const GraphEdge& e : edges)
        if (e.from == n.ref) pinned_under.insert(e.to);
    }
  }
  std::string pid_prefix = filter.pid ? absl::StrCat("pid ", *filter.pid, " ") : "";
  absl::flat_hash_set<NodeRef> keep;
  for (const GraphNode& n : nodes) {
    if (filter.pid) {
      bool held = false;
      for (const std::string& h : n.holders) held |= absl::StartsWith(h, pid_prefix);
      if (!held) continue;
    }
    if (!filter.name.empty() && !absl::StrContains(n.name, filter.name)) continue;
    if (!filter.pinned_under.empty() && !pinned_under.contains(n.ref)) continue;
    if (filter.hazards_only && n.notes.empty() && !n.cleared_by_kernel) continue;
    keep.insert(n.ref);
  }
  // Each match with its neighbours: what holds it and what it holds.
  absl::flat_hash_set<NodeRef> shown = keep;
  for (const GraphEdge& e : edges) {
    if (keep.contains(e.from)) shown.insert(e.to);
    if (keep.contains(e.to)) shown.insert(e.from);
  }
  return Subgraph(graph, shown);
}

CollapsedGraph CollapseUnreachable(const ObjectGraph& graph) {
  absl::flat_hash_set<NodeRef> reached;
  for (const GraphEdge& e : graph.Edges()) reached.insert(e.to);
  absl::flat_hash_set<NodeRef> keep;
  std::vector<std::string> ids;
  for (const GraphNode& n : graph.Nodes()) {
    bool unreachable = n.ref.kind == NodeKind::kMap && n.holders.empty() && n.handles == 0 &&
                       !n.kept_alive && !reached.contains(n.ref);
    if (unreachable) {
      ids.push_back(absl::StrCat(n.ref.id));
    } else {
      keep.insert(n.ref);
    }
  }
  CollapsedGraph out;
  out.graph = Subgraph(graph, keep);
  if (!ids.empty()) {
    size_t count = ids.size();
    if (ids.size() > 20) {
      ids.resize(20);
      ids.push_back("...");
    }
    out.summary = absl::StrCat(
        count, " unreachable map(s) (ids ", absl::StrJoin(ids, ", "),
        "): no fd, pin, program or outer map holds them, so a program array among them is "
        "cleared; a kernel-internal reference or a kernel leak keeps them. They are not opened "
        "(see docs/cli.md).");
  }
  return out;
}

}  // namespace tether
