#include "tether/map_batch.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "sys/bpf.h"

namespace tether {
namespace {

using sys::uapi::kEnotsupp;

enum BatchOp { kOpLookup, kOpLookupAndDelete, kOpUpdate, kOpDelete, kOpCount };

// Per op, a bit per map type whose batch command the kernel refused as
// unsupported. Support is a property of the kernel and the map type, so one
// refusal settles it for every map of that type in this process.
std::atomic<uint64_t> g_unsupported[kOpCount];

bool KnownUnsupported(BatchOp op, uint32_t type) {
  return type < 64 && (g_unsupported[op].load(std::memory_order_relaxed) >> type) & 1;
}

// Whether a batch command's errno means "no batch here", so per-key calls
// should serve it. ENOTSUPP/EOPNOTSUPP name a map type without the op and
// are remembered. EINVAL is also what a kernel older than the batch
// commands says, but a bad argument says it too, so it is not remembered:
// the per-key path then reports the precise problem.
bool ShouldFallBack(BatchOp op, uint32_t type, int neg_errno) {
  if (neg_errno == -kEnotsupp || neg_errno == -EOPNOTSUPP) {
    if (type < 64) g_unsupported[op].fetch_or(uint64_t{1} << type, std::memory_order_relaxed);
    return true;
  }
  return neg_errno == -EINVAL;
}

std::string Describe(const Map& map) {
  return absl::StrFormat("map '%s' (id %u)", map.name(), map.id());
}

absl::Status OpError(const Map& map, absl::string_view op, int neg_errno) {
  return detail::MapOpError(map.object(), op, neg_errno);
}

// Checks the buffers and returns the batch size they imply.
absl::StatusOr<uint32_t> BatchCount(const Map& map, absl::string_view op, size_t keys_bytes,
                                    size_t values_bytes, bool need_values) {
  if (!map) return detail::NullMapError(op);
  uint32_t ks = map.key_size();
  uint32_t vs = map.value_buffer_size();
  if (ks == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: %s: %s maps have no keys to batch over", Describe(map), op, MapTypeName(map.type())));
  }
  if (keys_bytes % ks != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: %s: the key buffer is %u bytes, not a multiple of key_size %u", Describe(map), op,
        keys_bytes, ks));
  }
  uint64_t n = keys_bytes / ks;
  if (need_values && values_bytes != n * vs) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: %s: %u keys need a value buffer of %u bytes (%u per value%s), got %u", Describe(map),
        op, n, n * vs, vs, IsPerCpuMapType(map.type()) ? ", per-CPU" : "", values_bytes));
  }
  if (n > UINT32_MAX) return absl::InvalidArgumentError(absl::StrCat(Describe(map), ": ", op, ": batch too large"));
  return static_cast<uint32_t>(n);
}

}  // namespace

struct BatchAccess {
  static absl::StatusOr<uint32_t> Read(const Map& map, BatchCursor* c, absl::Span<uint8_t> keys,
                                       absl::Span<uint8_t> values, bool del);
  static absl::StatusOr<uint32_t> ReadPerKey(const Map& map, BatchCursor* c, uint8_t* keys,
                                             uint8_t* values, uint32_t max, bool del);
};

BatchCursor::BatchCursor(const Map& map) {
  // Hash maps hand out a bucket index as the token, arrays and others a
  // key; room for either.
  size_t ks = map ? map.key_size() : 0;
  token_.assign(std::max<size_t>(ks, 8), 0);
  last_key_.assign(ks, 0);
}

absl::StatusOr<uint32_t> BatchAccess::ReadPerKey(const Map& map, BatchCursor* c, uint8_t* keys,
                                                 uint8_t* values, uint32_t max, bool del) {
  const uint32_t ks = map.key_size();
  const uint32_t vs = map.value_buffer_size();
  const absl::string_view op = del ? "lookup_and_delete_batch" : "lookup_batch";
  uint32_t n = 0;
  while (n < max) {
    uint8_t* key = keys + size_t{n} * ks;
    uint8_t* value = values + size_t{n} * vs;
    // Draining always takes the first key: the previous one is gone.
    const void* prev = (!del && c->started_) ? c->last_key_.data() : nullptr;
    int ret = sys::MapGetNextKey(map.fd(), prev, key);
    if (ret == -ENOENT) {
      c->done_ = true;
      break;
    }
    if (ret < 0) return OpError(map, absl::StrCat(op, " (per key: get_next_key)"), ret);
    memcpy(c->last_key_.data(), key, ks);
    c->started_ = true;
    if (del) {
      ret = sys::MapLookupAndDeleteElem(map.fd(), key, value, 0);
      if (ret == -EINVAL || ret == -kEnotsupp || ret == -EOPNOTSUPP) {
        // Hash maps learned lookup_and_delete in 5.14; before that, two calls.
        ret = sys::MapLookupElem(map.fd(), key, value, 0);
        if (ret == 0) ret = sys::MapDeleteElem(map.fd(), key);
      }
    } else {
      ret = sys::MapLookupElem(map.fd(), key, value, 0);
    }
    if (ret == -ENOENT) continue;  // deleted between get_next_key and now
    if (ret < 0) return OpError(map, absl::StrCat(op, " (per key)"), ret);
    ++n;
  }
  return n;
}

absl::StatusOr<uint32_t> BatchAccess::Read(const Map& map, BatchCursor* c, absl::Span<uint8_t> keys,
                                           absl::Span<uint8_t> values, bool del) {
  const absl::string_view op = del ? "lookup_and_delete_batch" : "lookup_batch";
  auto max = BatchCount(map, op, keys.size(), values.size(), true);
  if (!max.ok()) return max.status();
  if (c->done_ || *max == 0) return 0u;
  if (c->token_.empty()) *c = BatchCursor(map);
  const BatchOp bop = del ? kOpLookupAndDelete : kOpLookup;
  if (!c->per_key_ && KnownUnsupported(bop, map.type())) c->per_key_ = true;
  if (c->per_key_) return ReadPerKey(map, c, keys.data(), values.data(), *max, del);

  uint32_t count = *max;
  sys::BatchArgs a;
  a.in_batch = c->started_ ? c->token_.data() : nullptr;
  a.out_batch = c->token_.data();
  a.keys = keys.data();
  a.values = values.data();
  a.count = &count;
  int ret = del ? sys::MapLookupAndDeleteBatch(map.fd(), a) : sys::MapLookupBatch(map.fd(), a);
  if (ret == 0) {
    c->started_ = true;
    return count;
  }
  if (ret == -ENOENT) {
    // The end of the map; this last batch may still carry entries.
    c->started_ = true;
    c->done_ = true;
    return count;
  }
  if (ret == -ENOSPC && count == 0) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%s: %s: a hash bucket holds more than the %u entries the batch has room for; use a "
        "larger batch",
        Describe(map), op, *max));
  }
  // A refused command leaves count as we passed it; a kernel that ran the
  // command and failed on an element reports fewer.
  if (!c->started_ && (count == 0 || count == *max) && ShouldFallBack(bop, map.type(), ret)) {
    c->per_key_ = true;
    return ReadPerKey(map, c, keys.data(), values.data(), *max, del);
  }
  return OpError(map, op, ret);
}

absl::StatusOr<uint32_t> LookupBatch(const Map& map, BatchCursor* cursor, absl::Span<uint8_t> keys,
                                     absl::Span<uint8_t> values) {
  return BatchAccess::Read(map, cursor, keys, values, false);
}

absl::StatusOr<uint32_t> LookupAndDeleteBatch(const Map& map, BatchCursor* cursor,
                                              absl::Span<uint8_t> keys,
                                              absl::Span<uint8_t> values) {
  return BatchAccess::Read(map, cursor, keys, values, true);
}

absl::Status UpdateBatch(const Map& map, absl::Span<const uint8_t> keys,
                         absl::Span<const uint8_t> values, UpdateFlag flags, uint32_t* done) {
  if (done) *done = 0;
  auto n = BatchCount(map, "update_batch", keys.size(), values.size(), true);
  if (!n.ok()) return n.status();
  if (*n == 0) return absl::OkStatus();
  if (!KnownUnsupported(kOpUpdate, map.type())) {
    uint32_t count = *n;
    sys::BatchArgs a;
    a.keys = const_cast<uint8_t*>(keys.data());
    a.values = const_cast<uint8_t*>(values.data());
    a.count = &count;
    a.elem_flags = static_cast<uint64_t>(flags);
    int ret = sys::MapUpdateBatch(map.fd(), a);
    if (done) *done = count;
    if (ret == 0) return absl::OkStatus();
    if ((count != 0 && count != *n) || !ShouldFallBack(kOpUpdate, map.type(), ret)) {
      return OpError(map, absl::StrFormat("update_batch (after %u of %u)", count, *n), ret);
    }
    if (done) *done = 0;
  }
  const uint32_t ks = map.key_size();
  const uint32_t vs = map.value_buffer_size();
  for (uint32_t i = 0; i < *n; ++i) {
    int ret = sys::MapUpdateElem(map.fd(), keys.data() + size_t{i} * ks,
                                 values.data() + size_t{i} * vs, static_cast<uint64_t>(flags));
    if (ret < 0) return OpError(map, absl::StrFormat("update_batch (per key, after %u of %u)", i, *n), ret);
    if (done) *done = i + 1;
  }
  return absl::OkStatus();
}

absl::Status DeleteBatch(const Map& map, absl::Span<const uint8_t> keys, uint32_t* done) {
  if (done) *done = 0;
  auto n = BatchCount(map, "delete_batch", keys.size(), 0, false);
  if (!n.ok()) return n.status();
  if (*n == 0) return absl::OkStatus();
  if (!KnownUnsupported(kOpDelete, map.type())) {
    uint32_t count = *n;
    sys::BatchArgs a;
    a.keys = const_cast<uint8_t*>(keys.data());
    a.count = &count;
    int ret = sys::MapDeleteBatch(map.fd(), a);
    if (done) *done = count;
    if (ret == 0) return absl::OkStatus();
    if ((count != 0 && count != *n) || !ShouldFallBack(kOpDelete, map.type(), ret)) {
      return OpError(map, absl::StrFormat("delete_batch (after %u of %u)", count, *n), ret);
    }
    if (done) *done = 0;
  }
  const uint32_t ks = map.key_size();
  for (uint32_t i = 0; i < *n; ++i) {
    int ret = sys::MapDeleteElem(map.fd(), keys.data() + size_t{i} * ks);
    if (ret < 0) return OpError(map, absl::StrFormat("delete_batch (per key, after %u of %u)", i, *n), ret);
    if (done) *done = i + 1;
  }
  return absl::OkStatus();
}

namespace detail {
absl::Status BatchTypeError(const Map& map, absl::string_view op, size_t key, size_t value) {
  return absl::InvalidArgumentError(absl::StrFormat(
      "%s: %s: key is %u bytes and value %u bytes, but the map has key_size %u and value_size %u%s",
      Describe(map), op, key, value, map.key_size(), map.value_buffer_size(),
      IsPerCpuMapType(map.type()) ? " (per-CPU: pass the values as a PerCpuBatch<V>)" : ""));
}
}  // namespace detail

}  // namespace tether
