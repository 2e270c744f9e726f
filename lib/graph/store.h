// The graph's nodes, edges and ids, and the lock that guards them. Internal.
#ifndef TETHER_LIB_GRAPH_STORE_H_
#define TETHER_LIB_GRAPH_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/functional/function_ref.h"
#include "base/mutex_internal.h"
#include "tether/graph.h"
#include "tether/lifetime.h"

namespace tether::detail {

bool IsProgArrayType(uint32_t type);

struct NodeData;

// One end of an edge. Every edge is kept twice, in `from.out` (peer: the
// target) and in `to.in` (peer: the source), and each copy knows where the
// other sits (`twin`), so removing an edge is constant time: a program
// array with a hundred users no longer scans its incoming list once per
// user as the users go. The peer is the node itself, not its id: nodes
// stay put in the node_hash_map while others come and go, and a walk
// along edges needs no hash lookup per step. 16 bytes a copy (24 with
// both ids spelled out, as before).
struct Edge {
  NodeData* peer = nullptr;
  uint32_t slot = 0;   // array index (kTailCall, kInnerMap), member index (kStructOps)
  uint32_t twin : 24;  // index of the mirror copy in peer's other list
  EdgeKind kind : 8;
  NodeRef peer_ref() const;
};
static_assert(sizeof(Edge) == 16, "an edge copy is a pointer and two words");
// How many edges one node may have in each direction: `twin` is 24 bits.
// A kernel object with sixteen million references costs gigabytes in the
// kernel long before that.
inline constexpr uint32_t kMaxEdgesPerNode = (1u << 24) - 1;

// What few nodes have: legacy hooks, and what system scans record.
struct NodeExtra {
  std::vector<std::string> legacy_hooks;
  std::vector<std::string> holders;
  std::vector<std::string> notes;
  std::vector<TailCallSite> tail_call_sites;
};

// A node as the graph keeps it: GraphNode's fields, less the lists most
// nodes leave empty (NodeExtra, allocated on first use) and the flags
// derived from the fds. 144 bytes a node with its key in the table; with
// a whole GraphNode in each it was 240. GraphNode is what queries hand out
// (ToGraphNode).
struct NodeData {
  NodeRef ref;
  uint32_t type = 0;     // map or program type; link type for links
  uint32_t handles = 0;  // live tether objects in this process owning an fd on it
  int kept_fd = -1;      // KeepAlive's fd, closed by ReleaseKept
  // A deferred verdict's fd (GraphNode::deferred) and the policy that
  // applies once it is settled (kWarn or kRefuse).
  int deferred_fd = -1;
  LifetimePolicy deferred_policy = LifetimePolicy::kWarn;
  bool cleared_by_kernel = false;
  std::string name;
  std::vector<Edge> out;
  std::vector<Edge> in;
  // The node's place in the incremental order (order.h), and a scratch
  // mark for its searches.
  uint64_t order = 0;
  uint64_t mark = 0;
  std::unique_ptr<NodeExtra> extra;

  NodeData() = default;
  NodeData(NodeData&&) = default;
  NodeData& operator=(NodeData&&) = default;
  // Deep: what-breaks works on a copy of the graph.
  NodeData(const NodeData& other);
  NodeData& operator=(const NodeData& other);

  const std::vector<std::string>& legacy_hooks() const;
  const std::vector<std::string>& holders() const;
  // Inline: asked of every node a liveness walk or a collection visits.
  bool has_legacy_hooks() const { return extra && !extra->legacy_hooks.empty(); }
  bool has_holders() const { return extra && !extra->holders.empty(); }
  NodeExtra& MutableExtra();
  GraphNode ToGraphNode() const;
  // Takes a GraphNode's fields (a standalone graph filled from a snapshot).
  void Assign(const GraphNode& n);
};

inline NodeRef Edge::peer_ref() const { return peer->ref; }

class GraphState {
 public:
  detail::Mutex mu;
  // Node-based: a NodeData stays where it is while others come and go, so
  // an event can hold the nodes it works on across Ensure calls instead of
  // looking them up again, and growing the table moves pointers, not
  // 200-byte nodes (nor keeps two arrays of them at once).
  absl::node_hash_map<NodeRef, NodeData> nodes ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<std::string, uint32_t> pin_ids ABSL_GUARDED_BY(mu);
  uint32_t next_pin_id ABSL_GUARDED_BY(mu) = 1;
  std::vector<Cycle> cycles ABSL_GUARDED_BY(mu);
  // How many of `cycles` have each CycleHash: a new cycle is compared with
  // the list only when its hash is there already (AddCycle ran once per
  // recorded cycle, comparing it with every other).
  absl::flat_hash_map<size_t, uint32_t> cycle_hashes ABSL_GUARDED_BY(mu);
  LifetimePolicy default_policy ABSL_GUARDED_BY(mu) = LifetimePolicy::kWarn;
  std::string pin_dir ABSL_GUARDED_BY(mu) = "/sys/fs/bpf/tether";
  size_t edge_count ABSL_GUARDED_BY(mu) = 0;
  size_t deferred_count ABSL_GUARDED_BY(mu) = 0;  // nodes with a deferred_fd
  // The incremental order (order.h): valid while every ordered edge goes
  // up the order; stale when it is invalid and edges went since.
  uint64_t next_order ABSL_GUARDED_BY(mu) = 1;
  uint64_t mark_epoch ABSL_GUARDED_BY(mu) = 0;
  bool order_valid ABSL_GUARDED_BY(mu) = true;
  bool order_stale ABSL_GUARDED_BY(mu) = false;
  // false: every new edge that may close a cycle is searched from, as
  // before the order existed (kept for benchmarks and tests to compare).
  bool incremental_cycles ABSL_GUARDED_BY(mu) = true;
#ifdef NDEBUG
  bool abort_on_refusal ABSL_GUARDED_BY(mu) = false;
#else
  bool abort_on_refusal ABSL_GUARDED_BY(mu) = true;
#endif

  detail::Mutex sink_mu;
  DiagnosticSink sink ABSL_GUARDED_BY(sink_mu);
};

size_t CycleHash(const Cycle& c);
// A cycle leaves `cycles`: its hash's count goes down.
void ForgetCycleHash(GraphState& s, const Cycle& c);

// The process-wide graph's state.
GraphState& State();

// The node and edge tables. Only a LockedStore makes one: every use runs
// with the graph's lock held.
class Store {
 public:
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  GraphState& state() { return s_; }
  const GraphState& state() const { return s_; }

  NodeData* Find(NodeRef ref);
  const NodeData* Find(NodeRef ref) const;
  // The node, created empty if the graph has none yet.
  NodeData& Ensure(NodeRef ref);

  void AddEdge(NodeRef from, NodeRef to, EdgeKind kind, uint32_t slot);
  // The same for nodes already at hand (from Ensure or Find).
  void AddEdge(NodeData& from, NodeData& to, EdgeKind kind, uint32_t slot);
  // Removes edges out of `from` that match (each seen as a copy in
  // from.out: peer is the target); returns the targets touched.
  std::vector<NodeRef> RemoveEdges(NodeRef from, absl::FunctionRef<bool(const Edge&)> match);
  std::vector<NodeRef> RemoveEdges(NodeData& from, absl::FunctionRef<bool(const Edge&)> match);
  // Makes the nodes a copy of `other`'s, each edge pointing at the copies.
  void CopyNodesFrom(const GraphState& other);
  // Removes the `kind` entry at `slot` of array `from` (a tail call or an
  // inner map); returns the target it held, if any.
  std::vector<NodeRef> RemoveEntry(NodeRef from, EdgeKind kind, uint32_t slot);

  // The pin node for `path`: pins have no kernel id, so the graph numbers
  // them, once per path.
  NodeRef PinNode(const std::string& path);

  // Drops `ref` when nothing holds it any more, and then what only it held.
  void Collect(NodeRef ref);
  // The same for each of `refs`, with one pass over the cycle list for all.
  void Collect(const std::vector<NodeRef>& refs);

 protected:
  explicit Store(GraphState& s) : s_(s) {}

 private:
  // Drops each node of `work` (a stack) that nothing holds, pushing the
  // targets of its edges; appends the ones cycles may run through to `gone`.
  void CollectWork(std::vector<NodeRef>* work, std::vector<NodeRef>* gone);
  // Takes edge from.out[i] out of both lists.
  void Unlink(NodeData& from, size_t i);
  void DropCyclesThrough(const std::vector<NodeRef>& gone);

  GraphState& s_;
};

// The store, with the graph's lock held for as long as this lives. The
// Store base only binds the state; it reads nothing before lock_ is taken.
class ABSL_SCOPED_LOCKABLE LockedStore : public Store {
 public:
  explicit LockedStore(GraphState& s) ABSL_EXCLUSIVE_LOCK_FUNCTION(s.mu)
      : Store(s), lock_(&s.mu) {}
  ~LockedStore() ABSL_UNLOCK_FUNCTION() = default;

 private:
  detail::MutexLock lock_;
};

}  // namespace tether::detail

#endif  // TETHER_LIB_GRAPH_STORE_H_
