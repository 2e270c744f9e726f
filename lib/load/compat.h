// Whether an existing map can stand in for a map spec. Internal.
#ifndef TETHER_LIB_LOAD_COMPAT_H_
#define TETHER_LIB_LOAD_COMPAT_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "tether/collection_spec.h"
#include "tether/map.h"

namespace tether::detail {

// OK, or FailedPrecondition naming `where` and the first field that differs
// (type, key_size, value_size, max_entries, flags, map_extra), after the
// kernel's own rounding; IsIncompatiblePin() reads that field back.
absl::Status CheckMapMatchesSpec(const MapSpec& spec, const Map& existing, absl::string_view where);

}  // namespace tether::detail

#endif  // TETHER_LIB_LOAD_COMPAT_H_
