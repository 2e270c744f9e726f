// Map: a cheap, copyable handle to one BPF map.
//
// Each map object owns exactly one fd. Handles share the object through an
// intrusive count: copying a handle is one atomic increment, and the fd
// closes when the last handle goes. Element operations go straight to the
// syscall: they check sizes against the map's info (cached at creation),
// allocate nothing, and build a Status message only on failure.
#ifndef TETHER_MAP_H_
#define TETHER_MAP_H_

#include <linux/bpf.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "tether/lifetime.h"
#include "tether/handle.h"
#include "tether/ref_counted.h"

namespace tether {

// Kernel facts about a map, read once with BPF_OBJ_GET_INFO_BY_FD.
struct MapInfo {
  uint32_t id = 0;
  uint32_t type = BPF_MAP_TYPE_UNSPEC;
  uint32_t key_size = 0;
  uint32_t value_size = 0;
  uint32_t max_entries = 0;
  uint32_t flags = 0;
  uint64_t map_extra = 0;
  uint32_t btf_id = 0;
  uint32_t btf_key_type_id = 0;
  uint32_t btf_value_type_id = 0;
  uint32_t ifindex = 0;
  std::string name;
};

// "hash", "prog_array"... as bpftool spells them.
const char* MapTypeName(uint32_t type);
bool IsPerCpuMapType(uint32_t type);
// Number of possible CPUs, from /sys/devices/system/cpu/possible.
uint32_t PossibleCpus();

// Update flags. kLock may be or'ed with one of the others.
enum class UpdateFlag : uint64_t {
  kAny = BPF_ANY,
  kNoExist = BPF_NOEXIST,
  kExist = BPF_EXIST,
  kLock = BPF_F_LOCK,
};
inline UpdateFlag operator|(UpdateFlag a, UpdateFlag b) {
  return static_cast<UpdateFlag>(static_cast<uint64_t>(a) | static_cast<uint64_t>(b));
}

class Map;

namespace detail {
// Unchecked element calls for the typed wrappers (typed_map.h, queue.h),
// which check sizes once when they bind instead of on every call.
struct MapRaw;
template <typename T>
struct IsSpan : std::false_type {};
template <typename T>
struct IsSpan<absl::Span<T>> : std::true_type {};
}  // namespace detail

// A key or value passed by type: its bytes are what the kernel sees. Spans
// and containers go to the byte-span overloads instead.
template <typename T>
concept MapPod = std::is_trivially_copyable_v<T> && !detail::IsSpan<T>::value;

struct MapOptions {
  uint32_t type = BPF_MAP_TYPE_UNSPEC;
  uint32_t key_size = 0;
  uint32_t value_size = 0;
  uint32_t max_entries = 0;
  uint32_t flags = 0;
  std::string name;
  // For ARRAY_OF_MAPS / HASH_OF_MAPS: a map of the kind the outer map holds.
  const Map* inner_map = nullptr;
  uint32_t numa_node = 0;
  uint64_t map_extra = 0;
  uint32_t ifindex = 0;
  int btf_fd = -1;
  uint32_t btf_key_type_id = 0;
  uint32_t btf_value_type_id = 0;
  uint32_t btf_vmlinux_value_type_id = 0;
  // What happens when the last handle of a program array goes; kDefault
  // follows the global policy (see graph.h).
  LifetimePolicy lifetime_policy = LifetimePolicy::kDefault;
};

namespace detail {

class MapObject : public RefCounted<MapObject> {
 public:
  MapObject(int fd, MapInfo info);
  ~MapObject();

  int fd() const { return fd_; }
  const MapInfo& info() const { return info_; }
  // Bytes a lookup writes: value_size, or for per-CPU maps the value
  // rounded up to 8 bytes times the possible CPUs.
  uint32_t value_buffer_size() const { return value_buffer_size_; }

  LifetimePolicy policy() const { return policy_.load(std::memory_order_relaxed); }
  void set_policy(LifetimePolicy p) { policy_.store(p, std::memory_order_relaxed); }
  // Set by Map::Close(force = true) on the last handle: the release is
  // applied at once, never deferred.
  void set_forced_release() { forced_release_.store(true, std::memory_order_relaxed); }
  // A struct_ops map this handle registered (a map update without a
  // link): the kernel holds the registration until someone deletes it,
  // so the last handle does (unless the map is pinned). See
  // docs/lifecycle.md, "struct_ops".
  void set_unregister_on_release(bool on) { unregister_on_release_.store(on, std::memory_order_relaxed); }
  bool unregister_on_release() const { return unregister_on_release_.load(std::memory_order_relaxed); }

 private:
  int fd_;
  MapInfo info_;
  uint32_t value_buffer_size_;
  std::atomic<LifetimePolicy> policy_{LifetimePolicy::kDefault};
  std::atomic<bool> forced_release_{false};
  std::atomic<bool> unregister_on_release_{false};
};

// Cold paths, out of line so the inline accessors stay small.
absl::Status MapSizeError(const MapObject* map, absl::string_view op, size_t key_size,
                          size_t value_size);
absl::Status MapOpError(const MapObject* map, absl::string_view op, int neg_errno);
absl::Status NullMapError(absl::string_view op);

}  // namespace detail

class Map : public detail::HandleBase<Map, detail::MapObject> {
 public:
  Map() = default;

  // Creates a map. The Status names the map and the errno.
  static absl::StatusOr<Map> Create(const MapOptions& options);
  // Takes ownership of fd (closed on failure too).
  static absl::StatusOr<Map> FromFd(int fd);
  // Opens the live map with this kernel id.
  static absl::StatusOr<Map> FromId(uint32_t id);
  // Opens a map pinned on bpffs.
  static absl::StatusOr<Map> LoadPinned(const std::string& path);
  // A new, independent handle on a dup'd fd.
  absl::StatusOr<Map> Clone() const;

  // On an empty handle: "" and 0 (see the contract in handle.h); element
  // operations, Freeze, Pin, Unpin, Clone and NextKey return
  // FailedPrecondition "map: <op>: the handle is empty".
  const std::string& name() const { return info().name; }
  uint32_t key_size() const { return info().key_size; }
  uint32_t value_size() const { return info().value_size; }
  uint32_t max_entries() const { return info().max_entries; }
  uint32_t flags() const { return info().flags; }
  uint32_t value_buffer_size() const { return obj_ ? obj_->value_buffer_size() : 0; }

  // --- byte-span element operations ---------------------------------------
  // The key must be key_size bytes and the value value_buffer_size() bytes.
  // A missing key is NotFound.
  absl::Status Lookup(absl::Span<const uint8_t> key, absl::Span<uint8_t> value,
                      UpdateFlag flags = UpdateFlag::kAny) const {
    if (!CheckSizes(key.size(), value.size())) return SizeError("lookup", key.size(), value.size());
    return Result("lookup", RawLookup(key.data(), value.data(), static_cast<uint64_t>(flags)));
  }
  absl::Status Update(absl::Span<const uint8_t> key, absl::Span<const uint8_t> value,
                      UpdateFlag flags = UpdateFlag::kAny) const {
    if (!CheckSizes(key.size(), value.size())) return SizeError("update", key.size(), value.size());
    return Result("update", RawUpdate(key.data(), value.data(), static_cast<uint64_t>(flags)));
  }
  absl::Status Delete(absl::Span<const uint8_t> key) const {
    if (!CheckKey(key.size())) return SizeError("delete", key.size(), value_buffer_size());
    return Result("delete", RawDelete(key.data()));
  }
  absl::Status LookupAndDelete(absl::Span<const uint8_t> key, absl::Span<uint8_t> value) const {
    if (!CheckSizes(key.size(), value.size()))
      return SizeError("lookup_and_delete", key.size(), value.size());
    return Result("lookup_and_delete", RawLookupAndDelete(key.data(), value.data()));
  }

  // --- typed element operations --------------------------------------------
  // K and V are trivially copyable; their sizes must match the map's.
  template <MapPod K, MapPod V>
  absl::Status Lookup(const K& key, V* value, UpdateFlag flags = UpdateFlag::kAny) const {
    if (!CheckSizes(sizeof(K), sizeof(V))) return SizeError("lookup", sizeof(K), sizeof(V));
    return Result("lookup", RawLookup(&key, value, static_cast<uint64_t>(flags)));
  }
  template <MapPod K, MapPod V>
  absl::Status Update(const K& key, const V& value, UpdateFlag flags = UpdateFlag::kAny) const {
    if (!CheckSizes(sizeof(K), sizeof(V))) return SizeError("update", sizeof(K), sizeof(V));
    return Result("update", RawUpdate(&key, &value, static_cast<uint64_t>(flags)));
  }
  template <MapPod K>
  absl::Status Delete(const K& key) const {
    if (!CheckKey(sizeof(K))) return SizeError("delete", sizeof(K), value_buffer_size());
    return Result("delete", RawDelete(&key));
  }
  template <MapPod K, MapPod V>
  absl::Status LookupAndDelete(const K& key, V* value) const {
    if (!CheckSizes(sizeof(K), sizeof(V))) return SizeError("lookup_and_delete", sizeof(K), sizeof(V));
    return Result("lookup_and_delete", RawLookupAndDelete(&key, value));
  }

  // --- iteration -------------------------------------------------------------
  // Writes the key after `key` (nullptr: the first key) into next_key and
  // returns true, or returns false at the end. If `key` was deleted
  // meanwhile, hash maps restart from their first key, as get_next_key does.
  absl::StatusOr<bool> NextKey(const void* key, void* next_key) const;
  template <MapPod K>
  absl::StatusOr<bool> NextKey(const K* key, K* next_key) const {
    if (!CheckKey(sizeof(K))) return SizeError("next_key", sizeof(K), value_buffer_size());
    return NextKey(static_cast<const void*>(key), static_cast<void*>(next_key));
  }
  // Every key, in the kernel's order.
  template <MapPod K>
  absl::StatusOr<std::vector<K>> Keys() const {
    std::vector<K> keys;
    K cur, next;
    const K* prev = nullptr;
    for (;;) {
      auto more = NextKey<K>(prev, &next);
      if (!more.ok()) return more.status();
      if (!*more) return keys;
      keys.push_back(next);
      cur = next;
      prev = &cur;
    }
  }

  // Makes the map read-only for user space (BPF_MAP_FREEZE).
  absl::Status Freeze() const;

  // --- lifetime ----------------------------------------------------------------
  // Pins the map at `path` on bpffs (creating missing directories there).
  // Pinning again moves the pin.
  absl::Status Pin(const std::string& path) const;
  // Removes the pin this process made.
  absl::Status Unpin() const;
  // The pin this process made, or "".
  std::string PinPath() const;

  // No-op on an empty handle, whose policy reads kDefault.
  void SetLifetimePolicy(LifetimePolicy policy) const {
    if (obj_) obj_->set_policy(policy);
  }
  LifetimePolicy lifetime_policy() const { return obj_ ? obj_->policy() : LifetimePolicy::kDefault; }

  // Drops this handle. If it is the last user reference of a program array
  // that programs still tail-call through, it refuses with
  // FailedPrecondition and keeps the handle, unless `force` is set. Under
  // LifetimePolicy::kRefuse even `force` is refused: change the policy
  // first. OK on an empty handle (nothing to drop).
  absl::Status Close(bool force = false);

 private:
  friend class ProgramArray;
  friend struct detail::MapRaw;
  explicit Map(RefPtr<detail::MapObject> obj) : HandleBase(std::move(obj)) {}
  static absl::StatusOr<Map> Adopt(int fd, absl::string_view how);

  bool CheckKey(size_t key) const { return obj_ && key == obj_->info().key_size; }
  bool CheckSizes(size_t key, size_t value) const {
    return obj_ && key == obj_->info().key_size && value == obj_->value_buffer_size();
  }
  absl::Status SizeError(absl::string_view op, size_t key, size_t value) const {
    if (!obj_) return detail::NullMapError(op);
    return detail::MapSizeError(obj_.get(), op, key, value);
  }
  absl::Status Result(absl::string_view op, int ret) const {
    if (__builtin_expect(ret == 0, 1)) return absl::OkStatus();
    return detail::MapOpError(obj_.get(), op, ret);
  }
  int RawLookup(const void* key, void* value, uint64_t flags) const;
  int RawUpdate(const void* key, const void* value, uint64_t flags) const;
  int RawDelete(const void* key) const;
  int RawLookupAndDelete(const void* key, void* value) const;
};

}  // namespace tether

template <>
struct std::hash<tether::Map> {
  size_t operator()(const tether::Map& m) const noexcept {
    return std::hash<const void*>()(m.object());
  }
};

#endif  // TETHER_MAP_H_
