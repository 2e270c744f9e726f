// HaveMapType: a minimal map of each type, told apart from an unknown type.
#include <unistd.h>

#include <linux/btf.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "btf/btf_writer.h"
#include "features/features_internal.h"
#include "sys/uapi_names.h"
#include "tether/btf.h"

namespace tether::probe {
namespace {

// The release that brought each map type the messages name; older types
// are all "an earlier release".
constexpr TypeRelease kMapTypeReleases[] = {
    {BPF_MAP_TYPE_STRUCT_OPS, "5.6"},
    {BPF_MAP_TYPE_RINGBUF, "5.8"},
    {BPF_MAP_TYPE_INODE_STORAGE, "5.10"},
    {BPF_MAP_TYPE_TASK_STORAGE, "5.11"},
    {BPF_MAP_TYPE_BLOOM_FILTER, "5.16"},
    {BPF_MAP_TYPE_USER_RINGBUF, "6.1"},
    {sys::uapi::kMapTypeCgrpStorage, "6.2"},
    {sys::uapi::kMapTypeArena, "6.9"},
};

const char* MapTypeSince(uint32_t type) { return ReleaseOf(kMapTypeReleases, type); }

bool IsLocalStorage(uint32_t type) {
  return type == BPF_MAP_TYPE_SK_STORAGE || type == BPF_MAP_TYPE_INODE_STORAGE ||
         type == BPF_MAP_TYPE_TASK_STORAGE || type == sys::uapi::kMapTypeCgrpStorage;
}

absl::Status MissingMapType(uint32_t type) {
  return absl::UnimplementedError(absl::StrFormat(
      "map type %s is not supported by kernel %s (it needs %s)", sys::MapTypeName(type),
      KernelRelease(), MapTypeSince(type)));
}

absl::Status ProbeMapOfMaps(sys::MapCreateRequest req) {
  TETHER_ASSIGN_OR_RETURN(sys::Fd inner, sys::MapCreate(MinimalMap(BPF_MAP_TYPE_ARRAY)));
  req.inner_map_fd = inner.get();
  return sys::MapCreate(req).status();
}

absl::Status ProbeMapType(uint32_t type) {
  sys::MapCreateRequest req = MinimalMap(type);
  if (type == BPF_MAP_TYPE_ARRAY_OF_MAPS || type == BPF_MAP_TYPE_HASH_OF_MAPS) {
    return ProbeMapOfMaps(req);
  }
  if (type == BPF_MAP_TYPE_STRUCT_OPS) {
    // The value is a kernel struct that vmlinux BTF names; TCP congestion
    // control has been one since the map type exists.
    auto value = FindVmlinuxType("bpf_struct_ops_tcp_congestion_ops", BTF_KIND_STRUCT);
    if (value.ok()) {
      req.value_size = value->size_or_type;
      req.btf_vmlinux_value_type_id = value->id;
    }
  }
  sys::Fd btf_fd;
  // Storage maps name their key and value in program BTF; struct_ops
  // maps must come with some program BTF even though their value is
  // described by the kernel's.
  if (IsLocalStorage(type) || type == BPF_MAP_TYPE_STRUCT_OPS) {
    btf::BtfWriter int_only;
    uint32_t int_id = int_only.Int();
    TETHER_ASSIGN_OR_RETURN(sys::BtfLoadResult loaded, sys::BtfLoad(int_only.Bytes()));
    btf_fd = std::move(loaded.fd);
    req.btf_fd = btf_fd.get();
    if (type != BPF_MAP_TYPE_STRUCT_OPS) {
      req.btf_key_type_id = int_id;
      req.btf_value_type_id = int_id;
    }
  }
  auto fd = sys::MapCreate(req);
  if (fd.ok()) return absl::OkStatus();
  int err = sys::StatusErrno(fd.status());
  // Storage maps need BTF for their value; EINVAL about BTF still means
  // the type exists, while an unknown type is EINVAL early. Tell them
  // apart by retrying with a type number past the UAPI's end.
  bool unsupported = err == sys::uapi::kEnotsupp || err == EOPNOTSUPP;
  if (err == EINVAL || err == E2BIG || unsupported) {
    sys::MapCreateRequest bogus = req;
    bogus.type = 0xffff;
    auto b = sys::MapCreate(bogus);
    bool same = !b.ok() && sys::StatusErrno(b.status()) == err;
    return same || unsupported ? MissingMapType(type) : absl::OkStatus();
  }
  return RefusedOr(fd.status(), absl::StrCat(sys::MapTypeName(type), " maps"), MapTypeSince(type),
                   "BPF_MAP_CREATE of a minimal map");
}

}  // namespace

sys::MapCreateRequest MinimalMap(uint32_t type) {
  sys::MapCreateRequest r;
  r.type = type;
  r.key_size = 4;
  r.value_size = 4;
  r.max_entries = 1;
  switch (type) {
    case BPF_MAP_TYPE_QUEUE:
    case BPF_MAP_TYPE_STACK:
    case BPF_MAP_TYPE_BLOOM_FILTER:
      r.key_size = 0;
      break;
    case BPF_MAP_TYPE_RINGBUF:
    case BPF_MAP_TYPE_USER_RINGBUF:
      r.key_size = 0;
      r.value_size = 0;
      r.max_entries = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
      break;
    case BPF_MAP_TYPE_STACK_TRACE:
      r.value_size = 8;  // whole u64 frames
      break;
    case BPF_MAP_TYPE_LPM_TRIE:
      r.key_size = 8;
      r.flags = BPF_F_NO_PREALLOC;
      break;
    case BPF_MAP_TYPE_CGROUP_STORAGE:
    case BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
      r.key_size = sizeof(struct bpf_cgroup_storage_key);
      r.max_entries = 0;
      break;
    case BPF_MAP_TYPE_SK_STORAGE:
    case BPF_MAP_TYPE_INODE_STORAGE:
    case BPF_MAP_TYPE_TASK_STORAGE:
    case sys::uapi::kMapTypeCgrpStorage:
      r.max_entries = 0;
      r.flags = BPF_F_NO_PREALLOC;
      break;
    case sys::uapi::kMapTypeArena:
      r.key_size = 0;
      r.value_size = 0;
      r.max_entries = 1;
      r.flags = BPF_F_MMAPABLE;
      break;
    default:
      break;
  }
  return r;
}

absl::Status HaveMapType(uint32_t type) {
  return Cached(absl::StrCat("map_type:", sys::MapTypeName(type)),
                [type] { return ProbeMapType(type); });
}

}  // namespace tether::probe
