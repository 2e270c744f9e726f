// How handles, arrays, pins and links report to the object graph. Internal.
#ifndef TETHER_LIB_GRAPH_INTERNAL_H_
#define TETHER_LIB_GRAPH_INTERNAL_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "tether/graph.h"
#include "tether/map.h"
#include "tether/program.h"

namespace tether::detail {

void GraphOnMapCreated(const MapObject* map);
// Called by ~MapObject while its fd is still open. Applies the lifetime
// policy when this is the array's last user reference; KeepAlive takes the
// fd (the object's fd is then -1).
void GraphOnMapReleased(MapObject* map);
// FailedPrecondition if dropping `map` would orphan a program array that
// programs still tail-call through.
absl::Status GraphCheckLastRelease(const MapObject* map);

void GraphOnProgramCreated(const ProgramObject* prog);
void GraphOnProgramReleased(const ProgramObject* prog);

void GraphSetTailCall(const MapObject* array, uint32_t slot, const ProgramObject* prog);
void GraphDeleteTailCall(const MapObject* array, uint32_t slot);
void GraphSetInnerMap(const MapObject* outer, uint32_t slot, uint32_t inner_id);
void GraphDeleteInnerMap(const MapObject* outer, uint32_t slot);
// For adopted arrays: records an entry found in the kernel (program id).
void GraphNoteTailCallById(const MapObject* array, uint32_t slot, uint32_t prog_id);

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

}  // namespace tether::detail

#endif  // TETHER_LIB_GRAPH_INTERNAL_H_
