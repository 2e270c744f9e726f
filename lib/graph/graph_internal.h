// How handles, arrays, pins and links report to the object graph. Internal.
//
// The graph sits below the handles and knows none of their types. Handles
// tell it plain facts (kernel ids, names, types, fds as ints, edges); where
// a rule of LIFECYCLE.md asks for something to be done, the graph answers
// with a verdict and the handle applies it (keeps its fd, pins it, delivers
// the warning, refuses the close).
#ifndef TETHER_LIB_GRAPH_INTERNAL_H_
#define TETHER_LIB_GRAPH_INTERNAL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/optional.h"
#include "tether/graph.h"
#include "tether/lifetime.h"

namespace tether::detail {

void GraphOnMapCreated(uint32_t map_id, const std::string& name, uint32_t map_type);

// What a map's last handle does with its fd as it goes.
struct MapReleaseVerdict {
  enum class Action {
    kClose,      // close the fd as usual
    kKeepAlive,  // the graph holds the fd now (KeepAlive, Refuse, or a deferred
                 // verdict): do not close it
    kPin,        // pin the fd at pin_path, then report with GraphOnPolicyPin
  };
  Action action = Action::kClose;
  std::string pin_path;
  // For DeliverDiagnostic, once the verdict is applied.
  absl::optional<Diagnostic> diagnostic;
  // Refuse with SetAbortOnRefusal(true): abort after delivering.
  bool abort = false;
};

// Delivers a verdict's diagnostic, then aborts if it says so.
void DeliverVerdict(const MapReleaseVerdict& verdict);

// Called by the map's last handle while `fd` is still open, with the map's
// own policy (kDefault: the graph's). Applies the last-user-reference rule
// and decides the lifetime policy when this is an orphaned array's last
// user reference. `forced`: Map::Close(force = true) asked for it, so the
// verdict is not deferred.
MapReleaseVerdict GraphOnMapReleased(uint32_t map_id, int fd, LifetimePolicy map_policy,
                                     bool forced = false);
// Follows a kPin verdict: `pinned` is how pinning `fd` at its pin_path
// went. On a failure the verdict is kKeepAlive, the only other way to keep
// the tail calls working.
MapReleaseVerdict GraphOnPolicyPin(uint32_t map_id, int fd, MapReleaseVerdict pin_verdict,
                                   const absl::Status& pinned);
// FailedPrecondition if dropping the last handle of map `map_id` would
// orphan a program array that programs still tail-call through, unless
// `force` (which the Refuse policy does not honour).
absl::Status GraphCheckLastRelease(uint32_t map_id, LifetimePolicy map_policy, bool force);

// Hands a diagnostic to the process's sink (stderr by default).
void DeliverDiagnostic(const Diagnostic& diagnostic);

void GraphOnProgramCreated(uint32_t prog_id, const std::string& name, uint32_t prog_type,
                           const std::vector<uint32_t>& used_map_ids);
void GraphOnProgramReleased(uint32_t prog_id);

void GraphSetTailCall(uint32_t array_id, uint32_t slot, uint32_t prog_id,
                      const std::string& prog_name, uint32_t prog_type);
void GraphDeleteTailCall(uint32_t array_id, uint32_t slot);
void GraphSetInnerMap(uint32_t outer_id, uint32_t slot, uint32_t inner_id);
void GraphDeleteInnerMap(uint32_t outer_id, uint32_t slot);
// For adopted arrays: records an entry found in the kernel (program id).
void GraphNoteTailCallById(uint32_t array_id, uint32_t slot, uint32_t prog_id);

void GraphAddPin(NodeRef target, const std::string& path);
void GraphRemovePin(const std::string& path);
std::string GraphPinPathOf(NodeRef target);

void GraphAddLegacyHook(NodeRef prog, const std::string& hook);
void GraphRemoveLegacyHook(NodeRef prog, const std::string& hook);

void GraphOnLinkCreated(uint32_t link_id, uint32_t link_type, uint32_t prog_id,
                        const std::string& description);
void GraphOnLinkReleased(uint32_t link_id);
// LINK_UPDATE swapped the link's program: the link -> program edge follows.
// (LINK_DETACH does not call this: a detached link still holds its program.)
void GraphOnLinkProgramChanged(uint32_t link_id, uint32_t prog_id);
// A struct_ops link holds a map, not a program: created, or updated to
// another map.
void GraphOnLinkMapChanged(uint32_t link_id, uint32_t map_id);
// A struct_ops map's member `member_index` holds program `prog_id`.
void GraphSetStructOpsMember(uint32_t map_id, uint32_t member_index, uint32_t prog_id);

}  // namespace tether::detail

#endif  // TETHER_LIB_GRAPH_INTERNAL_H_
