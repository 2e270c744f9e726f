#include "tether/struct_ops.h"

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "graph/graph_internal.h"
#include "handles/map_internal.h"
#include "sys/bpf.h"
#include "sys/uapi_compat.h"
#include "tether/probe.h"

namespace tether {
namespace {

std::string Label(const Map& map) {
  return absl::StrFormat("struct_ops map '%s' (id %u)", map.name(), map.id());
}

absl::Status CheckLinkMap(const Map& map, absl::string_view op) {
  if (!map) return absl::FailedPreconditionError(absl::StrCat(op, ": the map handle is empty"));
  if (map.type() != BPF_MAP_TYPE_STRUCT_OPS) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: map '%s' (id %u) is a %s map, not struct_ops", op, map.name(), map.id(),
        MapTypeName(map.type())));
  }
  if ((map.flags() & sys::uapi::kMapFLink) == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: %s was created without BPF_F_LINK (a .struct_ops map, registered by its map "
        "update); only .struct_ops.link maps register through links",
        op, Label(map)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Link> AttachStructOps(const Map& map) {
  TETHER_RETURN_IF_ERROR(CheckLinkMap(map, "struct_ops attach"));
  sys::LinkCreateRequest req;
  req.prog_fd = map.fd();  // link_create.map_fd shares the field
  req.target_fd = 0;
  req.attach_type = sys::uapi::kAttachStructOps;
  auto fd = sys::LinkCreate(req);
  if (!fd.ok()) {
    absl::Status st = sys::ErrnoStatus(sys::StatusErrno(fd.status()), Label(map),
                                       "BPF_LINK_CREATE (struct_ops)");
    absl::Status have = probe::HaveLinkKind(probe::LinkKind::kStructOps);
    if (!have.ok()) return absl::Status(st.code(), absl::StrCat(st.message(), "; ", have.message()));
    return st;
  }
  TETHER_ASSIGN_OR_RETURN(
      Link link, Link::FromFd(fd->Release(), absl::StrCat("struct_ops ", map.name())));
  detail::GraphOnLinkMapChanged(link.id(), map.id());
  return link;
}

absl::Status UpdateStructOpsLink(const Link& link, const Map& new_map, const Map* expected_old) {
  if (!link) return absl::FailedPreconditionError("struct_ops link update: the link handle is empty");
  TETHER_RETURN_IF_ERROR(CheckLinkMap(new_map, "struct_ops link update"));
  bool replace = expected_old != nullptr && static_cast<bool>(*expected_old);
  int err = sys::LinkUpdate(link.fd(), new_map.fd(), replace ? BPF_F_REPLACE : 0,
                            replace ? expected_old->fd() : -1);
  if (err < 0) {
    absl::Status st = sys::ErrnoStatus(
        -err, absl::StrFormat("link '%s' (id %u)", link.description(), link.id()),
        absl::StrCat("BPF_LINK_UPDATE to ", Label(new_map)));
    if (replace && err == -EPERM) {
      return absl::FailedPreconditionError(absl::StrCat(
          st.message(), " (the link no longer registers the expected ", Label(*expected_old), ")"));
    }
    if (err == -EINVAL) {
      return absl::Status(st.code(), absl::StrCat(st.message(),
                                                  " (the new map must implement the same kernel "
                                                  "struct and have its value set)"));
    }
    return st;
  }
  detail::GraphOnLinkMapChanged(link.id(), new_map.id());
  return absl::OkStatus();
}

absl::Status UnregisterStructOps(const Map& map) {
  if (map && map.type() != BPF_MAP_TYPE_STRUCT_OPS) {
    return absl::InvalidArgumentError(absl::StrCat("unregister struct_ops: ", Label(map),
                                                   " is not a struct_ops map"));
  }
  return detail::UnregisterStructOpsMap(map);
}

}  // namespace tether
