// The miss counts of this process's programs, for the process graph's
// writers. The loader registers each program's tail-call sites and the id of
// its counter map (plain facts: ids and site records, no handles); the
// writers add the current counts to program nodes that have none (a system
// scan's nodes already carry theirs). Internal.
#ifndef TETHER_LIB_GRAPH_TAIL_CALL_COUNTS_H_
#define TETHER_LIB_GRAPH_TAIL_CALL_COUNTS_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "tether/graph.h"
#include "tether/tail_call_site.h"

namespace tether::detail {

// The programs of one load count their tail-call misses in map
// `counter_map_id`, at the slots of their sites (program id -> sites).
// Forgets programs the kernel has freed since the last call.
void GraphRegisterTailCallSites(uint32_t counter_map_id,
                                std::vector<std::pair<uint32_t, std::vector<TailCallSite>>> programs);

// Fills GraphNode::tail_call_sites, with the counts read now, of the
// registered program nodes that have none. The counter map is opened by id
// (a plain array, never a program array: safe); a map that is gone leaves
// the node as it was.
void AddTailCallCounts(std::vector<GraphNode>* nodes);

}  // namespace tether::detail

#endif  // TETHER_LIB_GRAPH_TAIL_CALL_COUNTS_H_
