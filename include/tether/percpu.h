// Per-CPU values: what a lookup on a per-CPU map reads and an update writes.
//
// The kernel lays one slot per *possible* CPU (not online), each slot the
// value rounded up to 8 bytes. PerCpuValues<V> owns such a buffer, sized
// once and reused, so per-CPU lookups allocate nothing after the first.
// PerCpuSpan<V> reads the same layout in memory someone else owns (a batch
// lookup's value array, say).
//
// A default-constructed or moved-from wrapper is empty, like the Map it
// holds: map() is an empty Map, and every operation returns an error
// naming the operation and "the handle is empty" (handle.h).
#ifndef TETHER_PERCPU_H_
#define TETHER_PERCPU_H_

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "tether/map.h"
#include "tether/typed_map.h"

namespace tether {

// Bytes between two CPUs' copies of a V.
template <typename V>
inline constexpr size_t kPerCpuStride = (sizeof(V) + 7) & ~size_t{7};

// A read-only view of per-CPU values in the kernel's layout.
template <MapPod V>
class PerCpuSpan {
 public:
  static constexpr size_t kStride = kPerCpuStride<V>;

  PerCpuSpan(absl::Span<const uint8_t> bytes, uint32_t cpus) : data_(bytes.data()), cpus_(cpus) {}
  uint32_t cpus() const { return cpus_; }
  // memcpy, not a cast: the slots are 8-aligned but V may want more, and
  // the bytes were written by the kernel, not as V objects.
  V operator[](uint32_t cpu) const {
    V v;
    memcpy(&v, data_ + size_t{cpu} * kStride, sizeof(V));
    return v;
  }
  // Folds every CPU's value: acc = fn(acc, value).
  template <typename Fn>
  V Reduce(V init, Fn&& fn) const {
    for (uint32_t c = 0; c < cpus_; ++c) init = fn(init, (*this)[c]);
    return init;
  }
  // The total over all CPUs, for counters.
  V Sum() const
    requires std::is_arithmetic_v<V>
  {
    return Reduce(V{}, [](V a, V b) { return static_cast<V>(a + b); });
  }

 private:
  const uint8_t* data_;
  uint32_t cpus_;
};

// Sums the per-CPU counters in `bytes`, laid out as the kernel does.
template <typename V>
  requires std::is_arithmetic_v<V>
V SumPerCpu(absl::Span<const uint8_t> bytes, uint32_t cpus = PossibleCpus()) {
  return PerCpuSpan<V>(bytes, cpus).Sum();
}

// An owned buffer of per-CPU values, ready to pass to a per-CPU map.
template <MapPod V>
class PerCpuValues {
 public:
  static constexpr size_t kStride = kPerCpuStride<V>;

  PerCpuValues() : PerCpuValues(PossibleCpus()) {}
  explicit PerCpuValues(uint32_t cpus)
      : cpus_(cpus), storage_((kStride * cpus + 7) / 8, 0) {}

  uint32_t cpus() const { return cpus_; }
  V operator[](uint32_t cpu) const { return view()[cpu]; }
  void Set(uint32_t cpu, const V& v) { memcpy(bytes().data() + size_t{cpu} * kStride, &v, sizeof(V)); }
  // Every CPU to the same value.
  void Fill(const V& v) {
    for (uint32_t c = 0; c < cpus_; ++c) Set(c, v);
  }
  PerCpuSpan<V> view() const { return PerCpuSpan<V>(bytes(), cpus_); }
  template <typename Fn>
  V Reduce(V init, Fn&& fn) const {
    return view().Reduce(init, std::forward<Fn>(fn));
  }
  V Sum() const
    requires std::is_arithmetic_v<V>
  {
    return view().Sum();
  }

  absl::Span<uint8_t> bytes() {
    return absl::MakeSpan(reinterpret_cast<uint8_t*>(storage_.data()), kStride * cpus_);
  }
  absl::Span<const uint8_t> bytes() const {
    return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(storage_.data()), kStride * cpus_);
  }

 private:
  uint32_t cpus_;
  std::vector<uint64_t> storage_;  // uint64_t: the 8-byte alignment of the slots
};

// Per-CPU values for many entries at once, in the layout batch calls on a
// per-CPU map read and write: entry i's slots start at i * cpus * kStride.
// The typed LookupBatch / UpdateBatch in map_batch.h take one, so per-CPU
// batches need no byte spans:
//
//   PerCpuBatch<uint64_t> values(64);
//   std::vector<uint32_t> keys(64);
//   auto n = LookupBatch(map, &cursor, absl::MakeSpan(keys), &values);
//   uint64_t total = values[0].Sum();
template <MapPod V>
class PerCpuBatch {
 public:
  static constexpr size_t kStride = kPerCpuStride<V>;

  explicit PerCpuBatch(size_t entries = 0) : PerCpuBatch(entries, PossibleCpus()) {}
  PerCpuBatch(size_t entries, uint32_t cpus) : cpus_(cpus) { Resize(entries); }

  size_t size() const { return entries_; }
  uint32_t cpus() const { return cpus_; }
  // Bytes per entry: what value_buffer_size() is for a per-CPU map of V.
  size_t entry_bytes() const { return kStride * cpus_; }
  void Resize(size_t entries) {
    entries_ = entries;
    storage_.assign((entry_bytes() * entries + 7) / 8, 0);
  }
  // Entry i's values, one per CPU.
  PerCpuSpan<V> operator[](size_t i) const {
    return PerCpuSpan<V>(bytes().subspan(i * entry_bytes(), entry_bytes()), cpus_);
  }
  void Set(size_t i, uint32_t cpu, const V& v) {
    memcpy(bytes().data() + i * entry_bytes() + size_t{cpu} * kStride, &v, sizeof(V));
  }
  // Entry i to `v` on every CPU.
  void Fill(size_t i, const V& v) {
    for (uint32_t c = 0; c < cpus_; ++c) Set(i, c, v);
  }
  absl::Span<uint8_t> bytes() {
    return absl::MakeSpan(reinterpret_cast<uint8_t*>(storage_.data()), entry_bytes() * entries_);
  }
  absl::Span<const uint8_t> bytes() const {
    return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(storage_.data()),
                               entry_bytes() * entries_);
  }

 private:
  uint32_t cpus_;
  size_t entries_ = 0;
  std::vector<uint64_t> storage_;  // uint64_t: the 8-byte alignment of the slots
};

// A per-CPU map bound to K and V, sizes checked once as in TypedMap.
template <MapPod K, MapPod V>
class PerCpuMap {
 public:
  PerCpuMap() = default;

  static absl::StatusOr<PerCpuMap> Bind(Map map) {
    if (!map) return detail::NullMapError("bind");
    if (!IsPerCpuMapType(map.type())) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "map '%s' (id %u): bind: %s is not per-CPU; use TypedMap<K, V>", map.name(), map.id(),
          MapTypeName(map.type())));
    }
    if (map.key_size() != sizeof(K) || map.value_size() != sizeof(V)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "map '%s' (id %u): bind: key is %u bytes and value %u bytes, but the map has "
          "key_size %u and value_size %u",
          map.name(), map.id(), sizeof(K), sizeof(V), map.key_size(), map.value_size()));
    }
    return PerCpuMap(std::move(map));
  }

  const Map& map() const { return map_; }
  explicit operator bool() const { return static_cast<bool>(map_); }
  // A buffer of the right shape for Lookup and Update; make one and reuse it.
  PerCpuValues<V> MakeValues() const { return PerCpuValues<V>(PossibleCpus()); }

  // `values` must come from MakeValues() (or hold PossibleCpus() slots).
  absl::Status Lookup(const K& key, PerCpuValues<V>* values) const {
    return Result("lookup", detail::MapRaw::Lookup(map_, &key, values->bytes().data(), 0));
  }
  absl::Status Update(const K& key, const PerCpuValues<V>& values,
                      UpdateFlag flags = UpdateFlag::kAny) const {
    return Result("update", detail::MapRaw::Update(map_, &key, values.bytes().data(),
                                                   static_cast<uint64_t>(flags)));
  }
  absl::Status Delete(const K& key) const {
    return Result("delete", detail::MapRaw::Delete(map_, &key));
  }
  // Keys that would narrow to K do not compile (see TypedMap).
  template <typename A> requires detail::Narrows<A, K>
  absl::Status Lookup(const A& key, PerCpuValues<V>* values) const = delete;
  template <typename A> requires detail::Narrows<A, K>
  absl::Status Update(const A& key, const PerCpuValues<V>& values,
                      UpdateFlag flags = UpdateFlag::kAny) const = delete;
  template <typename A> requires detail::Narrows<A, K>
  absl::Status Delete(const A& key) const = delete;
  // The sum over CPUs of the value at `key`; `scratch` receives the slots.
  absl::StatusOr<V> Sum(const K& key, PerCpuValues<V>* scratch) const
    requires std::is_arithmetic_v<V>
  {
    absl::Status st = Lookup(key, scratch);
    if (!st.ok()) return st;
    return scratch->Sum();
  }
  // See TypedMap::ForEachKey for the semantics under concurrent deletion.
  template <typename Fn>
  absl::Status ForEachKey(Fn&& fn) const {
    return detail::ForEachKeyOf<K>(map_, std::forward<Fn>(fn));
  }

 private:
  explicit PerCpuMap(Map map) : map_(std::move(map)) {}
  absl::Status Result(absl::string_view op, int ret) const {
    if (__builtin_expect(ret == 0, 1)) return absl::OkStatus();
    return detail::MapOpError(map_.object(), op, ret);
  }

  Map map_;
};

}  // namespace tether

#endif  // TETHER_PERCPU_H_
