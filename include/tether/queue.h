// Queue and stack maps (BPF_MAP_TYPE_QUEUE / BPF_MAP_TYPE_STACK): keyless
// maps whose element calls take no key. Sizes are checked once at Bind; each call after that
// is one syscall.
//
// A default-constructed or moved-from wrapper is empty, like the Map it
// holds: map() is an empty Map, and every operation returns an error
// naming the operation and "the handle is empty" (handle.h).
#ifndef TETHER_QUEUE_H_
#define TETHER_QUEUE_H_

#include <cerrno>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "tether/map.h"
#include "tether/typed_map.h"

namespace tether {

namespace detail {
inline absl::Status CheckKeyless(const Map& map, uint32_t want_type_a, uint32_t want_type_b,
                                 size_t value_size) {
  if (!map) return NullMapError("bind");
  if (map.type() != want_type_a && map.type() != want_type_b) {
    return absl::InvalidArgumentError(absl::StrFormat("map '%s' (id %u): bind: a %s, not a %s",
                                                      map.name(), map.id(), MapTypeName(map.type()),
                                                      MapTypeName(want_type_a)));
  }
  if (map.value_size() != value_size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "map '%s' (id %u): bind: value is %u bytes, the map's value_size is %u", map.name(),
        map.id(), value_size, map.value_size()));
  }
  return absl::OkStatus();
}
}  // namespace detail

// FIFO for a queue map, LIFO for a stack map; the kernel decides.
template <MapPod V>
class Queue {
 public:
  Queue() = default;
  static absl::StatusOr<Queue> Bind(Map map) {
    absl::Status st = detail::CheckKeyless(map, BPF_MAP_TYPE_QUEUE, BPF_MAP_TYPE_STACK, sizeof(V));
    if (!st.ok()) return st;
    return Queue(std::move(map));
  }
  // Creates a queue (or, with stack = true, a stack) of `max_entries`.
  static absl::StatusOr<Queue> Create(const std::string& name, uint32_t max_entries,
                                      bool stack = false) {
    MapOptions o;
    o.type = stack ? BPF_MAP_TYPE_STACK : BPF_MAP_TYPE_QUEUE;
    o.value_size = sizeof(V);
    o.max_entries = max_entries;
    o.name = name;
    auto m = Map::Create(o);
    if (!m.ok()) return m.status();
    return Queue(std::move(*m));
  }

  // A full map refuses with ResourceExhausted (E2BIG), unless
  // `overwrite_oldest`, which drops the oldest element to make room.
  absl::Status Push(const V& value, bool overwrite_oldest = false) const {
    return Result("push", detail::MapRaw::Update(map_, nullptr, &value,
                                                 overwrite_oldest ? BPF_EXIST : BPF_ANY));
  }
  // NotFound when empty.
  absl::Status Pop(V* value) const {
    return Result("pop", detail::MapRaw::LookupAndDelete(map_, nullptr, value));
  }
  absl::Status Peek(V* value) const {
    return Result("peek", detail::MapRaw::Lookup(map_, nullptr, value, 0));
  }
  // Pop without a Status for the common "empty" answer: false when empty.
  absl::StatusOr<bool> TryPop(V* value) const {
    int ret = detail::MapRaw::LookupAndDelete(map_, nullptr, value);
    if (__builtin_expect(ret == 0, 1)) return true;
    if (ret == -ENOENT) return false;
    return detail::MapOpError(map_.object(), "pop", ret);
  }

  const Map& map() const { return map_; }
  explicit operator bool() const { return static_cast<bool>(map_); }

 private:
  explicit Queue(Map map) : map_(std::move(map)) {}
  absl::Status Result(absl::string_view op, int ret) const {
    if (__builtin_expect(ret == 0, 1)) return absl::OkStatus();
    return detail::MapOpError(map_.object(), op, ret);
  }
  Map map_;
};

}  // namespace tether

#endif  // TETHER_QUEUE_H_
