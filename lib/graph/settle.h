// Deferred verdicts (docs/lifecycle.md, "Deferred verdicts"): when a
// program array's last handle goes while the programs that tail-call
// through it live only on this process's handles, the graph holds the
// array's fd and settles the verdict at a later graph event. Internal.
#ifndef TETHER_LIB_GRAPH_SETTLE_H_
#define TETHER_LIB_GRAPH_SETTLE_H_

#include <vector>

#include "graph/store.h"
#include "tether/lifetime.h"

namespace tether::detail {

// What settling decided, carried out once the graph's lock is released:
// diagnostics go to the sink and fds are closed outside the lock.
struct Aftermath {
  std::vector<int> close_fds;
  std::vector<Diagnostic> diagnostics;
  bool abort = false;
  size_t settled = 0;
  // Delivers, closes, and aborts if a refusal asked for it.
  void Run();
};

// Re-checks every deferred array: one whose tail-calling programs are all
// gone closes silently; one whose programs gained a holder beyond this
// process's handles (or every one, with `force`) gets its policy.
void SettleDeferred(Store& store, bool force, Aftermath* out);

// The verdict for an array whose last user reference goes now with live
// users, under `policy` kWarn or kRefuse. Fills `d`; returns whether the
// graph keeps the fd (Refuse) rather than closing it.
bool ReportOrphan(Store& store, NodeData& array, const std::vector<NodeRef>& users,
                  LifetimePolicy policy, bool deferred, Diagnostic* d);

// The verdict for map `n`, whose last tether handle just went (handles is
// 0) while `fd` is still open: defer it, apply the policy, or just close.
struct MapReleaseVerdict;
MapReleaseVerdict DecideRelease(Store& store, NodeData& n, int fd, LifetimePolicy map_policy,
                                bool forced);

}  // namespace tether::detail

#endif  // TETHER_LIB_GRAPH_SETTLE_H_
