// Pinning primitives shared by the handles (Pin, LoadPinned, and the map
// handle applying the graph's Pin verdict). Internal.
#ifndef TETHER_LIB_PIN_INTERNAL_H_
#define TETHER_LIB_PIN_INTERNAL_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sys/bpf.h"
#include "tether/graph.h"

namespace tether::detail {

// Checks that `path` would be on bpffs, creates missing parent directories
// (inside bpffs only), and pins fd there. Touches no graph state.
absl::Status PinFdAt(int fd, const std::string& path);

// `dir` and those of its ancestors that do not exist yet, deepest first:
// what pinning into `dir` will create. A load that fails afterwards hands
// them to RemoveDirectoriesIfEmpty, so it leaves no directory behind.
std::vector<std::string> MissingDirectories(const std::string& dir);
void RemoveDirectoriesIfEmpty(const std::vector<std::string>& dirs);

// Pins the object `ref` (described as `what`, e.g. "map 'x' (id 3)") at
// `path` and records the pin in the graph. If this process pinned the
// object elsewhere before, the old pin is removed: pinning again moves it.
absl::Status PinTracked(int fd, NodeRef ref, const std::string& what, const std::string& path);
// Opens the pin at `path`, refusing a pin that holds another kind of
// object. `kind` is "map", "prog" or "link".
absl::StatusOr<sys::Fd> OpenPinned(const std::string& path, absl::string_view kind);

// Removes the pin this process made for `ref`.
absl::Status UnpinTracked(NodeRef ref, const std::string& what);

}  // namespace tether::detail

#endif  // TETHER_LIB_PIN_INTERNAL_H_
