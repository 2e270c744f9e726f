// Pins: files on bpffs that hold a BPF object beyond the process.
#ifndef TETHER_PIN_H_
#define TETHER_PIN_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tether/link.h"
#include "tether/map.h"
#include "tether/program.h"

namespace tether {

// OK if `path` (or, when it does not exist yet, its nearest existing
// ancestor) is on a bpffs mount; otherwise FailedPrecondition saying what
// filesystem it is on and how to mount bpffs.
absl::Status CheckOnBpffs(const std::string& path);

// Mounts bpffs at /sys/fs/bpf unless something already is mounted there.
absl::Status EnsureBpffsMounted(const std::string& mount_point = "/sys/fs/bpf");

// What kind of object a pin holds ("map", "prog", "link"), from bpffs.
absl::StatusOr<std::string> PinnedObjectKind(const std::string& path);

// The pins (files) directly under a bpffs directory.
absl::StatusOr<std::vector<std::string>> ListPins(const std::string& dir);

// A handle for each object pinned in a directory, keyed by pin path.
struct PinnedObjects {
  std::map<std::string, Map> maps;
  std::map<std::string, Program> programs;
  std::map<std::string, Link> links;
  size_t size() const { return maps.size() + programs.size() + links.size(); }
};

// Opens every pin under `dir` (and, with `recursive`, its subdirectories)
// with Map::LoadPinned, Program::LoadPinned or Link::LoadPinned, so the graph learns each pin and,
// for program arrays, their entries. Fails on the first pin it cannot open.
absl::StatusOr<PinnedObjects> LoadPinDirectory(const std::string& dir, bool recursive = false);

}  // namespace tether

#endif  // TETHER_PIN_H_
