// The bloom filter map (BPF_MAP_TYPE_BLOOM_FILTER): keyless; Add inserts a
// value, Test answers "maybe present" or "certainly absent". Sizes are
// checked once at Bind.
//
// A default-constructed or moved-from wrapper is empty, like the Map it
// holds: map() is an empty Map, and every operation returns an error
// naming the operation and "the handle is empty" (handle.h).
#ifndef TETHER_BLOOM_FILTER_H_
#define TETHER_BLOOM_FILTER_H_

#include <cerrno>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tether/map.h"
#include "tether/queue.h"
#include "tether/typed_map.h"

namespace tether {

// A bloom filter: Test answers "maybe present" or "certainly absent".
template <MapPod V>
class BloomFilter {
 public:
  BloomFilter() = default;
  static absl::StatusOr<BloomFilter> Bind(Map map) {
    absl::Status st =
        detail::CheckKeyless(map, BPF_MAP_TYPE_BLOOM_FILTER, BPF_MAP_TYPE_BLOOM_FILTER, sizeof(V));
    if (!st.ok()) return st;
    return BloomFilter(std::move(map));
  }
  // `hashes` (1-15) goes to map_extra; 0 lets the kernel pick (5).
  static absl::StatusOr<BloomFilter> Create(const std::string& name, uint32_t max_entries,
                                            uint32_t hashes = 0) {
    MapOptions o;
    o.type = BPF_MAP_TYPE_BLOOM_FILTER;
    o.value_size = sizeof(V);
    o.max_entries = max_entries;
    o.map_extra = hashes;
    o.name = name;
    auto m = Map::Create(o);
    if (!m.ok()) return m.status();
    return BloomFilter(std::move(*m));
  }

  absl::Status Add(const V& value) const {
    int ret = detail::MapRaw::Update(map_, nullptr, &value, BPF_ANY);
    if (__builtin_expect(ret == 0, 1)) return absl::OkStatus();
    return detail::MapOpError(map_.object(), "add", ret);
  }
  // true: possibly added; false: certainly never added.
  absl::StatusOr<bool> Test(const V& value) const {
    // The kernel reads the value to test from the value pointer.
    V probe = value;
    int ret = detail::MapRaw::Lookup(map_, nullptr, &probe, 0);
    if (ret == 0) return true;
    if (ret == -ENOENT) return false;
    return detail::MapOpError(map_.object(), "test", ret);
  }

  const Map& map() const { return map_; }
  explicit operator bool() const { return static_cast<bool>(map_); }

 private:
  explicit BloomFilter(Map map) : map_(std::move(map)) {}
  Map map_;
};

}  // namespace tether

#endif  // TETHER_BLOOM_FILTER_H_
