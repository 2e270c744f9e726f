#include "tether/map.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "graph/graph_internal.h"
#include "handles/map_internal.h"
#include "handles/pin_internal.h"
#include "sys/bpf.h"
#include "sys/cpus.h"
#include "sys/uapi_names.h"

namespace tether {

const char* MapTypeName(uint32_t type) { return sys::MapTypeName(type); }

bool IsPerCpuMapType(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

uint32_t PossibleCpus() {
  static uint32_t cached = [] {
    // The kernel sizes per-CPU values by the possible CPUs, not the online ones.
    size_t n = detail::ReadCpuList("/sys/devices/system/cpu/possible").size();
    if (n == 0) n = static_cast<size_t>(sysconf(_SC_NPROCESSORS_CONF));
    return static_cast<uint32_t>(n ? n : 1);
  }();
  return cached;
}

namespace {

uint32_t ValueBufferSize(const MapInfo& info) {
  if (IsPerCpuMapType(info.type)) {
    return ((info.value_size + 7) & ~7u) * PossibleCpus();
  }
  return info.value_size;
}

MapInfo ToMapInfo(const bpf_map_info& k) {
  MapInfo info;
  info.id = k.id;
  info.type = k.type;
  info.key_size = k.key_size;
  info.value_size = k.value_size;
  info.max_entries = k.max_entries;
  info.flags = k.map_flags;
  info.map_extra = k.map_extra;
  info.btf_id = k.btf_id;
  info.btf_key_type_id = k.btf_key_type_id;
  info.btf_value_type_id = k.btf_value_type_id;
  info.ifindex = k.ifindex;
  info.name = std::string(k.name, strnlen(k.name, sizeof(k.name)));
  return info;
}

std::string Describe(const MapInfo& info) {
  return absl::StrFormat("map '%s' (id %u)", info.name, info.id);
}

// Catches the size mistakes that the kernel reports only as EINVAL.
absl::Status ValidateCreate(const MapOptions& o) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("map '", o.name, "': create: ", why));
  };
  if (o.name.size() >= BPF_OBJ_NAME_LEN)
    return bad(absl::StrFormat("name is %u bytes; the kernel allows at most %u", o.name.size(),
                               BPF_OBJ_NAME_LEN - 1));
  for (char c : o.name) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'))
      return bad(absl::StrFormat("name has '%c'; the kernel allows letters, digits, '_' and '.'", c));
  }
  switch (o.type) {
    case BPF_MAP_TYPE_PROG_ARRAY:
    case BPF_MAP_TYPE_ARRAY_OF_MAPS:
    case BPF_MAP_TYPE_PERF_EVENT_ARRAY:
    case BPF_MAP_TYPE_CGROUP_ARRAY:
      if (o.key_size != 4) return bad(absl::StrFormat("%s needs key_size 4, got %u", MapTypeName(o.type), o.key_size));
      if (o.value_size != 4)
        return bad(absl::StrFormat("%s needs value_size 4 (an fd), got %u", MapTypeName(o.type), o.value_size));
      break;
    case BPF_MAP_TYPE_ARRAY:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
      if (o.key_size != 4) return bad(absl::StrFormat("%s needs key_size 4, got %u", MapTypeName(o.type), o.key_size));
      if (o.value_size == 0) return bad("value_size is 0");
      break;
    case BPF_MAP_TYPE_HASH:
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_LRU_HASH:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_LPM_TRIE:
      if (o.key_size == 0) return bad(absl::StrFormat("%s needs key_size > 0", MapTypeName(o.type)));
      if (o.value_size == 0) return bad("value_size is 0");
      break;
    case BPF_MAP_TYPE_HASH_OF_MAPS:
      if (o.key_size == 0) return bad("hash_of_maps needs key_size > 0");
      if (o.value_size != 4) return bad(absl::StrFormat("hash_of_maps needs value_size 4 (an fd), got %u", o.value_size));
      break;
    case BPF_MAP_TYPE_QUEUE:
    case BPF_MAP_TYPE_STACK:
    case BPF_MAP_TYPE_BLOOM_FILTER:
      if (o.key_size != 0) return bad(absl::StrFormat("%s takes no key (key_size 0), got %u", MapTypeName(o.type), o.key_size));
      break;
    case BPF_MAP_TYPE_RINGBUF:
    case BPF_MAP_TYPE_USER_RINGBUF:
      if (o.key_size != 0 || o.value_size != 0) return bad("ring buffers take key_size 0 and value_size 0");
      if (o.max_entries == 0 || (o.max_entries & (o.max_entries - 1)) != 0 || o.max_entries % 4096 != 0)
        return bad(absl::StrFormat("ring buffer size %u must be a power of 2 and a multiple of the page size", o.max_entries));
      break;
    case BPF_MAP_TYPE_STRUCT_OPS:
      if (o.btf_vmlinux_value_type_id == 0)
        return bad("struct_ops needs btf_vmlinux_value_type_id: the kernel struct_ops type it implements");
      // Checked by the kernel as "the object's BTF", though the value's
      // type is vmlinux's; without it the answer is a bare EINVAL.
      if (o.btf_fd < 0) return bad("struct_ops needs btf_fd: the BTF of the object it comes from");
      break;
    default:
      break;
  }
  if ((o.type == BPF_MAP_TYPE_ARRAY_OF_MAPS || o.type == BPF_MAP_TYPE_HASH_OF_MAPS) &&
      (o.inner_map == nullptr || !*o.inner_map))
    return bad("a map-in-map needs an inner map template (MapOptions::inner_map)");
  return absl::OkStatus();
}

}  // namespace

namespace detail {

MapObject::MapObject(int fd, MapInfo info)
    : fd_(fd), info_(std::move(info)), value_buffer_size_(ValueBufferSize(info_)) {
  GraphOnMapCreated(info_.id, info_.name, info_.type);
}

MapObject::~MapObject() {
  if (unregister_on_release()) ReleaseStructOpsRegistration(fd_, info_.id);
  MapReleaseVerdict verdict = GraphOnMapReleased(
      info_.id, fd_, policy(), forced_release_.load(std::memory_order_relaxed));
  if (verdict.action == MapReleaseVerdict::Action::kPin) {
    absl::Status pinned = PinFdAt(fd_, verdict.pin_path);
    verdict = GraphOnPolicyPin(info_.id, fd_, std::move(verdict), pinned);
  }
  // KeepAlive, Refuse or a deferred verdict: the graph owns the fd now.
  if (verdict.action == MapReleaseVerdict::Action::kKeepAlive) fd_ = -1;
  // The fd closes before a refusal may abort.
  if (fd_ >= 0) close(fd_);
  DeliverVerdict(verdict);
}

absl::Status MapSizeError(const MapObject* map, absl::string_view op, size_t key_size,
                          size_t value_size) {
  const MapInfo& info = map->info();
  return absl::InvalidArgumentError(absl::StrFormat(
      "%s: %s: key is %u bytes and value %u bytes, but the map has key_size %u and "
      "value_size %u%s",
      Describe(info), op, key_size, value_size, info.key_size, map->value_buffer_size(),
      IsPerCpuMapType(info.type)
          ? absl::StrFormat(" (per-CPU: %u rounded to 8 bytes, times %u possible CPUs)",
                            info.value_size, PossibleCpus())
          : ""));
}

absl::Status MapOpError(const MapObject* map, absl::string_view op, int neg_errno) {
  if (map == nullptr) return NullMapError(op);
  return sys::ErrnoStatus(-neg_errno, Describe(map->info()), op);
}

absl::Status NullMapError(absl::string_view op) {
  return absl::FailedPreconditionError(absl::StrCat("map: ", op, ": the handle is empty"));
}

const char kStructOpsHook[] = "struct_ops registration (map update)";

void MarkStructOpsRegistered(const Map& map) {
  if (!map) return;
  map.object()->set_unregister_on_release(true);
  GraphAddLegacyHook(NodeOf(map), kStructOpsHook);
}

void ReleaseStructOpsRegistration(int fd, uint32_t map_id) {
  NodeRef node{NodeKind::kMap, map_id};
  // A pin is a reference of its own: the registration stays with it.
  if (!GraphPinPathOf(node).empty()) return;
  uint32_t zero = 0;
  // ENOENT or EINVAL: someone unregistered it already (UnregisterStructOps).
  sys::MapDeleteElem(fd, &zero);
  GraphRemoveLegacyHook(node, kStructOpsHook);
}

absl::Status UnregisterStructOpsMap(const Map& map) {
  if (!map) return NullMapError("unregister struct_ops");
  uint32_t zero = 0;
  int ret = sys::MapDeleteElem(map.fd(), &zero);
  if (ret < 0) return MapOpError(map.object(), "unregister struct_ops (BPF_MAP_DELETE_ELEM)", ret);
  map.object()->set_unregister_on_release(false);
  GraphRemoveLegacyHook(NodeOf(map), kStructOpsHook);
  return absl::OkStatus();
}

absl::Status ReadTailCallsIntoGraph(const Map& array) {
  // One lookup per slot, paid once per adoption and never on the hot path.
  for (uint32_t i = 0; i < array.max_entries(); ++i) {
    uint32_t prog_id = 0;
    int ret = sys::MapLookupElem(array.fd(), &i, &prog_id, 0);
    if (ret == 0) {
      GraphNoteTailCallById(array.id(), i, prog_id);
    } else if (ret != -ENOENT) {
      return sys::ErrnoStatus(
          -ret, absl::StrFormat("program array '%s' (id %u)", array.name(), array.id()),
          absl::StrCat("reading entry ", i));
    }
  }
  return absl::OkStatus();
}

}  // namespace detail

namespace {

// The kernel's description of a map fd just made or opened, with the map
// named for an error by `how()`: a create names the map it just made, and
// that text is only built when it is needed.
template <typename How>
absl::StatusOr<MapInfo> ReadMapInfoOf(int fd, const How& how) {
  auto kinfo = sys::GetMapInfo(fd);
  if (!kinfo.ok()) {
    return sys::ErrnoStatus(sys::StatusErrno(kinfo.status()), absl::StrCat("map ", how()),
                            "BPF_OBJ_GET_INFO_BY_FD");
  }
  if (kinfo->id == 0) return absl::InternalError(absl::StrCat("map (", how(), "): kernel reported id 0"));
  return ToMapInfo(*kinfo);
}

}  // namespace

absl::StatusOr<Map> Map::Adopt(int raw_fd, absl::string_view how) {
  sys::Fd fd(raw_fd);
  auto info = ReadMapInfoOf(fd.get(), [how] { return how; });
  if (!info.ok()) return info.status();
  return Map(RefPtr<detail::MapObject>(new detail::MapObject(fd.Release(), std::move(*info))));
}

absl::StatusOr<Map> Map::Create(const MapOptions& o) {
  TETHER_RETURN_IF_ERROR(ValidateCreate(o));
  sys::MapCreateRequest req;
  req.type = o.type;
  req.key_size = o.key_size;
  req.value_size = o.value_size;
  req.max_entries = o.max_entries;
  req.flags = o.flags;
  req.inner_map_fd = o.inner_map ? o.inner_map->fd() : -1;
  req.numa_node = o.numa_node;
  req.name = o.name;
  req.ifindex = o.ifindex;
  req.btf_fd = o.btf_fd;
  req.btf_key_type_id = o.btf_key_type_id;
  req.btf_value_type_id = o.btf_value_type_id;
  req.btf_vmlinux_value_type_id = o.btf_vmlinux_value_type_id;
  req.map_extra = o.map_extra;
  auto fd = sys::MapCreate(req);
  if (!fd.ok()) {
    int err = sys::StatusErrno(fd.status());
    absl::Status st = sys::ErrnoStatus(
        err, absl::StrFormat("map '%s' (%s, key %u, value %u, max_entries %u, flags 0x%x)", o.name,
                             MapTypeName(o.type), o.key_size, o.value_size, o.max_entries, o.flags),
        "BPF_MAP_CREATE");
    return st;
  }
  sys::Fd made = std::move(*fd);
  auto info = ReadMapInfoOf(made.get(), [&o] { return absl::StrCat("'", o.name, "' (just created)"); });
  if (!info.ok()) return info.status();
  Map map(RefPtr<detail::MapObject>(new detail::MapObject(made.Release(), std::move(*info))));
  if (o.lifetime_policy != LifetimePolicy::kDefault) map.SetLifetimePolicy(o.lifetime_policy);
  return map;
}

absl::StatusOr<Map> Map::FromFd(int fd) {
  if (fd < 0) return absl::InvalidArgumentError(absl::StrCat("map from fd ", fd, ": not an fd"));
  return Adopt(fd, absl::StrCat("from fd ", fd));
}

absl::StatusOr<Map> Map::FromId(uint32_t id) {
  auto fd = sys::GetFdById(sys::ObjectKind::kMap, id);
  if (!fd.ok()) {
    return sys::ErrnoStatus(sys::StatusErrno(fd.status()), absl::StrCat("map id ", id),
                            "BPF_MAP_GET_FD_BY_ID");
  }
  return Adopt(fd->Release(), absl::StrCat("id ", id));
}

absl::StatusOr<Map> Map::LoadPinned(const std::string& path) {
  auto fd = detail::OpenPinned(path, "map");
  if (!fd.ok()) return fd.status();
  auto map = Adopt(fd->Release(), absl::StrCat("pinned at ", path));
  if (!map.ok()) return map;
  // The pin is a reference the graph should know, even if another process made it.
  detail::GraphAddPin(NodeOf(*map), path);
  // Whoever pinned a program array filled it; the graph needs its entries
  // to explain what the array keeps alive.
  if (map->type() == BPF_MAP_TYPE_PROG_ARRAY) {
    TETHER_RETURN_IF_ERROR(detail::ReadTailCallsIntoGraph(*map));
  }
  return map;
}

absl::StatusOr<Map> Map::Clone() const {
  if (!obj_) return detail::NullMapError("clone");
  int dup = fcntl(obj_->fd(), F_DUPFD_CLOEXEC, 3);
  if (dup < 0) return sys::ErrnoStatus(errno, Describe(info()), "clone (dup)");
  auto map = Adopt(dup, "clone");
  if (map.ok()) map->SetLifetimePolicy(lifetime_policy());
  return map;
}

// An empty handle answers EBADF without a syscall; MapOpError turns that
// into the empty-handle error. The typed wrappers reach the kernel only
// through these.
int Map::RawLookup(const void* key, void* value, uint64_t flags) const {
  if (!obj_) return -EBADF;
  return sys::MapLookupElem(obj_->fd(), key, value, flags);
}
int Map::RawUpdate(const void* key, const void* value, uint64_t flags) const {
  if (!obj_) return -EBADF;
  return sys::MapUpdateElem(obj_->fd(), key, value, flags);
}
int Map::RawDelete(const void* key) const {
  if (!obj_) return -EBADF;
  return sys::MapDeleteElem(obj_->fd(), key);
}
int Map::RawLookupAndDelete(const void* key, void* value) const {
  if (!obj_) return -EBADF;
  return sys::MapLookupAndDeleteElem(obj_->fd(), key, value, 0);
}

absl::StatusOr<bool> Map::NextKey(const void* key, void* next_key) const {
  if (!obj_) return detail::NullMapError("next_key");
  int ret = sys::MapGetNextKey(obj_->fd(), key, next_key);
  if (ret == 0) return true;
  if (ret == -ENOENT) return false;
  return detail::MapOpError(obj_.get(), "next_key", ret);
}

absl::Status Map::Freeze() const {
  if (!obj_) return detail::NullMapError("freeze");
  return Result("freeze", sys::MapFreeze(obj_->fd()));
}

absl::Status Map::Pin(const std::string& path) const {
  if (!obj_) return detail::NullMapError("pin");
  return detail::PinTracked(obj_->fd(), NodeOf(*this), Describe(info()), path);
}

absl::Status Map::Unpin() const {
  if (!obj_) return detail::NullMapError("unpin");
  return detail::UnpinTracked(NodeOf(*this), Describe(info()));
}

NodeRef NodeOf(const Map& map) { return NodeRef{NodeKind::kMap, map.id()}; }
Explanation ObjectGraph::Explain(const Map& map) const { return Explain(NodeOf(map)); }
std::vector<std::string> ObjectGraph::WhatBreaks(const Map& map) const {
  return WhatBreaks(NodeOf(map));
}

std::string Map::PinPath() const {
  if (!obj_) return "";
  return detail::GraphPinPathOf(NodeOf(*this));
}

absl::Status Map::Close(bool force) {
  if (!obj_) return absl::OkStatus();
  if (obj_->HasOneRef()) {
    TETHER_RETURN_IF_ERROR(detail::GraphCheckLastRelease(obj_->info().id, obj_->policy(), force));
    if (force) obj_->set_forced_release();
  }
  obj_.reset();
  return absl::OkStatus();
}

}  // namespace tether
