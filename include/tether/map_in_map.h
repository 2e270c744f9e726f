// ArrayOfMaps and HashOfMaps: outer maps whose values are other maps.
//
// User space stores an inner map by fd and reads back its id. Every Set
// and Delete also goes to the object graph as an outer -> inner edge,
// because while the outer map holds an inner map, the inner map lives on
// even when its last handle here is gone.
//
// Every inner map must match the template given at creation (type, key
// and value size, flags; max_entries too unless the template was created
// with BPF_F_INNER_MAP).
//
// A default-constructed or moved-from wrapper is empty, like the Map it
// holds: map() is an empty Map, and every operation returns an error
// naming the operation and "the handle is empty" (handle.h).
#ifndef TETHER_MAP_IN_MAP_H_
#define TETHER_MAP_IN_MAP_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"
#include "tether/map.h"

namespace tether {

class ArrayOfMaps {
 public:
  ArrayOfMaps() = default;

  static absl::StatusOr<ArrayOfMaps> Create(const std::string& name, uint32_t max_entries,
                                            const Map& inner_template, uint32_t flags = 0);
  // Wraps an existing array of maps.
  static absl::StatusOr<ArrayOfMaps> FromMap(Map map);

  // Stores `inner` at `index`. InvalidArgument if it does not match the
  // template.
  absl::Status Set(uint32_t index, const Map& inner) const;
  // Empties `index`. NotFound if it was empty.
  absl::Status Delete(uint32_t index) const;
  // The id of the inner map at `index`, or nullopt if empty.
  absl::StatusOr<absl::optional<uint32_t>> Get(uint32_t index) const;
  // A new handle on the inner map at `index` (NotFound if empty).
  absl::StatusOr<Map> GetMap(uint32_t index) const;

  const Map& map() const { return map_; }
  explicit operator bool() const { return static_cast<bool>(map_); }

 private:
  explicit ArrayOfMaps(Map map) : map_(std::move(map)) {}
  Map map_;
};

class HashOfMaps {
 public:
  HashOfMaps() = default;

  static absl::StatusOr<HashOfMaps> Create(const std::string& name, uint32_t key_size,
                                           uint32_t max_entries, const Map& inner_template,
                                           uint32_t flags = 0);
  static absl::StatusOr<HashOfMaps> FromMap(Map map);

  // The graph labels each edge with a 32-bit slot: the key itself when it
  // fits in 4 bytes, else a hash of its bytes (two keys may then share a
  // label, which only affects how the graph prints them).
  absl::Status Set(absl::Span<const uint8_t> key, const Map& inner,
                   UpdateFlag flags = UpdateFlag::kAny) const;
  absl::Status Delete(absl::Span<const uint8_t> key) const;
  absl::StatusOr<absl::optional<uint32_t>> Get(absl::Span<const uint8_t> key) const;
  absl::StatusOr<Map> GetMap(absl::Span<const uint8_t> key) const;

  template <MapPod K>
  absl::Status Set(const K& key, const Map& inner, UpdateFlag flags = UpdateFlag::kAny) const {
    return Set(Bytes(key), inner, flags);
  }
  template <MapPod K>
  absl::Status Delete(const K& key) const {
    return Delete(Bytes(key));
  }
  template <MapPod K>
  absl::StatusOr<absl::optional<uint32_t>> Get(const K& key) const {
    return Get(Bytes(key));
  }
  template <MapPod K>
  absl::StatusOr<Map> GetMap(const K& key) const {
    return GetMap(Bytes(key));
  }

  const Map& map() const { return map_; }
  explicit operator bool() const { return static_cast<bool>(map_); }

 private:
  template <typename K>
  static absl::Span<const uint8_t> Bytes(const K& key) {
    return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&key), sizeof(K));
  }
  explicit HashOfMaps(Map map) : map_(std::move(map)) {}
  Map map_;
};

}  // namespace tether

#endif  // TETHER_MAP_IN_MAP_H_
