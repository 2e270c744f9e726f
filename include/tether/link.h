// Link: a cheap, copyable handle to one BPF link, the kernel object that
// attaches a program to a hook and holds the program while it exists.
//
// A link detaches when its last fd and its last pin are gone, so a pinned
// link keeps working after the process exits. The functions that make
// links, one per kind of hook, are in tether/attach.h.
#ifndef TETHER_LINK_H_
#define TETHER_LINK_H_

#include <linux/bpf.h>

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"
#include "tether/graph.h"
#include "tether/program.h"
#include "tether/handle.h"
#include "tether/ref_counted.h"

namespace tether {

// Kernel facts about a link. The program id changes with Update();
// Link::Refresh() reads them again.
struct LinkInfo {
  uint32_t id = 0;
  uint32_t type = 0;  // BPF_LINK_TYPE_*
  uint32_t prog_id = 0;
  // The hook, as far as the kernel tells it: "ifindex 4", "cgroup 1234
  // attach type 0", "sys_enter" (raw tracepoints), "netns 4026531840
  // attach type 25"...
  std::string target;
};

const char* LinkTypeName(uint32_t type);

namespace detail {

class LinkObject : public RefCounted<LinkObject> {
 public:
  LinkObject(int fd, LinkInfo info, std::string description);
  ~LinkObject();
  int fd() const { return fd_; }
  const LinkInfo& info() const { return info_; }
  const std::string& description() const { return description_; }

 private:
  int fd_;
  LinkInfo info_;
  std::string description_;
};

}  // namespace detail

class Link : public detail::HandleBase<Link, detail::LinkObject> {
 public:
  Link() = default;

  // Adopts an fd (the Link owns it from then on, also on failure).
  // `description` names the hook for errors and the graph ("xdp ifindex
  // 4"); empty: the link type and the kernel's LinkInfo::target.
  static absl::StatusOr<Link> FromFd(int fd, const std::string& description = "");
  static absl::StatusOr<Link> FromId(uint32_t id);
  static absl::StatusOr<Link> LoadPinned(const std::string& path);
  absl::StatusOr<Link> Clone() const;

  // "" on an empty handle (see the contract in handle.h); Refresh,
  // ProgramId, Update, Detach, Pin, Unpin and Clone return
  // FailedPrecondition "link: <op>: the handle is empty", PinPath() "".
  const std::string& description() const {
    static const std::string empty;
    return obj_ ? obj_->description() : empty;
  }

  // Reads the link's info from the kernel now.
  absl::StatusOr<LinkInfo> Refresh() const;
  // The id of the program the link holds now.
  absl::StatusOr<uint32_t> ProgramId() const;

  // Atomically swaps the link's program for `new_program`. With
  // `expected_old`, the swap happens only if the link still holds that
  // program (BPF_F_REPLACE); otherwise it fails with FailedPrecondition.
  absl::Status Update(const Program& new_program,
                      const absl::optional<Program>& expected_old = absl::nullopt) const;
  // Detaches the link from its hook (BPF_LINK_DETACH): the hook stops
  // running the program at once, though the link, while it lives, still
  // holds the program (the kernel drops it only when the link is freed).
  // Not every kind of link supports it.
  absl::Status Detach() const;

  // Pins the link at `path` on bpffs (creating missing directories
  // there). The pin keeps the attachment alive after every fd is closed.
  // Pinning again moves the pin.
  absl::Status Pin(const std::string& path) const;
  absl::Status Unpin() const;
  std::string PinPath() const;

 private:
  explicit Link(RefPtr<detail::LinkObject> obj) : HandleBase(std::move(obj)) {}
  static absl::StatusOr<Link> Adopt(int fd, absl::string_view how, const std::string& description);
};

NodeRef NodeOf(const Link& link);

}  // namespace tether

template <>
struct std::hash<tether::Link> {
  size_t operator()(const tether::Link& l) const noexcept {
    return std::hash<const void*>()(l.object());
  }
};

#endif  // TETHER_LINK_H_
