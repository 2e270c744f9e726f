// Pins: files on bpffs that hold a BPF object beyond the process.
#ifndef TETHER_PIN_H_
#define TETHER_PIN_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tether/link.h"
#include "tether/map.h"
#include "tether/program.h"

namespace tether {

// OK if `path` (or, when it does not exist yet, its nearest existing
// ancestor) is on a bpffs mount; otherwise FailedPrecondition saying what
// filesystem it is on and how to mount bpffs.
absl::Status CheckOnBpffs(const std::string& path);

// Checks a name that comes from an object file (a map's or a program's)
// and is about to become one file directly inside a pin directory. Refused,
// with InvalidArgument naming the name and the rule: an empty name, "." or
// "..", a '/', a '.' anywhere (bpffs refuses those), a control byte or a
// byte that is not UTF-8, and names longer than 255 bytes (NAME_MAX).
// An object file is untrusted input: without this, a map named
// "../other/victim" would pin outside the directory, or reuse another
// tenant's pinned map.
absl::Status ValidatePinName(absl::string_view name);

// <dir>/<name> for a name that ValidatePinName accepts, checked to stay
// inside `dir` once resolved: if something already exists at that path and
// is a symbolic link (bpffs allows them), it must resolve to a file inside
// `dir`. `what` names the object for the error ("map 'counters'").
absl::StatusOr<std::string> PinPathInside(const std::string& dir, absl::string_view name,
                                          absl::string_view what);

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
// with Map/Program/Link::LoadPinned, so the graph learns each pin and,
// for program arrays, their entries. Fails on the first pin it cannot open.
absl::StatusOr<PinnedObjects> LoadPinDirectory(const std::string& dir, bool recursive = false);

}  // namespace tether

#endif  // TETHER_PIN_H_
