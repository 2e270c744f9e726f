// Batch operations: many elements per bpf(2) call.
//
// BPF_MAP_*_BATCH moves up to a caller-chosen number of entries per
// syscall, which makes dumping or clearing a large hash map tens of times
// cheaper than walking it key by key. Kernels or map types without a batch
// command (EINVAL for an unknown command, ENOTSUPP for a map type that has
// no batch ops) are served by the per-key calls behind the same API, so
// callers never branch on support. Answers "this map type has no batch op"
// are remembered per process, so the fallback costs one probe, not one per
// call.
//
// Layout: keys are packed key_size apart, values value_buffer_size() apart
// (per-CPU maps: one 8-byte-rounded slot per possible CPU; see percpu.h).
#ifndef TETHER_MAP_BATCH_H_
#define TETHER_MAP_BATCH_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "tether/map.h"
#include "tether/percpu.h"

namespace tether {

// Where a batched walk of one map stands. Make one per walk; it holds the
// kernel's opaque batch token, or the last key when the walk runs per key.
class BatchCursor {
 public:
  BatchCursor() = default;
  explicit BatchCursor(const Map& map);

  // The last call reached the end of the map.
  bool done() const { return done_; }
  // True once the walk fell back to per-key calls.
  bool per_key() const { return per_key_; }
  // Starts over from the first key.
  void Reset() { started_ = done_ = false; }

 private:
  friend struct BatchAccess;
  std::vector<uint8_t> token_;
  std::vector<uint8_t> last_key_;
  bool started_ = false;
  bool done_ = false;
  bool per_key_ = false;
};

// Reads the next entries of a walk into `keys` and `values`; the batch
// size is keys.size() / key_size (values must hold as many values).
// Returns how many were read; when the map is exhausted cursor->done() turns
// true (the last batch may still carry entries). A hash bucket larger than
// the batch is ResourceExhausted: retry with a larger one.
//
// Batches reflect the map as it changes: an entry added or deleted during
// the walk may or may not be seen. In per-key mode a deleted current key
// restarts the walk, so entries may then be read twice.
absl::StatusOr<uint32_t> LookupBatch(const Map& map, BatchCursor* cursor,
                                     absl::Span<uint8_t> keys, absl::Span<uint8_t> values);
// As LookupBatch, and deletes what it returns.
absl::StatusOr<uint32_t> LookupAndDeleteBatch(const Map& map, BatchCursor* cursor,
                                              absl::Span<uint8_t> keys,
                                              absl::Span<uint8_t> values);
// Writes keys.size() / key_size entries. On failure *done (if given) is
// the number of entries written before the one that failed.
absl::Status UpdateBatch(const Map& map, absl::Span<const uint8_t> keys,
                         absl::Span<const uint8_t> values, UpdateFlag flags = UpdateFlag::kAny,
                         uint32_t* done = nullptr);
// Deletes the keys; stops at the first missing one (NotFound), as the
// kernel does, with *done the number deleted.
absl::Status DeleteBatch(const Map& map, absl::Span<const uint8_t> keys, uint32_t* done = nullptr);

// --- typed forms ------------------------------------------------------------

namespace detail {
template <typename T>
absl::Span<uint8_t> AsBytes(std::vector<T>& v) {
  return absl::MakeSpan(reinterpret_cast<uint8_t*>(v.data()), v.size() * sizeof(T));
}
template <typename T>
absl::Span<const uint8_t> AsBytes(absl::Span<const T> v) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(T));
}
absl::Status BatchTypeError(const Map& map, absl::string_view op, size_t key, size_t value);
template <typename T>
absl::Span<uint8_t> AsMutableBytes(absl::Span<T> v) {
  return absl::MakeSpan(reinterpret_cast<uint8_t*>(v.data()), v.size() * sizeof(T));
}
template <typename K, typename V>
absl::Status CheckBatchTypes(const Map& map, absl::string_view op, bool per_cpu) {
  if (!map) return NullMapError(op);
  size_t value = per_cpu ? kPerCpuStride<V> * PossibleCpus() : sizeof(V);
  if (IsPerCpuMapType(map.type()) != per_cpu || sizeof(K) != map.key_size() ||
      value != map.value_buffer_size())
    return BatchTypeError(map, op, sizeof(K), value);
  return absl::OkStatus();
}
}  // namespace detail

enum class BatchMode { kLookup, kLookupAndDelete };

// Walks the whole map in batches of up to `batch_size`, calling
// fn(absl::Span<const K> keys, absl::Span<const V> values) per batch. The
// buffers are allocated once per walk. A hash bucket larger than the batch
// grows the batch instead of failing. Not for per-CPU maps (use
// LookupBatch with a PerCpuBatch<V>, below).
template <MapPod K, MapPod V, typename Fn>
absl::Status ForEachBatch(const Map& map, uint32_t batch_size, Fn&& fn,
                          BatchMode mode = BatchMode::kLookup) {
  if (!map) return detail::NullMapError("for_each_batch");
  if (sizeof(K) != map.key_size() || sizeof(V) != map.value_buffer_size())
    return detail::BatchTypeError(map, "for_each_batch", sizeof(K), sizeof(V));
  if (batch_size == 0) batch_size = 1;
  std::vector<K> keys(batch_size);
  std::vector<V> values(batch_size);
  BatchCursor cursor(map);
  while (!cursor.done()) {
    auto n = mode == BatchMode::kLookup
                 ? LookupBatch(map, &cursor, detail::AsBytes(keys), detail::AsBytes(values))
                 : LookupAndDeleteBatch(map, &cursor, detail::AsBytes(keys), detail::AsBytes(values));
    if (!n.ok()) {
      if (n.status().code() == absl::StatusCode::kResourceExhausted && keys.size() < (1u << 20)) {
        keys.resize(keys.size() * 2);
        values.resize(values.size() * 2);
        continue;
      }
      return n.status();
    }
    if (*n > 0) fn(absl::MakeConstSpan(keys.data(), *n), absl::MakeConstSpan(values.data(), *n));
  }
  return absl::OkStatus();
}

template <MapPod K, MapPod V>
absl::Status UpdateBatch(const Map& map, absl::Span<const K> keys, absl::Span<const V> values,
                         UpdateFlag flags = UpdateFlag::kAny, uint32_t* done = nullptr) {
  if (absl::Status st = detail::CheckBatchTypes<K, V>(map, "update_batch", false); !st.ok()) return st;
  return UpdateBatch(map, detail::AsBytes(keys), detail::AsBytes(values), flags, done);
}

// --- typed batches: keys as K, values as V or per-CPU V ------------------------
//
// As the byte forms, with the buffers typed: as many values as keys. A map
// whose sizes differ from K and V is InvalidArgument (a comparison per
// call); a per-CPU map takes a PerCpuBatch<V> (percpu.h), any other map a
// Span<V>, so a per-CPU batch needs no reinterpret_cast:
//
//   std::vector<uint32_t> keys(64);
//   PerCpuBatch<uint64_t> values(64);
//   BatchCursor cursor(map);
//   while (!cursor.done()) {
//     absl::StatusOr<uint32_t> n = LookupBatch(map, &cursor, absl::MakeSpan(keys), &values);
//     if (!n.ok()) return n.status();
//     for (uint32_t i = 0; i < *n; ++i) Use(keys[i], values[i].Sum());
//   }

template <MapPod K, MapPod V>
absl::StatusOr<uint32_t> LookupBatch(const Map& map, BatchCursor* cursor, absl::Span<K> keys,
                                     absl::Span<V> values) {
  if (absl::Status st = detail::CheckBatchTypes<K, V>(map, "lookup_batch", false); !st.ok()) return st;
  return LookupBatch(map, cursor, detail::AsMutableBytes(keys), detail::AsMutableBytes(values));
}
template <MapPod K, MapPod V>
absl::StatusOr<uint32_t> LookupBatch(const Map& map, BatchCursor* cursor, absl::Span<K> keys,
                                     PerCpuBatch<V>* values) {
  if (absl::Status st = detail::CheckBatchTypes<K, V>(map, "lookup_batch", true); !st.ok()) return st;
  return LookupBatch(map, cursor, detail::AsMutableBytes(keys), values->bytes());
}
template <MapPod K, MapPod V>
absl::StatusOr<uint32_t> LookupAndDeleteBatch(const Map& map, BatchCursor* cursor,
                                              absl::Span<K> keys, absl::Span<V> values) {
  if (absl::Status st = detail::CheckBatchTypes<K, V>(map, "lookup_and_delete_batch", false); !st.ok())
    return st;
  return LookupAndDeleteBatch(map, cursor, detail::AsMutableBytes(keys), detail::AsMutableBytes(values));
}
template <MapPod K, MapPod V>
absl::StatusOr<uint32_t> LookupAndDeleteBatch(const Map& map, BatchCursor* cursor,
                                              absl::Span<K> keys, PerCpuBatch<V>* values) {
  if (absl::Status st = detail::CheckBatchTypes<K, V>(map, "lookup_and_delete_batch", true); !st.ok())
    return st;
  return LookupAndDeleteBatch(map, cursor, detail::AsMutableBytes(keys), values->bytes());
}
// Writes keys.size() entries of a per-CPU map; values.size() must match.
template <MapPod K, MapPod V>
absl::Status UpdateBatch(const Map& map, absl::Span<const K> keys, const PerCpuBatch<V>& values,
                         UpdateFlag flags = UpdateFlag::kAny, uint32_t* done = nullptr) {
  if (absl::Status st = detail::CheckBatchTypes<K, V>(map, "update_batch", true); !st.ok()) return st;
  return UpdateBatch(map, detail::AsBytes(keys), values.bytes(), flags, done);
}

template <MapPod K>
absl::Status DeleteBatch(const Map& map, absl::Span<const K> keys, uint32_t* done = nullptr) {
  if (!map) return detail::NullMapError("delete_batch");
  if (sizeof(K) != map.key_size())
    return detail::BatchTypeError(map, "delete_batch", sizeof(K), map.value_buffer_size());
  return DeleteBatch(map, detail::AsBytes(keys), done);
}

}  // namespace tether

#endif  // TETHER_MAP_BATCH_H_
