// The object graph of the whole live system, built from kernel ids rather
// than from this process's handles: every program with the maps it uses,
// every program array with its entries, every map-in-map with its inner
// maps, every link with its program and target, every pin under bpffs,
// every process holding an fd on any of them, and the attachments without
// a link that the kernel can be asked about (cgroups, XDP, tc, the flow
// dissector, sockmap programs).
//
// The result is an ObjectGraph of its own, so Explain, WhatBreaks, Cycles
// and the text / DOT / JSON exports work on it as on graph().
//
// What a scan cannot see: socket filters (SO_ATTACH_BPF), reuseport
// groups, perf-event attachments, lirc, lwt routes, tc actions, network
// hooks in other network namespaces, and fds passed over unix sockets. InvisibleHolders() names them per program
// type, and WhatBreaksInScan() says so instead of "will be freed".
#ifndef TETHER_SYSTEM_GRAPH_H_
#define TETHER_SYSTEM_GRAPH_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/optional.h"
#include "tether/graph.h"

namespace tether {

struct SystemScanOptions {
  // Walked recursively for pins. Missing or not bpffs: no pins.
  std::string pin_root = "/sys/fs/bpf";
  // List the fds of other processes as holders (/proc/*/fdinfo). The
  // scanning process itself is left out: its fds exist only for the scan.
  // The fdinfo is read either way: it says which program arrays someone
  // holds, and only those are opened by id (see docs/cli.md).
  bool fd_holders = true;
  // Ask the kernel for attachments without a link: BPF_PROG_QUERY on every
  // cgroup v2 directory, on the network namespace (flow dissector) and on
  // sockmaps; rtnetlink for XDP and tc in this network namespace.
  bool hooks = true;
  // Where cgroup v2 is mounted; empty: found in /proc/self/mounts.
  std::string cgroup_root;
  // At most this many cgroup directories are queried.
  uint32_t max_cgroups = 4096;
};

struct SystemSnapshot {
  std::unique_ptr<ObjectGraph> graph;
  // What the scan could not ask about, one sentence each.
  std::vector<std::string> limits;
};

// Needs root (CAP_SYS_ADMIN) to open objects by id.
absl::StatusOr<SystemSnapshot> ScanSystemSnapshot(const SystemScanOptions& options = {});
absl::StatusOr<std::unique_ptr<ObjectGraph>> ScanSystem(const SystemScanOptions& options = {});

// Holders of a program of this type that no scan can see, in words
// ("socket filters (SO_ATTACH_BPF)"); empty if the scan sees every kind.
std::string InvisibleHolders(uint32_t prog_type);

// What breaks in a scanned graph if `ref` loses its user references: for
// a pin, that pin is removed; for an object, every fd and pin on it goes.
// "Will be freed" is only said of a program that nothing invisible can
// hold; otherwise the line says what may also hold it, which a scan
// cannot see.
std::vector<std::string> WhatBreaksInScan(const ObjectGraph& graph, NodeRef ref);

// Which part of a scanned graph to show. Empty fields do not filter; set
// fields all have to match. A matching node is shown with its neighbours.
struct GraphFilter {
  absl::optional<int> pid;   // objects an fd of this process holds
  std::string name;          // objects whose name (or pin path) contains this
  std::string pinned_under;  // objects pinned under this directory, and the pins
  bool hazards_only = false; // objects with a hazard (!!)
  bool empty() const { return !pid && name.empty() && pinned_under.empty() && !hazards_only; }
};
std::unique_ptr<ObjectGraph> FilterGraph(const ObjectGraph& graph, const GraphFilter& filter);

// Maps that nothing can reach any more (no fd, no pin, no program or outer
// map uses them; leaked or cleared program arrays look like this) taken out
// of the graph and summarised in one line ("" if there are none).
struct CollapsedGraph {
  std::unique_ptr<ObjectGraph> graph;
  std::string summary;
};
CollapsedGraph CollapseUnreachable(const ObjectGraph& graph);

}  // namespace tether

#endif  // TETHER_SYSTEM_GRAPH_H_
