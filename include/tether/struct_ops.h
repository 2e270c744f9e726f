// struct_ops: kernel structs of function pointers (tcp_congestion_ops,
// sched_ext_ops, ...) implemented by BPF programs.
//
// A collection loads an object's `.struct_ops` and `.struct_ops.link`
// variables as BPF_MAP_TYPE_STRUCT_OPS maps and registers them itself:
//  - `.struct_ops`: registered by the load's map update. The kernel keeps
//    that registration until it is deleted, even after every fd is gone,
//    so tether deletes it when the map's last tether handle goes (unless
//    the map is pinned; then UnregisterStructOps ends it).
//  - `.struct_ops.link` (6.4+, map flag BPF_F_LINK): registered through a
//    struct_ops link, Collection::link(map name); the kernel unregisters
//    when the link's last fd and pin go. UpdateStructOpsLink swaps the
//    map a link registers without a moment unregistered.
// docs/lifecycle.md, "struct_ops", has the lifetimes.
#ifndef TETHER_STRUCT_OPS_H_
#define TETHER_STRUCT_OPS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tether/link.h"
#include "tether/map.h"

namespace tether {

// Registers a BPF_F_LINK struct_ops map whose value is set (the
// collection sets it) through a new struct_ops link (BPF_LINK_CREATE,
// attach type BPF_STRUCT_OPS). A collection does this for its
// `.struct_ops.link` maps; call it again after the link is gone.
absl::StatusOr<Link> AttachStructOps(const Map& map);

// Makes `link` register `new_map` instead (BPF_LINK_UPDATE with a map):
// both must implement the same kernel struct, and new_map must be a
// BPF_F_LINK map with its value set. With `expected_old`, only if the link
// still registers that map (BPF_F_REPLACE); otherwise FailedPrecondition.
absl::Status UpdateStructOpsLink(const Link& link, const Map& new_map,
                                 const Map* expected_old = nullptr);

// Unregisters a `.struct_ops` map now (BPF_MAP_DELETE_ELEM), instead of
// when its last handle goes. Links are ended by dropping them.
absl::Status UnregisterStructOps(const Map& map);

}  // namespace tether

#endif  // TETHER_STRUCT_OPS_H_
