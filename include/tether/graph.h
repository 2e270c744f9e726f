// The object graph: what keeps each BPF object alive, and what breaks when
// a reference goes.
//
// One graph per process. Its nodes are the maps, programs, links and pins
// that tether owns or knows of (a program id found in a program array is a
// node even if no handle owns it). Its edges are the kernel's references:
//   program array -> program   (an entry; the array holds the program)
//   program -> map             (the program uses the map)
//   link -> program            (the link holds the program)
//   pin -> object              (a bpffs file holds the object)
//   outer map -> inner map     (a map-in-map entry holds the inner map)
// Copying a handle never touches the graph; creating and destroying
// objects, setting entries and pinning do. See docs/lifecycle.md.
#ifndef TETHER_GRAPH_H_
#define TETHER_GRAPH_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/types/optional.h"
#include "tether/lifetime.h"
#include "tether/tail_call_site.h"

namespace tether {

class Map;
class Program;
class Link;
class ObjectGraph;
struct GraphNode;
struct GraphEdge;

namespace detail {
class GraphState;
std::unique_ptr<ObjectGraph> NewStandaloneGraph();
// Fills a standalone graph (from NewStandaloneGraph) and records the cycles
// its edges close.
void PopulateGraph(ObjectGraph& graph, const std::vector<GraphNode>& nodes,
                   const std::vector<GraphEdge>& edges);
}  // namespace detail

enum class NodeKind : uint8_t { kMap, kProgram, kLink, kPin };
const char* NodeKindName(NodeKind kind);

// Kernel objects are keyed by their kernel id; pins by a graph-assigned id.
struct NodeRef {
  NodeKind kind = NodeKind::kMap;
  uint32_t id = 0;
  friend bool operator==(const NodeRef& a, const NodeRef& b) {
    return a.kind == b.kind && a.id == b.id;
  }
  friend bool operator!=(const NodeRef& a, const NodeRef& b) { return !(a == b); }
  template <typename H>
  friend H AbslHashValue(H h, const NodeRef& r) {
    return H::combine(std::move(h), r.kind, r.id);
  }
};

// kStructOps: a struct_ops map holds the program in one of its function
// pointers (slot: the member's index in the kernel's struct).
enum class EdgeKind : uint8_t { kTailCall, kUsesMap, kLinkHolds, kPinHolds, kInnerMap, kStructOps };
const char* EdgeKindName(EdgeKind kind);

struct GraphNode {
  NodeRef ref;
  std::string name;      // object name, or the path for pins
  uint32_t type = 0;     // map or program type; link type for links
  uint32_t handles = 0;  // live tether objects in this process owning an fd on it
  bool kept_alive = false;  // KeepAlive (or Refuse) holds an fd until ReleaseKept()
  // The last handle of this program array went while the programs that
  // tail-call through it lived only on this process's handles: the graph
  // holds its fd until those programs die or one of them gains a holder
  // of its own (see docs/lifecycle.md, "Deferred verdicts").
  bool deferred = false;
  // A program array whose user references all went: the kernel cleared it.
  bool cleared_by_kernel = false;
  std::vector<std::string> legacy_hooks;  // attachments without a link
  // Set by system-wide scans (ScanSystem): open fds in other processes,
  // "pid 812 (agent) fd 7", and hazards found, one sentence each.
  std::vector<std::string> holders;
  std::vector<std::string> notes;
  // Programs loaded with tail-call miss counters: each bpf_tail_call site
  // and its misses, as system scans read them (ScanSystem). The writers
  // show the counts on the program -> program array edges.
  std::vector<TailCallSite> tail_call_sites;
  bool is_program_array() const;
};

struct GraphEdge {
  NodeRef from;
  NodeRef to;
  EdgeKind kind;
  uint32_t slot = 0;  // array index for kTailCall and kInnerMap; member index for kStructOps
};

// Program -> array -> program -> ... -> the first program.
struct Cycle {
  std::vector<NodeRef> nodes;  // alternating programs and program arrays
  std::string ToString() const;
};

// Why an object is alive: each holder, with the path from it.
struct Explanation {
  NodeRef subject;
  bool known = false;  // false: the graph has no such node
  bool alive = false;
  std::vector<std::string> holders;  // one line per reference, outermost last
  std::string ToString() const;
};

class ObjectGraph {
 public:
  virtual ~ObjectGraph() = default;

  // --- policies ----------------------------------------------------------------
  void SetDefaultPolicy(LifetimePolicy policy);
  LifetimePolicy default_policy() const;
  // Where the Pin policy pins orphaned arrays (default /sys/fs/bpf/tether).
  void SetPinDirectory(const std::string& dir);
  std::string pin_directory() const;
  // Closes every fd kept by KeepAlive (or Refuse). Returns how many it
  // closed. A kept array that live programs still tail-call through gets
  // the same kProgramArrayOrphaned warning as any other last reference.
  size_t ReleaseKept();
  // Settles every deferred verdict now (see GraphNode::deferred): arrays
  // whose programs still live get their policy (Warn: the warning, then
  // the fd closes; Refuse: the refusal), the others close silently.
  // Returns how many arrays it settled.
  size_t SettleDeferred();
  // Whether LifetimePolicy::kRefuse aborts the process after its
  // diagnostic. Default: true in builds without NDEBUG, false otherwise.
  void SetAbortOnRefusal(bool abort_on_refusal);
  bool abort_on_refusal() const;

  // --- queries (consistent snapshots) -----------------------------------------
  std::vector<GraphNode> Nodes() const;
  std::vector<GraphEdge> Edges() const;
  absl::optional<GraphNode> Node(NodeRef ref) const;
  size_t node_count() const;
  size_t edge_count() const;
  // Every program -> array -> program cycle that is still closed.
  std::vector<Cycle> Cycles() const;

  Explanation Explain(NodeRef ref) const;
  Explanation Explain(const Map& map) const;
  Explanation Explain(const Program& program) const;
  // What stops working if `ref` stops being a reference. The verdict is
  // computed on a copy of the graph with that reference removed and the
  // kernel's rule played out (an array that loses its last user reference
  // is cleared, what nothing holds any more is freed):
  //  - a pin node: that pin is removed (rm of the file);
  //  - an object: this process's references to it go (its tether handles,
  //    and a KeepAlive or deferred fd); its pins and fds in other
  //    processes stay.
  // An empty or unknown ref answers that it is not in the graph.
  std::vector<std::string> WhatBreaks(NodeRef ref) const;
  std::vector<std::string> WhatBreaks(const Map& map) const;
  std::vector<std::string> WhatBreaks(const Program& program) const;
  // What stops working if `ref` lost every user reference: handles, kept
  // fds, every pin, and fds held by other processes (ScanSystem's
  // holders). For a system scan, that is what its last reference costs.
  std::vector<std::string> WhatBreaksIfUnreferenced(NodeRef ref) const;

  std::string ToText() const;
  std::string ToDot() const;
  std::string ToJson() const;

 protected:
  explicit ObjectGraph(detail::GraphState* state);

 private:
  friend ObjectGraph& graph();
  friend std::unique_ptr<ObjectGraph> detail::NewStandaloneGraph();
  friend void detail::PopulateGraph(ObjectGraph&, const std::vector<GraphNode>&,
                                    const std::vector<GraphEdge>&);
  detail::GraphState* state_;
};

// The process-wide graph.
ObjectGraph& graph();

NodeRef NodeOf(const Map& map);
NodeRef NodeOf(const Program& program);

}  // namespace tether

#endif  // TETHER_GRAPH_H_
