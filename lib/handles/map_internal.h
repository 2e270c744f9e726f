// What the map handle shares with the map kinds built on it (lib/maps).
// Internal.
#ifndef TETHER_LIB_HANDLES_MAP_INTERNAL_H_
#define TETHER_LIB_HANDLES_MAP_INTERNAL_H_

#include "absl/status/status.h"
#include "tether/map.h"

namespace tether::detail {

// Tells the graph the entries that a program array adopted from elsewhere
// (a pin, an id) already has: whoever filled it did not tell this process.
absl::Status ReadTailCallsIntoGraph(const Map& array);

// A struct_ops map registered by a map update: its last handle
// unregisters it (BPF_MAP_DELETE_ELEM), unless it is pinned. The graph
// shows the registration as a hook on the map.
void MarkStructOpsRegistered(const Map& map);
// What MapObject's destructor does for such a map.
void ReleaseStructOpsRegistration(int fd, uint32_t map_id);
// Unregisters now; the last handle then has nothing left to do.
absl::Status UnregisterStructOpsMap(const Map& map);

}  // namespace tether::detail

#endif  // TETHER_LIB_HANDLES_MAP_INTERNAL_H_
