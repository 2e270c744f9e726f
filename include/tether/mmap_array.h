// MmapArray<V>: the values of a BPF_F_MMAPABLE array, mapped into this
// process.
//
// Reads and writes are plain memory accesses: no syscall, no copy. This is
// how global data (.bss/.data) is best read and written, and how a
// program's counters are best polled. The kernel lays values out
// round_up(value_size, 8) bytes apart from the start of the mapping.
//
// BPF programs see the same memory concurrently; for values they update,
// use Atomic() (or your own synchronisation in the value).
#ifndef TETHER_MMAP_ARRAY_H_
#define TETHER_MMAP_ARRAY_H_

#include <atomic>
#include <cstdint>
#include <cstring>
#include <new>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "tether/map.h"

namespace tether {

namespace detail {

// The untyped mapping; MmapArray<V> adds the type.
class MmapRegion {
 public:
  MmapRegion() = default;
  // A frozen map can only be mapped read-only, and freezing is refused
  // while a writable mapping exists.
  static absl::StatusOr<MmapRegion> Map(const ::tether::Map& map, bool writable, size_t value_size);
  MmapRegion(MmapRegion&& other) noexcept;
  MmapRegion& operator=(MmapRegion&& other) noexcept;
  MmapRegion(const MmapRegion&) = delete;
  MmapRegion& operator=(const MmapRegion&) = delete;
  ~MmapRegion();

  uint8_t* base() const { return base_; }
  size_t length() const { return length_; }
  size_t stride() const { return stride_; }
  uint32_t count() const { return count_; }
  bool writable() const { return writable_; }
  const ::tether::Map& map() const { return map_; }
  absl::Status OutOfRange(uint32_t index) const;

 private:
  void Unmap();
  ::tether::Map map_;  // keeps the map alive as long as the mapping
  uint8_t* base_ = nullptr;
  size_t length_ = 0;
  size_t stride_ = 0;
  uint32_t count_ = 0;
  bool writable_ = false;
};

}  // namespace detail

template <MapPod V>
class MmapArray {
 public:
  static constexpr size_t kStride = (sizeof(V) + 7) & ~size_t{7};
  static_assert(alignof(V) <= 8, "mmapable array slots are 8-byte aligned");

  MmapArray() = default;
  // `map` must be a BPF_MAP_TYPE_ARRAY created with BPF_F_MMAPABLE and a
  // value_size of sizeof(V).
  static absl::StatusOr<MmapArray> Create(const Map& map, bool writable = true) {
    auto region = detail::MmapRegion::Map(map, writable, sizeof(V));
    if (!region.ok()) return region.status();
    return MmapArray(std::move(*region));
  }

  uint32_t size() const { return region_.count(); }
  bool writable() const { return region_.writable(); }
  const Map& map() const { return region_.map(); }

  // An empty (default-constructed or moved-from) MmapArray has size() 0,
  // an empty map(), and Get / Set answer OutOfRange; operator[] is
  // unchecked, so never use it on one.
  // Unchecked: the fast path. The slot holds a V (the kernel zero-fills,
  // and V is trivially copyable), so it is used in place.
  V& operator[](uint32_t index) { return *Slot(index); }
  const V& operator[](uint32_t index) const { return *Slot(index); }
  // Checked copies.
  absl::StatusOr<V> Get(uint32_t index) const {
    if (index >= size()) return region_.OutOfRange(index);
    return *Slot(index);
  }
  absl::Status Set(uint32_t index, const V& value) {
    if (index >= size()) return region_.OutOfRange(index);
    *Slot(index) = value;
    return absl::OkStatus();
  }
  // An atomic view of an integral field shared with BPF programs, e.g.
  // arr.Atomic(&arr[3].hits).fetch_add(1).
  template <typename T>
  static std::atomic_ref<T> Atomic(T* field) {
    return std::atomic_ref<T>(*field);
  }

 private:
  explicit MmapArray(detail::MmapRegion region) : region_(std::move(region)) {}
  V* Slot(uint32_t index) const {
    return std::launder(reinterpret_cast<V*>(region_.base() + size_t{index} * kStride));
  }
  detail::MmapRegion region_;
};

}  // namespace tether

#endif  // TETHER_MMAP_ARRAY_H_
