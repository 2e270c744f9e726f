#include "tether/mmap_array.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "sys/bpf.h"

namespace tether::detail {
namespace {
std::string Describe(const ::tether::Map& map) {
  return absl::StrFormat("map '%s' (id %u)", map.name(), map.id());
}
}  // namespace

absl::StatusOr<MmapRegion> MmapRegion::Map(const ::tether::Map& map, bool writable,
                                           size_t value_size) {
  if (!map) return NullMapError("mmap");
  if (map.type() != BPF_MAP_TYPE_ARRAY || !(map.flags() & BPF_F_MMAPABLE)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: mmap: needs an array created with BPF_F_MMAPABLE; this is a %s with flags 0x%x",
        Describe(map), MapTypeName(map.type()), map.flags()));
  }
  if (map.value_size() != value_size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: mmap: value is %u bytes, the map's value_size is %u", Describe(map), value_size,
        map.value_size()));
  }
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t stride = (value_size + 7) & ~size_t{7};
  size_t length = stride * map.max_entries();
  length = (length + page - 1) / page * page;
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  void* p = mmap(nullptr, length, prot, MAP_SHARED, map.fd(), 0);
  if (p == MAP_FAILED) {
    int err = errno;
    absl::Status st = sys::ErrnoStatus(err, Describe(map), writable ? "mmap (read-write)" : "mmap (read-only)");
    if (err == EPERM && writable) {
      return absl::Status(st.code(), absl::StrCat(st.message(),
                                                  " (a frozen map can only be mapped read-only)"));
    }
    return st;
  }
  MmapRegion r;
  r.map_ = map;
  r.base_ = static_cast<uint8_t*>(p);
  r.length_ = length;
  r.stride_ = stride;
  r.count_ = map.max_entries();
  r.writable_ = writable;
  return r;
}

MmapRegion::MmapRegion(MmapRegion&& o) noexcept
    : map_(std::move(o.map_)),
      base_(std::exchange(o.base_, nullptr)),
      length_(std::exchange(o.length_, 0)),
      stride_(o.stride_),
      count_(std::exchange(o.count_, 0)),
      writable_(o.writable_) {}

MmapRegion& MmapRegion::operator=(MmapRegion&& o) noexcept {
  if (this != &o) {
    Unmap();
    map_ = std::move(o.map_);
    base_ = std::exchange(o.base_, nullptr);
    length_ = std::exchange(o.length_, 0);
    stride_ = o.stride_;
    count_ = std::exchange(o.count_, 0);
    writable_ = o.writable_;
  }
  return *this;
}

MmapRegion::~MmapRegion() { Unmap(); }

void MmapRegion::Unmap() {
  if (base_) munmap(base_, length_);
  base_ = nullptr;
}

absl::Status MmapRegion::OutOfRange(uint32_t index) const {
  return absl::OutOfRangeError(absl::StrFormat("%s: mmap access: index %u is out of range (max_entries %u)",
                                               Describe(map_), index, count_));
}

}  // namespace tether::detail
