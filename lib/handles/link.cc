#include "tether/link.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "graph/graph_internal.h"
#include "handles/pin_internal.h"
#include "sys/bpf.h"

namespace tether {

const char* LinkTypeName(uint32_t type) {
  switch (type) {
    case BPF_LINK_TYPE_UNSPEC: return "unspec";
    case BPF_LINK_TYPE_RAW_TRACEPOINT: return "raw_tracepoint";
    case BPF_LINK_TYPE_TRACING: return "tracing";
    case BPF_LINK_TYPE_CGROUP: return "cgroup";
    case BPF_LINK_TYPE_ITER: return "iter";
    case BPF_LINK_TYPE_NETNS: return "netns";
    case BPF_LINK_TYPE_XDP: return "xdp";
    case BPF_LINK_TYPE_PERF_EVENT: return "perf_event";
    case BPF_LINK_TYPE_KPROBE_MULTI: return "kprobe_multi";
    case BPF_LINK_TYPE_STRUCT_OPS: return "struct_ops";
    case sys::uapi::kLinkTypeNetfilter: return "netfilter";
    case sys::uapi::kLinkTypeTcx: return "tcx";
    case sys::uapi::kLinkTypeUprobeMulti: return "uprobe_multi";
    case sys::uapi::kLinkTypeNetkit: return "netkit";
    default: return "unknown";
  }
}

namespace {

// The attach-type-specific part of bpf_link_info starts at offset 16 in
// every kernel; read it by layout so that kinds newer than the build
// headers (tcx) still describe their hook.
struct LinkInfoHead {
  uint32_t type, id, prog_id, pad;
};

std::string TargetOf(const bpf_link_info& k) {
  const char* tail = reinterpret_cast<const char*>(&k) + sizeof(LinkInfoHead);
  uint32_t a = 0, b = 0;
  uint64_t wide = 0;
  memcpy(&a, tail, 4);
  memcpy(&b, tail + 4, 4);
  memcpy(&wide, tail, 8);
  switch (k.type) {
    case BPF_LINK_TYPE_XDP: return absl::StrCat("ifindex ", a);
    case sys::uapi::kLinkTypeTcx:
      return absl::StrCat("ifindex ", a, b == sys::uapi::kAttachTcxEgress ? " egress" : " ingress");
    case BPF_LINK_TYPE_CGROUP:
      return absl::StrCat("cgroup ", k.cgroup.cgroup_id, " attach type ", k.cgroup.attach_type);
    case BPF_LINK_TYPE_NETNS:
      return absl::StrCat("netns ", k.netns.netns_ino, " attach type ", k.netns.attach_type);
    case BPF_LINK_TYPE_TRACING:
      return absl::StrCat("btf id ", k.tracing.target_btf_id, " attach type ",
                          k.tracing.attach_type);
    case BPF_LINK_TYPE_RAW_TRACEPOINT: return "";  // named by ReadInfo
    case BPF_LINK_TYPE_ITER: return "iterator";
    default: return LinkTypeName(k.type);
  }
}

absl::StatusOr<LinkInfo> ReadInfo(int fd) {
  auto k = sys::GetLinkInfo(fd);
  if (!k.ok()) return k.status();
  LinkInfo info;
  info.id = k->id;
  info.type = k->type;
  info.prog_id = k->prog_id;
  info.target = TargetOf(*k);
  if (k->type == BPF_LINK_TYPE_RAW_TRACEPOINT) {
    // The tracepoint's name comes only into a buffer of ours.
    char name[128] = {0};
    bpf_link_info again;
    memset(&again, 0, sizeof(again));
    again.raw_tracepoint.tp_name = reinterpret_cast<uintptr_t>(name);
    again.raw_tracepoint.tp_name_len = sizeof(name);
    uint32_t len = sizeof(again);
    if (sys::ObjGetInfoByFd(fd, &again, &len) == 0) info.target = name;
  }
  return info;
}

std::string Describe(const detail::LinkObject& o) {
  return absl::StrFormat("link %u (%s)", o.info().id, o.description());
}

}  // namespace

namespace detail {

LinkObject::LinkObject(int fd, LinkInfo info, std::string description)
    : fd_(fd), info_(std::move(info)), description_(std::move(description)) {
  GraphOnLinkCreated(info_.id, info_.type, info_.prog_id, description_);
  if (info_.prog_id == 0) GraphOnLinkProgramChanged(info_.id, 0);
}

LinkObject::~LinkObject() {
  GraphOnLinkReleased(info_.id);
  if (fd_ >= 0) close(fd_);
}

}  // namespace detail

absl::StatusOr<Link> Link::Adopt(int raw_fd, absl::string_view how,
                                 const std::string& description) {
  sys::Fd fd(raw_fd);
  auto info = ReadInfo(fd.get());
  if (!info.ok()) {
    return absl::Status(info.status().code(),
                        absl::StrCat("link (", how, "): ", info.status().message()));
  }
  std::string desc =
      description.empty() ? absl::StrCat(LinkTypeName(info->type), " ", info->target) : description;
  return Link(RefPtr<detail::LinkObject>(
      new detail::LinkObject(fd.Release(), std::move(*info), std::move(desc))));
}

absl::StatusOr<Link> Link::FromFd(int fd, const std::string& description) {
  if (fd < 0) return absl::InvalidArgumentError(absl::StrCat("link from fd ", fd, ": not an fd"));
  return Adopt(fd, absl::StrCat("from fd ", fd), description);
}

absl::StatusOr<Link> Link::FromId(uint32_t id) {
  auto fd = sys::GetFdById(sys::ObjectKind::kLink, id);
  if (!fd.ok()) {
    return sys::ErrnoStatus(sys::StatusErrno(fd.status()), absl::StrCat("link id ", id),
                            "BPF_LINK_GET_FD_BY_ID");
  }
  return Adopt(fd->Release(), absl::StrCat("id ", id), "");
}

absl::StatusOr<Link> Link::LoadPinned(const std::string& path) {
  auto fd = detail::OpenPinned(path, "link");
  if (!fd.ok()) return fd.status();
  auto link = Adopt(fd->Release(), absl::StrCat("pinned at ", path), "");
  // The pin is a reference the graph should know, even if another process made it.
  if (link.ok()) detail::GraphAddPin(NodeOf(*link), path);
  return link;
}

absl::StatusOr<Link> Link::Clone() const {
  if (!obj_) return absl::FailedPreconditionError("link: clone: the handle is empty");
  int dup = fcntl(obj_->fd(), F_DUPFD_CLOEXEC, 3);
  if (dup < 0) return sys::ErrnoStatus(errno, Describe(*obj_), "clone (dup)");
  return Adopt(dup, "clone", obj_->description());
}

absl::StatusOr<LinkInfo> Link::Refresh() const {
  if (!obj_) return absl::FailedPreconditionError("link: info: the handle is empty");
  auto info = ReadInfo(obj_->fd());
  if (!info.ok()) {
    return absl::Status(info.status().code(),
                        absl::StrCat(Describe(*obj_), ": ", info.status().message()));
  }
  return info;
}

absl::StatusOr<uint32_t> Link::ProgramId() const {
  auto info = Refresh();
  if (!info.ok()) return info.status();
  return info->prog_id;
}

absl::Status Link::Update(const Program& new_program,
                          const absl::optional<Program>& expected_old) const {
  if (!obj_) return absl::FailedPreconditionError("link: update: the handle is empty");
  if (!new_program) {
    return absl::InvalidArgumentError(absl::StrCat(Describe(*obj_), ": update: empty program"));
  }
  bool replace = expected_old.has_value() && static_cast<bool>(*expected_old);
  int err = sys::LinkUpdate(obj_->fd(), new_program.fd(), replace ? BPF_F_REPLACE : 0,
                            replace ? expected_old->fd() : -1);
  std::string op = absl::StrFormat("BPF_LINK_UPDATE to program '%s' (id %u)", new_program.name(),
                                   new_program.id());
  if (err < 0) {
    absl::Status st = sys::ErrnoStatus(-err, Describe(*obj_), op);
    if (replace && err == -EPERM) {
      // The kernel says EPERM when the link holds another program than the
      // one the caller expected: a lost race, not a privilege problem.
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s (the link no longer holds the expected program '%s' (id %u))", st.message(),
          expected_old->name(), expected_old->id()));
    }
    if (err == -EINVAL) {
      return absl::Status(st.code(),
                          absl::StrCat(st.message(),
                                       " (the new program must have the same type and attach "
                                       "type as the old one)"));
    }
    return st;
  }
  detail::GraphOnLinkProgramChanged(obj_->info().id, new_program.id());
  return absl::OkStatus();
}

absl::Status Link::Detach() const {
  if (!obj_) return absl::FailedPreconditionError("link: detach: the handle is empty");
  int err = sys::LinkDetach(obj_->fd());
  if (err < 0) {
    absl::Status st = sys::ErrnoStatus(-err, Describe(*obj_), "BPF_LINK_DETACH");
    if (err == -EOPNOTSUPP || err == -EINVAL) {
      return absl::Status(st.code(), absl::StrCat(st.message(), " (", LinkTypeName(type()),
                                                  " links cannot be detached on kernel "
                                                  "request; drop every fd and pin instead)"));
    }
    return st;
  }
  return absl::OkStatus();
}

absl::Status Link::Pin(const std::string& path) const {
  if (!obj_) return absl::FailedPreconditionError("link: pin: the handle is empty");
  return detail::PinTracked(obj_->fd(), NodeOf(*this), Describe(*obj_), path);
}

absl::Status Link::Unpin() const {
  if (!obj_) return absl::FailedPreconditionError("link: unpin: the handle is empty");
  return detail::UnpinTracked(NodeOf(*this), Describe(*obj_));
}

std::string Link::PinPath() const {
  if (!obj_) return "";
  return detail::GraphPinPathOf(NodeOf(*this));
}

NodeRef NodeOf(const Link& link) { return NodeRef{NodeKind::kLink, link.id()}; }

}  // namespace tether
