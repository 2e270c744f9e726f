#include "tether/prog_array.h"

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "graph/graph_internal.h"
#include "handles/map_internal.h"
#include "sys/bpf.h"

namespace tether {
namespace {

std::string Describe(const Map& map) {
  return absl::StrFormat("program array '%s' (id %u)", map.name(), map.id());
}

absl::Status CheckIndex(const Map& map, uint32_t index, absl::string_view op) {
  if (!map) return absl::FailedPreconditionError(absl::StrCat("program array: ", op, ": the handle is empty"));
  if (index >= map.max_entries()) {
    return absl::OutOfRangeError(absl::StrFormat("%s: %s: index %u is out of range (max_entries %u)",
                                                 Describe(map), op, index, map.max_entries()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ProgramArray> ProgramArray::Create(const std::string& name, uint32_t max_entries,
                                                  LifetimePolicy policy) {
  MapOptions o;
  o.type = BPF_MAP_TYPE_PROG_ARRAY;
  o.key_size = 4;
  o.value_size = 4;
  o.max_entries = max_entries;
  o.name = name;
  o.lifetime_policy = policy;
  auto map = Map::Create(o);
  if (!map.ok()) return map.status();
  return ProgramArray(std::move(*map));
}

absl::StatusOr<ProgramArray> ProgramArray::FromMap(Map map, bool read_entries) {
  if (!map) return absl::InvalidArgumentError("program array: the map handle is empty");
  if (map.type() != BPF_MAP_TYPE_PROG_ARRAY) {
    return absl::InvalidArgumentError(absl::StrFormat("map '%s' (id %u) is a %s, not a prog_array",
                                                      map.name(), map.id(), MapTypeName(map.type())));
  }
  // Learn the entries someone else may have set.
  if (read_entries) TETHER_RETURN_IF_ERROR(detail::ReadTailCallsIntoGraph(map));
  return ProgramArray(std::move(map));
}

absl::Status ProgramArray::Set(uint32_t index, const Program& program) const {
  TETHER_RETURN_IF_ERROR(CheckIndex(map_, index, "set"));
  if (!program) return absl::InvalidArgumentError(absl::StrCat(Describe(map_), ": set: empty program handle"));
  uint32_t fd = static_cast<uint32_t>(program.fd());
  int ret = sys::MapUpdateElem(map_.fd(), &index, &fd, BPF_ANY);
  if (ret < 0) {
    absl::Status st = sys::ErrnoStatus(-ret, Describe(map_),
                          absl::StrFormat("set [%u] = program '%s' (id %u)", index, program.name(), program.id()));
    if (ret == -EINVAL) {
      // The kernel ties an array to the first program type (and JIT mode)
      // that uses it; a mismatch is the usual cause.
      return absl::Status(st.code(), absl::StrCat(st.message(),
                          " (all programs in one array must share the type of the programs "
                          "that tail-call through it)"));
    }
    return st;
  }
  detail::GraphSetTailCall(map_.id(), index, program.id(), program.name(), program.type());
  return absl::OkStatus();
}

absl::Status ProgramArray::Delete(uint32_t index) const {
  TETHER_RETURN_IF_ERROR(CheckIndex(map_, index, "delete"));
  int ret = sys::MapDeleteElem(map_.fd(), &index);
  if (ret < 0) return sys::ErrnoStatus(-ret, Describe(map_), absl::StrFormat("delete [%u]", index));
  detail::GraphDeleteTailCall(map_.id(), index);
  return absl::OkStatus();
}

absl::Status ProgramArray::Clear() const {
  if (!map_) return absl::FailedPreconditionError("program array: clear: the handle is empty");
  for (uint32_t i = 0; i < map_.max_entries(); ++i) {
    int ret = sys::MapDeleteElem(map_.fd(), &i);
    if (ret < 0 && ret != -ENOENT) {
      return sys::ErrnoStatus(-ret, Describe(map_), absl::StrFormat("clear: delete [%u]", i));
    }
    detail::GraphDeleteTailCall(map_.id(), i);
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::optional<uint32_t>> ProgramArray::Get(uint32_t index) const {
  TETHER_RETURN_IF_ERROR(CheckIndex(map_, index, "get"));
  uint32_t prog_id = 0;
  int ret = sys::MapLookupElem(map_.fd(), &index, &prog_id, 0);
  if (ret == -ENOENT) return absl::optional<uint32_t>();
  if (ret < 0) return sys::ErrnoStatus(-ret, Describe(map_), absl::StrFormat("get [%u]", index));
  return absl::optional<uint32_t>(prog_id);
}

}  // namespace tether
