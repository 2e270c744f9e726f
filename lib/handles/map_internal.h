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

}  // namespace tether::detail

#endif  // TETHER_LIB_HANDLES_MAP_INTERNAL_H_
