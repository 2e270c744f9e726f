#include "tether/map_in_map.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "graph/graph_internal.h"
#include "sys/bpf.h"

namespace tether {
namespace {

std::string Describe(const Map& map) {
  return absl::StrFormat("map '%s' (id %u)", map.name(), map.id());
}

std::string KeyText(absl::Span<const uint8_t> key) {
  if (key.size() == 4) {
    uint32_t k;
    memcpy(&k, key.data(), 4);
    return absl::StrCat(k);
  }
  return absl::StrCat("0x", absl::BytesToHexString(absl::string_view(
                                 reinterpret_cast<const char*>(key.data()), key.size())));
}

// The graph's slot label for a key; see HashOfMaps.
uint32_t SlotOf(absl::Span<const uint8_t> key) {
  if (key.size() <= 4) {
    uint32_t k = 0;
    memcpy(&k, key.data(), key.size());
    return k;
  }
  uint32_t h = 2166136261u;  // FNV-1a
  for (uint8_t b : key) h = (h ^ b) * 16777619u;
  return h;
}

absl::Status CheckOuter(const Map& map, uint32_t type, absl::string_view what) {
  if (!map) return absl::InvalidArgumentError(absl::StrCat(what, ": the map handle is empty"));
  if (map.type() != type) {
    return absl::InvalidArgumentError(absl::StrFormat("%s is a %s, not a %s", Describe(map),
                                                      MapTypeName(map.type()), MapTypeName(type)));
  }
  return absl::OkStatus();
}

absl::Status CheckKey(const Map& outer, absl::Span<const uint8_t> key, absl::string_view op) {
  if (!outer) return detail::NullMapError(op);
  if (key.size() != outer.key_size()) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: %s: key is %u bytes, the map's key_size is %u",
                                                      Describe(outer), op, key.size(), outer.key_size()));
  }
  return absl::OkStatus();
}

absl::Status SetInner(const Map& outer, absl::Span<const uint8_t> key, const Map& inner,
                      uint64_t flags) {
  TETHER_RETURN_IF_ERROR(CheckKey(outer, key, "set"));
  if (!inner) {
    return absl::InvalidArgumentError(absl::StrCat(Describe(outer), ": set [", KeyText(key),
                                                   "]: the inner map handle is empty"));
  }
  uint32_t fd = static_cast<uint32_t>(inner.fd());
  int ret = sys::MapUpdateElem(outer.fd(), key.data(), &fd, flags);
  if (ret < 0) {
    absl::Status st = sys::ErrnoStatus(-ret, Describe(outer),
                          absl::StrFormat("set [%s] = map '%s' (id %u)", KeyText(key), inner.name(),
                                          inner.id()));
    if (ret == -EINVAL) {
      return absl::Status(st.code(), absl::StrCat(st.message(),
                          " (the inner map must match the outer map's template: type, key and "
                          "value size, flags, and max_entries unless the template has "
                          "BPF_F_INNER_MAP)"));
    }
    return st;
  }
  detail::GraphSetInnerMap(outer.id(), SlotOf(key), inner.id());
  return absl::OkStatus();
}

absl::Status DeleteInner(const Map& outer, absl::Span<const uint8_t> key) {
  TETHER_RETURN_IF_ERROR(CheckKey(outer, key, "delete"));
  int ret = sys::MapDeleteElem(outer.fd(), key.data());
  if (ret < 0) {
    return sys::ErrnoStatus(-ret, Describe(outer), absl::StrFormat("delete [%s]", KeyText(key)));
  }
  detail::GraphDeleteInnerMap(outer.id(), SlotOf(key));
  return absl::OkStatus();
}

absl::StatusOr<absl::optional<uint32_t>> GetInner(const Map& outer, absl::Span<const uint8_t> key) {
  TETHER_RETURN_IF_ERROR(CheckKey(outer, key, "get"));
  uint32_t id = 0;
  int ret = sys::MapLookupElem(outer.fd(), key.data(), &id, 0);
  if (ret == -ENOENT) return absl::optional<uint32_t>();
  if (ret < 0) return sys::ErrnoStatus(-ret, Describe(outer), absl::StrFormat("get [%s]", KeyText(key)));
  return absl::optional<uint32_t>(id);
}

absl::StatusOr<Map> GetInnerMap(const Map& outer, absl::Span<const uint8_t> key) {
  auto id = GetInner(outer, key);
  if (!id.ok()) return id.status();
  if (!id->has_value()) {
    return absl::NotFoundError(absl::StrFormat("%s: get [%s]: the slot is empty", Describe(outer),
                                               KeyText(key)));
  }
  return Map::FromId(**id);
}

absl::StatusOr<Map> CreateOuter(const std::string& name, uint32_t type, uint32_t key_size,
                                uint32_t max_entries, const Map& inner_template, uint32_t flags) {
  MapOptions o;
  o.type = type;
  o.key_size = key_size;
  o.value_size = 4;
  o.max_entries = max_entries;
  o.flags = flags;
  o.name = name;
  o.inner_map = &inner_template;
  return Map::Create(o);
}

absl::Span<const uint8_t> IndexBytes(const uint32_t& index) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&index), 4);
}

}  // namespace

absl::StatusOr<ArrayOfMaps> ArrayOfMaps::Create(const std::string& name, uint32_t max_entries,
                                                const Map& inner_template, uint32_t flags) {
  auto map = CreateOuter(name, BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, max_entries, inner_template, flags);
  if (!map.ok()) return map.status();
  return ArrayOfMaps(std::move(*map));
}

absl::StatusOr<ArrayOfMaps> ArrayOfMaps::FromMap(Map map) {
  TETHER_RETURN_IF_ERROR(CheckOuter(map, BPF_MAP_TYPE_ARRAY_OF_MAPS, "array of maps"));
  return ArrayOfMaps(std::move(map));
}

absl::Status ArrayOfMaps::Set(uint32_t index, const Map& inner) const {
  return SetInner(map_, IndexBytes(index), inner, BPF_ANY);
}
absl::Status ArrayOfMaps::Delete(uint32_t index) const { return DeleteInner(map_, IndexBytes(index)); }
absl::StatusOr<absl::optional<uint32_t>> ArrayOfMaps::Get(uint32_t index) const {
  return GetInner(map_, IndexBytes(index));
}
absl::StatusOr<Map> ArrayOfMaps::GetMap(uint32_t index) const {
  return GetInnerMap(map_, IndexBytes(index));
}

absl::StatusOr<HashOfMaps> HashOfMaps::Create(const std::string& name, uint32_t key_size,
                                              uint32_t max_entries, const Map& inner_template,
                                              uint32_t flags) {
  auto map = CreateOuter(name, BPF_MAP_TYPE_HASH_OF_MAPS, key_size, max_entries, inner_template, flags);
  if (!map.ok()) return map.status();
  return HashOfMaps(std::move(*map));
}

absl::StatusOr<HashOfMaps> HashOfMaps::FromMap(Map map) {
  TETHER_RETURN_IF_ERROR(CheckOuter(map, BPF_MAP_TYPE_HASH_OF_MAPS, "hash of maps"));
  return HashOfMaps(std::move(map));
}

absl::Status HashOfMaps::Set(absl::Span<const uint8_t> key, const Map& inner, UpdateFlag flags) const {
  return SetInner(map_, key, inner, static_cast<uint64_t>(flags));
}
absl::Status HashOfMaps::Delete(absl::Span<const uint8_t> key) const { return DeleteInner(map_, key); }
absl::StatusOr<absl::optional<uint32_t>> HashOfMaps::Get(absl::Span<const uint8_t> key) const {
  return GetInner(map_, key);
}
absl::StatusOr<Map> HashOfMaps::GetMap(absl::Span<const uint8_t> key) const {
  return GetInnerMap(map_, key);
}

}  // namespace tether
