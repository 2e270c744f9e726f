// Hazards and OpenMetrics text for an object graph: the counts a fleet
// watches (node_exporter's textfile collector reads the output as is).
//
//   auto g = tether::ScanSystem();
//   std::string text = tether::ToOpenMetrics(**g);  // ends in "# EOF\n"
//
// Metric families, all gauges (docs/cli.md lists them with examples):
//   tether_objects{kind}   nodes by kind: map, program, link, pin
//   tether_edges{kind}     references by kind: tail_call, uses_map, ...
//   tether_cycles          program -> array -> program cycles still closed
//   tether_hazards{kind}   nodes with each HazardKind (every kind, 0 included)
// and one counter family:
//   tether_tail_call_misses_total{program,program_id,site,function,insn,
//     file,line,array,array_id}   misses of each bpf_tail_call site of the
//     programs loaded with tether's miss counters (GraphNode::tail_call_sites;
//     the kernel itself counts no misses, so programs loaded without the
//     counters have no samples)
#ifndef TETHER_GRAPH_METRICS_H_
#define TETHER_GRAPH_METRICS_H_

#include <string>
#include <vector>

#include "tether/graph.h"

namespace tether {

// A lifetime hazard: a way an object can stop working although nothing
// in the graph looks broken yet. Add a kind here, to kAllHazardKinds and
// to HazardKindName; FindHazards and the metrics pick it up.
enum class HazardKind : uint8_t {
  // A program array that programs use but no fd or pin holds: the kernel
  // has cleared (or will clear) it, and every tail call through it misses.
  kKernelOnlyProgramArray,
  // A used program array whose only holders are one process's fds and no
  // pin: when that process exits, the kernel clears it.
  kSingleProcessProgramArray,
  // A program held only by a legacy hook (no link, fd or pin): nothing can
  // pin it, and it stays attached until someone detaches it.
  kOrphanedLegacyHook,
  // A map nothing visible holds (no fd, pin, program, link or outer map).
  kUnheldMap,
};
// Every kind, in the order the metrics list them.
inline constexpr HazardKind kAllHazardKinds[] = {
    HazardKind::kKernelOnlyProgramArray, HazardKind::kSingleProcessProgramArray,
    HazardKind::kOrphanedLegacyHook, HazardKind::kUnheldMap};
// The metric label: "kernel_only_program_array", ...
const char* HazardKindName(HazardKind kind);

// One node's hazard.
struct Hazard {
  NodeRef node;     // the object at risk
  HazardKind kind;  // how
};

// Classifies every node from its flags, holders and in-edges. A node may
// carry no hazard or one; the order follows `nodes`.
std::vector<Hazard> FindHazards(const std::vector<GraphNode>& nodes,
                                const std::vector<GraphEdge>& edges);
// The same over a graph's snapshot (Nodes() and Edges()): graph() for this
// process's objects, ScanSystem()'s graph for the whole machine.
std::vector<Hazard> FindHazards(const ObjectGraph& graph);

// The graph's counts as OpenMetrics text (version 1.0.0), ending in "# EOF".
std::string ToOpenMetrics(const ObjectGraph& graph);

}  // namespace tether

#endif  // TETHER_GRAPH_METRICS_H_
