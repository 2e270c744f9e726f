// TypedMap<K, V>: a Map bound to a key and value type.
//
// Map's typed calls compare sizeof(K) and sizeof(V) with the map on every
// call. A TypedMap compares them once, in Bind, so each element call is the
// syscall and nothing else: no size checks, no allocation, no locks. The
// only work added after the syscall is turning a failure into a Status;
// Find() is the miss-friendly form whose NotFound allocates nothing.
//
// A default-constructed or moved-from wrapper is empty, like the Map it
// holds: map() is an empty Map, and every operation returns an error
// naming the operation and "the handle is empty" (handle.h).
#ifndef TETHER_TYPED_MAP_H_
#define TETHER_TYPED_MAP_H_

#include <cerrno>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "tether/map.h"

namespace tether {
namespace detail {

struct MapRaw {
  static int Lookup(const Map& m, const void* k, void* v, uint64_t flags) {
    return m.RawLookup(k, v, flags);
  }
  static int Update(const Map& m, const void* k, const void* v, uint64_t flags) {
    return m.RawUpdate(k, v, flags);
  }
  static int Delete(const Map& m, const void* k) { return m.RawDelete(k); }
  static int LookupAndDelete(const Map& m, const void* k, void* v) {
    return m.RawLookupAndDelete(k, v);
  }
};

// Key iteration shared by the typed wrappers; see TypedMap::ForEachKey.
// `fn` returns void, or bool where false stops the walk.
template <typename K, typename Fn>
absl::Status ForEachKeyOf(const Map& map, Fn&& fn) {
  if (!map) return NullMapError("for_each_key");
  // A walk that keeps restarting (someone deletes our current key again
  // and again) would otherwise never end; this bound is far above what a
  // walk with occasional restarts needs.
  const uint64_t limit = uint64_t{map.max_entries()} * 64 + 1024;
  K cur{}, next{};
  const K* prev = nullptr;
  for (uint64_t steps = 0;; ++steps) {
    if (steps > limit) {
      return absl::AbortedError(absl::StrFormat(
          "map '%s' (id %u): for_each_key: gave up after %u steps; keys are being deleted "
          "faster than the walk can make progress",
          map.name(), map.id(), steps));
    }
    auto more = map.NextKey(static_cast<const void*>(prev), static_cast<void*>(&next));
    if (!more.ok()) return more.status();
    if (!*more) return absl::OkStatus();
    if constexpr (std::is_same_v<std::invoke_result_t<Fn&, const K&>, bool>) {
      if (!fn(static_cast<const K&>(next))) return absl::OkStatus();
    } else {
      fn(static_cast<const K&>(next));
    }
    cur = next;
    prev = &cur;
  }
}

// A an arithmetic type that converting to T would cut: wider, or floating
// to integral. TypedMap and PerCpuMap refuse such keys and values at
// compile time rather than sending a truncated key; an int literal converts
// to any integer K at least as wide, as it always did.
template <typename A, typename T>
concept Narrows = std::is_arithmetic_v<std::remove_cvref_t<A>> && std::is_arithmetic_v<T> &&
                  !std::is_same_v<std::remove_cvref_t<A>, T> &&
                  (sizeof(std::remove_cvref_t<A>) > sizeof(T) ||
                   (std::is_floating_point_v<std::remove_cvref_t<A>> && std::is_integral_v<T>));

}  // namespace detail

template <MapPod K, MapPod V>
class TypedMap {
 public:
  TypedMap() = default;

  // Checks the sizes once. Per-CPU maps go to PerCpuMap (percpu.h): their
  // values are one slot per possible CPU.
  static absl::StatusOr<TypedMap> Bind(Map map) {
    if (!map) return detail::NullMapError("bind");
    if (IsPerCpuMapType(map.type())) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "map '%s' (id %u): bind: %s is per-CPU; use PerCpuMap<K, V>", map.name(), map.id(),
          MapTypeName(map.type())));
    }
    if (map.key_size() != sizeof(K) || map.value_size() != sizeof(V)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "map '%s' (id %u): bind: key is %u bytes and value %u bytes, but the map has "
          "key_size %u and value_size %u",
          map.name(), map.id(), sizeof(K), sizeof(V), map.key_size(), map.value_size()));
    }
    return TypedMap(std::move(map));
  }

  const Map& map() const { return map_; }
  explicit operator bool() const { return static_cast<bool>(map_); }

  // The key and value parameters are `const K&` and `const V&`, not
  // deduced: an argument converts to K (a bare `1` on a uint64_t map is a
  // uint64_t), and one that would narrow is a compile-time error (the
  // deleted overloads below).
  absl::Status Lookup(const K& key, V* value) const {
    return Result("lookup", detail::MapRaw::Lookup(map_, &key, value, 0));
  }
  // BPF_F_LOCK: copies the value under its bpf_spin_lock.
  absl::Status LookupLocked(const K& key, V* value) const {
    return Result("lookup", detail::MapRaw::Lookup(map_, &key, value, BPF_F_LOCK));
  }
  // true and *value filled, or false if the key is absent. Unlike Lookup,
  // a miss costs nothing beyond the syscall.
  absl::StatusOr<bool> Find(const K& key, V* value) const {
    int ret = detail::MapRaw::Lookup(map_, &key, value, 0);
    if (__builtin_expect(ret == 0, 1)) return true;
    if (ret == -ENOENT) return false;
    return detail::MapOpError(map_.object(), "lookup", ret);
  }
  absl::StatusOr<V> Get(const K& key) const {
    V value;
    absl::Status st = Lookup(key, &value);
    if (!st.ok()) return st;
    return value;
  }

  absl::Status Update(const K& key, const V& value, UpdateFlag flags = UpdateFlag::kAny) const {
    return Result("update", detail::MapRaw::Update(map_, &key, &value, static_cast<uint64_t>(flags)));
  }
  // BPF_NOEXIST: AlreadyExists if the key is there.
  absl::Status Insert(const K& key, const V& value) const {
    return Update(key, value, UpdateFlag::kNoExist);
  }
  // BPF_EXIST: NotFound if the key is absent.
  absl::Status Replace(const K& key, const V& value) const {
    return Update(key, value, UpdateFlag::kExist);
  }
  absl::Status Delete(const K& key) const {
    return Result("delete", detail::MapRaw::Delete(map_, &key));
  }
  absl::Status LookupAndDelete(const K& key, V* value) const {
    return Result("lookup_and_delete", detail::MapRaw::LookupAndDelete(map_, &key, value));
  }

  template <typename A> requires detail::Narrows<A, K>
  absl::Status Lookup(const A& key, V* value) const = delete;
  template <typename A> requires detail::Narrows<A, K>
  absl::StatusOr<bool> Find(const A& key, V* value) const = delete;
  template <typename A> requires detail::Narrows<A, K>
  absl::StatusOr<V> Get(const A& key) const = delete;
  template <typename A, typename B> requires(detail::Narrows<A, K> || detail::Narrows<B, V>)
  absl::Status Update(const A& key, const B& value, UpdateFlag flags = UpdateFlag::kAny) const = delete;
  template <typename A, typename B> requires(detail::Narrows<A, K> || detail::Narrows<B, V>)
  absl::Status Insert(const A& key, const B& value) const = delete;
  template <typename A, typename B> requires(detail::Narrows<A, K> || detail::Narrows<B, V>)
  absl::Status Replace(const A& key, const B& value) const = delete;
  template <typename A> requires detail::Narrows<A, K>
  absl::Status Delete(const A& key) const = delete;
  template <typename A> requires detail::Narrows<A, K>
  absl::Status LookupAndDelete(const A& key, V* value) const = delete;

  // Calls fn(key) for each key; fn may return bool, false to stop.
  //
  // Safe against concurrent deletion: when the key the walk stands on is
  // deleted, the kernel's get_next_key restarts a hash map from its first
  // key. So the walk always ends, every key present for the whole walk is
  // visited at least once, keys deleted during it may or may not be, and
  // after a restart keys already seen are visited again (duplicates).
  // Deduplicate in fn if that matters. Arrays never restart.
  template <typename Fn>
  absl::Status ForEachKey(Fn&& fn) const {
    return detail::ForEachKeyOf<K>(map_, std::forward<Fn>(fn));
  }
  // Calls fn(key, value) for each key still present when it is looked up.
  template <typename Fn>
  absl::Status ForEach(Fn&& fn) const {
    absl::Status inner;
    V value;
    absl::Status st = ForEachKey([&](const K& key) {
      int ret = detail::MapRaw::Lookup(map_, &key, &value, 0);
      if (ret == -ENOENT) return true;  // deleted since get_next_key
      if (ret != 0) {
        inner = detail::MapOpError(map_.object(), "lookup", ret);
        return false;
      }
      if constexpr (std::is_same_v<std::invoke_result_t<Fn&, const K&, const V&>, bool>) {
        return fn(key, static_cast<const V&>(value));
      } else {
        fn(key, static_cast<const V&>(value));
        return true;
      }
    });
    return st.ok() ? inner : st;
  }
  // Every key (duplicates possible under concurrent deletion, see above).
  absl::StatusOr<std::vector<K>> Keys() const {
    std::vector<K> keys;
    absl::Status st = ForEachKey([&](const K& k) { keys.push_back(k); });
    if (!st.ok()) return st;
    return keys;
  }

 private:
  explicit TypedMap(Map map) : map_(std::move(map)) {}
  absl::Status Result(absl::string_view op, int ret) const {
    if (__builtin_expect(ret == 0, 1)) return absl::OkStatus();
    return detail::MapOpError(map_.object(), op, ret);
  }

  Map map_;
};

}  // namespace tether

#endif  // TETHER_TYPED_MAP_H_
