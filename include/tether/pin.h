// Pins: files on bpffs that hold a BPF object beyond the process.
#ifndef TETHER_PIN_H_
#define TETHER_PIN_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

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

}  // namespace tether

#endif  // TETHER_PIN_H_
