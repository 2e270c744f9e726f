#include "tether/btf.h"

#include <fcntl.h>
#include <linux/btf.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <mutex>
#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "btf/btf_writer.h"
#include "sys/bpf.h"
#include "base/status_macros.h"

namespace tether {
namespace {

constexpr uint16_t kBtfMagic = 0xeB9F;
constexpr uint32_t kBtfHeaderMinLen = 24;
// Chains longer than this are refused rather than followed: the kernel's
// own limit on modifier chains is far below it.
constexpr int kMaxResolveDepth = 64;

uint32_t Load32(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

using btf::AppendWord;
using btf::AssembleBlob;
using btf::BlobHeader;
using btf::WordWriter;
using btf::WireSize;
using btf::TypeInfo;

}  // namespace

absl::string_view BtfKindName(BtfKind kind) {
  static constexpr absl::string_view kNames[] = {
      "VOID",  "INT",      "PTR",        "ARRAY", "STRUCT",  "UNION",    "ENUM",
      "FWD",   "TYPEDEF",  "VOLATILE",   "CONST", "RESTRICT", "FUNC",    "FUNC_PROTO",
      "VAR",   "DATASEC",  "FLOAT",      "DECL_TAG", "TYPE_TAG", "ENUM64"};
  auto i = static_cast<size_t>(kind);
  return i < sizeof(kNames) / sizeof(kNames[0]) ? kNames[i] : "UNKNOWN";
}

Btf::Btf() : strings_(std::shared_ptr<const char>(std::shared_ptr<const void>(), "")),
             strings_size_(1), types_(1, BtfType{}),
             names_(std::make_unique<NameIndexState>()) {}

namespace {

// Faults in a freshly allocated buffer with one call. Parsing vmlinux
// touches some 3000 new pages, and on virtualised hosts every first touch
// is a trap through the hypervisor: taking them one by one was a third of
// the parse. Best effort: without MADV_POPULATE_WRITE (5.14) the pages
// fault as usual.
void Prefault(const void* data, size_t bytes) {
  constexpr int kPopulateWrite = 23;  // MADV_POPULATE_WRITE
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  if (bytes < 16 * page) return;
  uintptr_t start = (reinterpret_cast<uintptr_t>(data) + page - 1) & ~(page - 1);
  uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(page - 1);
  if (end > start) madvise(reinterpret_cast<void*>(start), end - start, kPopulateWrite);
}

template <typename T>
void ReserveExact(std::vector<T>* v, size_t n) {
  v->reserve(v->size() + n);
  Prefault(v->data() + v->size(), n * sizeof(T));
}

}  // namespace

namespace {
// Types per lazily decoded block: small enough that a CO-RE lookup decodes
// little it does not need, large enough that the per-block bookkeeping of
// vmlinux (about 150 blocks) costs nothing.
constexpr uint32_t kDecodeBlock = 1024;
}  // namespace

struct Btf::LazyState {
  struct Chunk {
    size_t wire_off;  // into the type section
    uint32_t member_row, enum_row, secinfo_row;
  };
  std::shared_ptr<const void> owner;  // keeps `wire` mapped
  const uint8_t* wire = nullptr;      // the type section
  uint32_t first_slot = 0;            // types_ slot of the first block's first type
  std::vector<Chunk> chunks;
  std::unique_ptr<std::atomic<bool>[]> done;  // per block
  std::vector<uint32_t> name_offs;            // per own type, for the name index
  std::mutex mu;                              // serialises decoding
};

// The name index is built on the first lookup by name: opening an object
// mostly asks for none, and hashing every name was a tenth of it.
struct Btf::NameIndexState {
  std::mutex mu;
  std::atomic<bool> ready{false};
};

Btf::~Btf() = default;
Btf::Btf(Btf&&) noexcept = default;
Btf& Btf::operator=(Btf&&) noexcept = default;
Btf::Btf(const Btf& other)
    : strings_((other.DecodeAll(), other.EnsureNameIndex(), other.strings_)),
      strings_size_(other.strings_size_),
      types_(other.types_),
      members_(other.members_),
      enums_(other.enums_),
      secinfos_(other.secinfos_),
      base_(other.base_),
      start_id_(other.start_id_),
      start_str_(other.start_str_),
      name_ids_(other.name_ids_),
      name_groups_(other.name_groups_),
      name_slots_(other.name_slots_),
      names_(std::make_unique<NameIndexState>()) {
  names_->ready.store(true, std::memory_order_relaxed);  // copied complete
}

Btf& Btf::operator=(const Btf& other) {
  // Copy, then swap in: a failed allocation leaves *this as it was.
  if (this != &other) *this = Btf(other);
  return *this;
}

void Btf::EnsureDecoded(uint32_t slot) const {
  LazyState& l = *lazy_;
  if (slot < l.first_slot || slot >= types_.size()) return;
  uint32_t c = (slot - l.first_slot) / kDecodeBlock;
  if (l.done[c].load(std::memory_order_acquire)) return;
  std::lock_guard<std::mutex> lock(l.mu);
  if (l.done[c].load(std::memory_order_relaxed)) return;
  const LazyState::Chunk& chunk = l.chunks[c];
  uint32_t first = l.first_slot + c * kDecodeBlock;
  uint32_t count = std::min<uint32_t>(kDecodeBlock, static_cast<uint32_t>(types_.size()) - first);
  // Logically const: the block's bytes were always these types.
  const_cast<Btf*>(this)->DecodeRange(l.wire + chunk.wire_off, first, count, chunk.member_row,
                                      chunk.enum_row, chunk.secinfo_row);
  l.done[c].store(true, std::memory_order_release);
}

void Btf::DecodeAll() const {
  if (!lazy_) return;
  for (size_t c = 0; c < lazy_->chunks.size(); ++c) {
    EnsureDecoded(lazy_->first_slot + static_cast<uint32_t>(c) * kDecodeBlock);
  }
}

void Btf::EnsureNameIndex() const {
  if (!names_ || names_->ready.load(std::memory_order_acquire)) return;  // null: moved from
  std::lock_guard<std::mutex> lock(names_->mu);
  if (names_->ready.load(std::memory_order_relaxed)) return;
  BuildNameIndex();
  names_->ready.store(true, std::memory_order_release);
}

void Btf::DecodeRange(const uint8_t* p, uint32_t slot, uint32_t count, uint32_t member_row,
                      uint32_t enum_row, uint32_t secinfo_row) {
  for (uint32_t k = 0; k < count; ++k) {
    BtfType t;
    t.name_off = Load32(p);
    uint32_t info = Load32(p + 4);
    t.size_or_type = Load32(p + 8);
    p += 12;
    t.kind = static_cast<BtfKind>((info >> 24) & 0x1f);
    t.vlen = info & 0xffff;
    t.kind_flag = info >> 31;
    switch (t.kind) {
      case BtfKind::kInt:
      case BtfKind::kVar:
      case BtfKind::kDeclTag:
        t.extra = Load32(p);
        p += 4;
        break;
      case BtfKind::kArray:
        t.extra = Load32(p);
        t.array_index_type = Load32(p + 4);
        t.array_nelems = Load32(p + 8);
        p += 12;
        break;
      case BtfKind::kStruct:
      case BtfKind::kUnion:
        t.first = member_row;
        for (uint32_t i = 0; i < t.vlen; ++i, p += 12) {
          BtfMember& m = members_[member_row++];
          m.name_off = Load32(p);
          m.type = Load32(p + 4);
          uint32_t off = Load32(p + 8);
          m.bitfield_size = t.kind_flag ? off >> 24 : 0;
          m.bit_offset = t.kind_flag ? off & 0xffffff : off;
        }
        break;
      case BtfKind::kEnum:
        t.first = enum_row;
        for (uint32_t i = 0; i < t.vlen; ++i, p += 8) {
          BtfEnumValue& v = enums_[enum_row++];
          v.name_off = Load32(p);
          uint32_t raw = Load32(p + 4);
          v.value = t.kind_flag ? static_cast<uint64_t>(int64_t{static_cast<int32_t>(raw)}) : raw;
        }
        break;
      case BtfKind::kEnum64:
        t.first = enum_row;
        for (uint32_t i = 0; i < t.vlen; ++i, p += 12) {
          BtfEnumValue& v = enums_[enum_row++];
          v.name_off = Load32(p);
          v.value = uint64_t{Load32(p + 4)} | uint64_t{Load32(p + 8)} << 32;
        }
        break;
      case BtfKind::kFuncProto:
        t.first = member_row;
        for (uint32_t i = 0; i < t.vlen; ++i, p += 8) {
          BtfMember& m = members_[member_row++];
          m.name_off = Load32(p);
          m.type = Load32(p + 4);
          m.bit_offset = 0;
          m.bitfield_size = 0;
        }
        break;
      case BtfKind::kDatasec:
        t.first = secinfo_row;
        for (uint32_t i = 0; i < t.vlen; ++i, p += 12) {
          secinfos_[secinfo_row++] = {Load32(p), Load32(p + 4), Load32(p + 8)};
        }
        break;
      default:
        break;
    }
    types_[slot + k] = t;
  }
}

absl::StatusOr<Btf> Btf::Parse(absl::Span<const uint8_t> data, absl::string_view what,
                               const Btf* base) {
  return ParseOwned(data, what, base, nullptr);
}

namespace {
// Where the sections of a BTF blob lie, once the header has been checked.
struct BtfLayout {
  uint32_t hdr_len, type_off, type_len, str_off, str_len;
  const uint8_t* strs;
};

// Checks the header and that both sections lie inside the blob; split BTF
// (with a base) continues its base's strings and need not start with "".
absl::StatusOr<BtfLayout> ReadBtfLayout(absl::Span<const uint8_t> data, absl::string_view what,
                                        const Btf* base) {
  auto err = [&](auto&&... args) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", args...));
  };
  if (data.size() < kBtfHeaderMinLen) {
    return err("header truncated: ", data.size(), " bytes, need ", kBtfHeaderMinLen);
  }
  uint16_t magic;
  memcpy(&magic, data.data(), 2);
  if (magic != kBtfMagic) {
    return err(absl::StrFormat("bad magic 0x%04x at offset 0 (want 0xeb9f; big-endian BTF "
                               "is not supported)",
                               magic));
  }
  if (data[2] != 1) return err("unsupported version ", data[2], " at offset 2");
  uint32_t hdr_len = Load32(&data[4]);
  if (hdr_len < kBtfHeaderMinLen || hdr_len > data.size()) {
    return err("header length ", hdr_len, " at offset 4 is outside [24, ", data.size(), "]");
  }
  // A longer header is a newer format; its extra fields must be zero so
  // that nothing we do not understand is silently dropped.
  for (uint32_t i = kBtfHeaderMinLen; i < hdr_len; ++i) {
    if (data[i] != 0) return err("unknown non-zero header byte at offset ", i);
  }
  uint32_t type_off = Load32(&data[8]), type_len = Load32(&data[12]);
  uint32_t str_off = Load32(&data[16]), str_len = Load32(&data[20]);
  uint64_t body = data.size() - hdr_len;
  if (uint64_t{type_off} + type_len > body) {
    return err("type section [", type_off, ", +", type_len, ") exceeds the ", body,
               " bytes after the header");
  }
  if (uint64_t{str_off} + str_len > body) {
    return err("string section [", str_off, ", +", str_len, ") exceeds the ", body,
               " bytes after the header");
  }
  if (type_off % 4 != 0) return err("type section offset ", type_off, " is not 4-aligned");
  const uint8_t* strs = data.data() + hdr_len + str_off;
  BtfLayout layout{hdr_len, type_off, type_len, str_off, str_len, strs};
  // Split BTF continues its base's string section, so only a base section
  // must start with the empty name.
  if (base == nullptr) {
    if (str_len == 0) return err("string section is empty (it must start with a NUL)");
    if (strs[0] != 0) return err("string section does not start with a NUL");
  }
  if (str_len != 0 && strs[str_len - 1] != 0) {
    return err("string section of ", str_len, " bytes is not NUL-terminated");
  }
  return layout;
}
// The string section: borrowed from `owner` when there is one (a mapped
// file lives as long as the Btf), else copied.
std::shared_ptr<const char> SharedStrings(const std::shared_ptr<const void>& owner,
                                          const uint8_t* strs, uint32_t len) {
  if (owner) return std::shared_ptr<const char>(owner, reinterpret_cast<const char*>(strs));
  std::shared_ptr<char> copy(new char[len + 1], std::default_delete<char[]>());
  if (len) memcpy(copy.get(), strs, len);
  return copy;
}
}  // namespace

absl::StatusOr<Btf> Btf::ParseOwned(absl::Span<const uint8_t> data, absl::string_view what,
                                    const Btf* base, std::shared_ptr<const void> owner,
                                    bool trusted) {
  auto err = [&](auto&&... args) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", args...));
  };
  auto read = ReadBtfLayout(data, what, base);
  if (!read.ok()) return read.status();
  const auto [hdr_len, type_off, type_len, str_off, str_len, strs] = *read;

  Btf btf;
  if (base != nullptr) {
    btf.base_ = base;
    btf.start_id_ = base->NumTypes();
    btf.start_str_ = base->start_str_ + base->strings_size_;
    btf.types_.clear();
  }
  btf.strings_ = SharedStrings(owner, strs, str_len);
  btf.strings_size_ = str_len;
  // Offsets are absolute across base and split strings.
  const uint64_t str_end = uint64_t{btf.start_str_} + str_len;
  const uint8_t* const types_begin = data.data() + hdr_len + type_off;
  const uint8_t* const end = types_begin + type_len;
  const bool lazy = trusted && owner != nullptr;
  const uint32_t first_slot = static_cast<uint32_t>(btf.types_.size());

  // The structural pass: every type's header and variable-length part lie
  // inside the section, kinds are known, and names are in the string
  // section. It counts what each table will hold, and for lazy decoding
  // notes where each block of types starts.
  std::vector<LazyState::Chunk> chunks;
  std::vector<uint32_t> name_offs;
  uint32_t ntypes = 0, nmembers = 0, nenums = 0, nsecinfos = 0;
  uint32_t id = btf.start_id_ == 0 ? 1 : btf.start_id_;
  for (const uint8_t* p = types_begin; p < end; ++id, ++ntypes) {
    size_t at = static_cast<size_t>(p - types_begin);
    auto terr = [&](auto&&... args) {
      return err("type [", id, "] at type offset ", at, ": ", args...);
    };
    if (end - p < 12) return terr("truncated type header");
    uint32_t name_off = Load32(p);
    uint32_t info = Load32(p + 4);
    p += 12;
    uint32_t kind = (info >> 24) & 0x1f;
    uint32_t vlen = info & 0xffff;
    if (name_off >= str_end && name_off != 0) {
      return terr("name offset ", name_off, " is outside the ", str_end, "-byte string section");
    }
    if (kind == 0 || kind > kBtfMaxKind) return terr("unknown kind ", kind);
    if (lazy) {
      if (ntypes % kDecodeBlock == 0) chunks.push_back({at, nmembers, nenums, nsecinfos});
      name_offs.push_back(name_off);
    }
    auto need = [&](size_t n) { return static_cast<size_t>(end - p) >= n; };
    // Name offsets of `count` entries of `size` bytes each.
    auto names_ok = [&](uint32_t count, size_t size) {
      if (lazy) return -1;
      for (uint32_t i = 0; i < count; ++i) {
        if (Load32(p + i * size) >= str_end) return static_cast<int>(i);
      }
      return -1;
    };
    switch (static_cast<BtfKind>(kind)) {
      case BtfKind::kInt: {
        if (!need(4)) return terr("truncated INT encoding");
        uint32_t enc = Load32(p);
        p += 4;
        uint32_t bits = enc & 0xff, offset = (enc >> 16) & 0xff;
        if (offset + bits > 128 || bits == 0) {
          return terr("INT with ", bits, " bits at bit offset ", offset);
        }
        break;
      }
      case BtfKind::kArray:
        if (!need(12)) return terr("truncated ARRAY");
        p += 12;
        break;
      case BtfKind::kStruct:
      case BtfKind::kUnion:
        if (!need(size_t{vlen} * 12)) return terr("truncated member list of ", vlen);
        if (int bad = names_ok(vlen, 12); bad >= 0) return terr("member ", bad, " name offset out of range");
        p += size_t{vlen} * 12;
        nmembers += vlen;
        break;
      case BtfKind::kEnum:
        if (!need(size_t{vlen} * 8)) return terr("truncated ENUM values");
        if (int bad = names_ok(vlen, 8); bad >= 0) return terr("enumerator ", bad, " name offset out of range");
        p += size_t{vlen} * 8;
        nenums += vlen;
        break;
      case BtfKind::kEnum64:
        if (!need(size_t{vlen} * 12)) return terr("truncated ENUM64 values");
        if (int bad = names_ok(vlen, 12); bad >= 0) return terr("enumerator ", bad, " name offset out of range");
        p += size_t{vlen} * 12;
        nenums += vlen;
        break;
      case BtfKind::kFuncProto:
        if (!need(size_t{vlen} * 8)) return terr("truncated FUNC_PROTO parameters");
        if (int bad = names_ok(vlen, 8); bad >= 0) return terr("parameter ", bad, " name offset out of range");
        p += size_t{vlen} * 8;
        nmembers += vlen;
        break;
      case BtfKind::kVar: {
        if (!need(4)) return terr("truncated VAR");
        uint32_t linkage = Load32(p);
        p += 4;
        if (linkage > 2) return terr("VAR linkage ", linkage, " is unknown");
        break;
      }
      case BtfKind::kDatasec:
        if (!need(size_t{vlen} * 12)) return terr("truncated DATASEC entries");
        p += size_t{vlen} * 12;
        nsecinfos += vlen;
        break;
      case BtfKind::kDeclTag:
        if (!need(4)) return terr("truncated DECL_TAG");
        p += 4;
        break;
      case BtfKind::kFunc:
        if (vlen > 2) return terr("FUNC linkage ", vlen, " is unknown");
        break;
      default:
        break;
    }
  }

  btf.types_.resize(first_slot + ntypes);
  btf.members_.resize(nmembers);
  btf.enums_.resize(nenums);
  btf.secinfos_.resize(nsecinfos);
  if (lazy) {
    auto state = std::make_unique<LazyState>();
    state->owner = std::move(owner);
    state->wire = types_begin;
    state->first_slot = first_slot;
    state->chunks = std::move(chunks);
    state->done = std::make_unique<std::atomic<bool>[]>(state->chunks.size());
    state->name_offs = std::move(name_offs);
    btf.lazy_ = std::move(state);
    return btf;
  }
  Prefault(btf.types_.data() + first_slot, sizeof(BtfType) * ntypes);
  Prefault(btf.members_.data(), sizeof(BtfMember) * nmembers);
  Prefault(btf.enums_.data(), sizeof(BtfEnumValue) * nenums);
  Prefault(btf.secinfos_.data(), sizeof(BtfVarSecinfo) * nsecinfos);
  btf.DecodeRange(types_begin, first_slot, ntypes, 0, 0, 0);
  TETHER_RETURN_IF_ERROR(btf.Validate(what));
  return btf;
}

absl::Status Btf::Validate(absl::string_view what) const {
  const uint32_t n = NumTypes();
  auto err = [&](uint32_t id, auto&&... args) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": type [", id, "] ", BtfKindName(TypeById(id)->kind), " '",
                     NameOf(id), "': ", args...));
  };
  for (uint32_t id = FirstOwnId(); id < n; ++id) {
    const BtfType& t = Own(id);
    auto check = [&](uint32_t ref, absl::string_view field) -> absl::Status {
      if (ref >= n) return err(id, field, " refers to type ", ref, ", past the last id ", n - 1);
      return absl::OkStatus();
    };
    absl::Status st;
    switch (t.kind) {
      case BtfKind::kPtr:
      case BtfKind::kTypedef:
      case BtfKind::kVolatile:
      case BtfKind::kConst:
      case BtfKind::kRestrict:
      case BtfKind::kTypeTag:
      case BtfKind::kFuncProto:
        st = check(t.type(), "type");
        break;
      case BtfKind::kFunc:
        st = check(t.type(), "type");
        if (st.ok() && TypeById(t.type())->kind != BtfKind::kFuncProto) {
          return err(id, "type ", t.type(), " is not a FUNC_PROTO");
        }
        break;
      case BtfKind::kVar:
        st = check(t.type(), "type");
        break;
      case BtfKind::kDeclTag:
        st = check(t.type(), "type");
        break;
      case BtfKind::kArray:
        st = check(t.extra, "element type");
        if (st.ok()) st = check(t.array_index_type, "index type");
        break;
      case BtfKind::kStruct:
      case BtfKind::kUnion:
        for (const BtfMember& m : Members(t)) {
          if (m.type >= n) return err(id, "member '", String(m.name_off), "' refers to type ",
                                      m.type, ", past the last id ", n - 1);
          if (t.kind_flag == false && m.bit_offset > uint64_t{t.size()} * 8) {
            return err(id, "member '", String(m.name_off), "' at bit ", m.bit_offset,
                       " is past the struct size ", t.size());
          }
        }
        break;
      case BtfKind::kDatasec:
        for (const BtfVarSecinfo& v : Secinfos(t)) {
          if (v.type >= n || v.type == 0) return err(id, "entry refers to type ", v.type);
        }
        break;
      default:
        break;
    }
    if (!st.ok()) return st;
    if (t.kind == BtfKind::kFuncProto) {
      for (const BtfMember& m : Members(t)) {
        if (m.type >= n) return err(id, "parameter refers to type ", m.type);
      }
    }
  }
  // Chains through typedefs, modifiers, arrays and vars must end: a loop
  // there has no size and would send every resolver around forever.
  // Pointers break chains legitimately (a list node points to itself).
  // A chain that reaches the base ends there: the base was validated.
  std::vector<uint8_t> state(types_.size(), 0);  // 0 new, 1 on the current path, 2 done
  std::vector<uint32_t> path;
  auto next = [&](uint32_t id) -> uint32_t {
    const BtfType& t = Own(id);
    switch (t.kind) {
      case BtfKind::kTypedef:
      case BtfKind::kVolatile:
      case BtfKind::kConst:
      case BtfKind::kRestrict:
      case BtfKind::kTypeTag:
      case BtfKind::kVar:
      case BtfKind::kDeclTag:
        return t.type();
      case BtfKind::kArray:
        return t.extra;
      default:
        return 0;
    }
  };
  auto own = [&](uint32_t id) { return id >= start_id_ && id != 0; };
  for (uint32_t start = FirstOwnId(); start < n; ++start) {
    path.clear();
    uint32_t cur = start;
    while (own(cur) && state[cur - start_id_] == 0) {
      state[cur - start_id_] = 1;
      path.push_back(cur);
      cur = next(cur);
    }
    if (own(cur) && state[cur - start_id_] == 1) {
      return err(cur, "is part of a reference cycle (", path.size(),
                 " types starting at id ", start, ")");
    }
    for (uint32_t p : path) state[p - start_id_] = 2;
  }
  return absl::OkStatus();
}

namespace {

// Word-at-a-time multiplicative hash: names are short, and this runs once
// per named type of vmlinux on every parse.
uint64_t NameHash(absl::string_view s) {
  constexpr uint64_t kMul = 0x9e3779b97f4a7c15ull;
  uint64_t h = s.size() * kMul;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * kMul;
    h ^= h >> 29;
  }
  uint64_t w = 0;
  memcpy(&w, s.data() + i, s.size() - i);
  h = (h ^ w) * kMul;
  return h ^ (h >> 32);
}

}  // namespace

void Btf::BuildNameIndex() const {
  name_ids_.clear();
  name_groups_.clear();
  name_slots_.clear();
  const uint32_t first = FirstOwnId() - start_id_;
  const uint32_t n = static_cast<uint32_t>(types_.size());
  // Hashes first, in one sequential pass over the names; the table is
  // then filled with each slot prefetched a few types ahead. The table is
  // bigger than the caches for vmlinux, and waiting on each slot in turn
  // was most of the time.
  std::vector<uint32_t> hashes;
  ReserveExact(&hashes, n - first);
  hashes.resize(n - first);
  uint32_t named = 0;
  for (uint32_t i = first; i < n; ++i) {
    uint32_t off = NameOffAt(i);
    if (off == 0) continue;
    ++named;
    hashes[i - first] = static_cast<uint32_t>(NameHash(String(off)));
  }
  if (named == 0) return;
  size_t cap = 16;
  while (cap < size_t{named} * 2) cap <<= 1;
  const size_t mask = cap - 1;
  ReserveExact(&name_slots_, cap);
  name_slots_.assign(cap, NameSlot{});
  ReserveExact(&name_groups_, named);
  // Each type's group, then a counting sort: ids stay in id order within
  // a name, and equal names stored at different offsets (BTF nobody
  // deduplicated) still land in one group.
  std::vector<uint32_t> group_of;
  ReserveExact(&group_of, n - first);
  group_of.resize(n - first);
  constexpr uint32_t kAhead = 16;
  for (uint32_t i = first; i < n; ++i) {
    if (i + kAhead < n) __builtin_prefetch(&name_slots_[hashes[i + kAhead - first] & mask]);
    uint32_t off = NameOffAt(i);
    if (off == 0) continue;
    absl::string_view name;  // only read on a collision
    for (size_t slot = hashes[i - first] & mask;; slot = (slot + 1) & mask) {
      NameSlot& s = name_slots_[slot];
      if (s.group == 0) {
        name_groups_.push_back({off, 0, 0});
        s = {off, static_cast<uint32_t>(name_groups_.size())};
      } else if (s.name_off != off) {
        if (name.empty()) name = String(off);
        if (String(s.name_off) != name) continue;
      }
      ++name_groups_[s.group - 1].count;
      group_of[i - first] = s.group - 1;
      break;
    }
  }
  uint32_t start = 0;
  for (NameGroup& g : name_groups_) {
    g.start = start;
    start += g.count;
    g.count = 0;
  }
  ReserveExact(&name_ids_, start);
  name_ids_.resize(start);
  for (uint32_t i = first; i < n; ++i) {
    if (NameOffAt(i) == 0) continue;
    NameGroup& g = name_groups_[group_of[i - first]];
    name_ids_[g.start + g.count++] = start_id_ + i;
  }
}

absl::StatusOr<Btf> Btf::LoadKernel(const std::string& path, const Btf* base) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return sys::ErrnoStatus(errno, path, "open");
  struct stat st;
  size_t size = (fstat(fd, &st) == 0 && st.st_size > 0) ? st.st_size : 0;
  // /sys/kernel/btf/* is the kernel's own BTF, which the kernel validated
  // before publishing it; files elsewhere (an older kernel's BTF, say) are
  // checked like any blob.
  struct statfs fs;
  constexpr long kSysfsMagic = 0x62656572;
  const bool trusted = fstatfs(fd, &fs) == 0 && fs.f_type == kSysfsMagic &&
                       (base == nullptr || base->lazy_ != nullptr);
  // Newer kernels let vmlinux BTF be mapped: parsing straight from the
  // kernel's pages skips copying 5 MB into freshly faulted memory.
  if (size != 0) {
    void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map != MAP_FAILED) {
      close(fd);
      // The mapping stays while any copy of the Btf does: its strings are
      // read in place.
      std::shared_ptr<const void> owner(map, [size](const void* m) {
        munmap(const_cast<void*>(m), size);
      });
      return ParseOwned(absl::MakeConstSpan(static_cast<const uint8_t*>(map), size), path, base,
                        std::move(owner), trusted);
    }
  }
  // sysfs reports the real size; the buffer is left uninitialised because
  // read() fills it, and zeroing it first showed up in profiles.
  size_t cap = size != 0 ? size + 1 : 1 << 20;
  std::unique_ptr<uint8_t[]> buf(new uint8_t[cap]);
  size_t len = 0;
  for (;;) {
    if (len == cap) {
      std::unique_ptr<uint8_t[]> bigger(new uint8_t[cap * 2]);
      memcpy(bigger.get(), buf.get(), len);
      buf = std::move(bigger);
      cap *= 2;
    }
    ssize_t r = read(fd, buf.get() + len, cap - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      close(fd);
      return sys::ErrnoStatus(e, path, "read");
    }
    if (r == 0) break;
    len += r;
  }
  close(fd);
  if (!trusted) return Parse(absl::MakeConstSpan(buf.get(), len), path, base);
  // The buffer stays while the Btf does: strings are read in place, and
  // lazily decoded types come from it.
  std::shared_ptr<const uint8_t> owner(buf.release(), std::default_delete<uint8_t[]>());
  const uint8_t* bytes = owner.get();
  return ParseOwned(absl::MakeConstSpan(bytes, len), path, base, std::move(owner), trusted);
}

const BtfType* Btf::TypeById(uint32_t id) const {
  if (id < start_id_) return base_->TypeById(id);
  id -= start_id_;
  if (id >= types_.size()) return nullptr;
  if (lazy_) EnsureDecoded(id);
  return &types_[id];
}
BtfType* Btf::MutableTypeById(uint32_t id) {
  if (id < start_id_) return nullptr;  // the base is shared and immutable
  id -= start_id_;
  if (id >= types_.size()) return nullptr;
  if (lazy_) EnsureDecoded(id);
  return &types_[id];
}

absl::StatusOr<const BtfType*> Btf::Type(uint32_t id) const {
  const BtfType* t = TypeById(id);
  if (t == nullptr) {
    return absl::NotFoundError(absl::StrCat("BTF type id ", id, " does not exist (",
                                            NumTypes() - 1, " types)"));
  }
  return t;
}

absl::string_view Btf::String(uint32_t off) const {
  if (off < start_str_) return base_->String(off);
  off -= start_str_;
  if (off >= strings_size_) return {};
  const char* b = strings_.get() + off;
  return absl::string_view(b, strlen(b));
}

absl::string_view Btf::NameOf(uint32_t id) const {
  const BtfType* t = TypeById(id);
  return t ? String(t->name_off) : absl::string_view();
}

absl::Span<const uint32_t> Btf::IdsByName(absl::string_view name) const {
  EnsureNameIndex();
  if (name_slots_.empty()) return {};
  const size_t mask = name_slots_.size() - 1;
  for (size_t slot = static_cast<uint32_t>(NameHash(name)) & mask;; slot = (slot + 1) & mask) {
    const NameSlot& s = name_slots_[slot];
    if (s.group == 0) return {};
    if (String(s.name_off) == name) {
      const NameGroup& group = name_groups_[s.group - 1];
      return absl::MakeConstSpan(name_ids_).subspan(group.start, group.count);
    }
  }
}

uint32_t Btf::NameOffAt(uint32_t slot) const {
  // Lazily decoded BTF noted every name while checking its structure, so
  // that names need no decoded type.
  return lazy_ ? lazy_->name_offs[slot - lazy_->first_slot] : types_[slot].name_off;
}

void Btf::ForEachNamedType(absl::FunctionRef<void(uint32_t, uint32_t)> fn) const {
  for (uint32_t slot = FirstOwnId() - start_id_; slot < types_.size(); ++slot) {
    uint32_t off = NameOffAt(slot);
    if (off != 0) fn(start_id_ + slot, off);
  }
}

absl::optional<uint32_t> Btf::FindByNameKind(absl::string_view name, BtfKind kind) const {
  for (uint32_t id : IdsByName(name)) {
    if (Own(id).kind == kind) return id;
  }
  return absl::nullopt;
}

absl::Span<const BtfMember> Btf::Members(const BtfType& t) const {
  if (!t.is_composite() && t.kind != BtfKind::kFuncProto) return {};
  if (base_ && !Owns(t)) return base_->Members(t);
  return absl::MakeConstSpan(members_).subspan(t.first, t.vlen);
}
absl::Span<BtfMember> Btf::MutableMembers(const BtfType& t) {
  if (!t.is_composite() && t.kind != BtfKind::kFuncProto) return {};
  if (base_ && !Owns(t)) return {};
  return absl::MakeSpan(members_).subspan(t.first, t.vlen);
}
absl::Span<const BtfEnumValue> Btf::EnumValues(const BtfType& t) const {
  if (t.kind != BtfKind::kEnum && t.kind != BtfKind::kEnum64) return {};
  if (base_ && !Owns(t)) return base_->EnumValues(t);
  return absl::MakeConstSpan(enums_).subspan(t.first, t.vlen);
}
absl::Span<const BtfVarSecinfo> Btf::Secinfos(const BtfType& t) const {
  if (t.kind != BtfKind::kDatasec) return {};
  if (base_ && !Owns(t)) return base_->Secinfos(t);
  return absl::MakeConstSpan(secinfos_).subspan(t.first, t.vlen);
}
absl::Span<BtfVarSecinfo> Btf::MutableSecinfos(const BtfType& t) {
  if (t.kind != BtfKind::kDatasec) return {};
  if (base_ && !Owns(t)) return {};
  return absl::MakeSpan(secinfos_).subspan(t.first, t.vlen);
}

uint32_t Btf::SkipModifiers(uint32_t id, bool skip_typedefs) const {
  // Validate() proved these chains finite; the bound guards hand-edited types.
  for (int i = 0; i < kMaxResolveDepth; ++i) {
    const BtfType* tp = TypeById(id);
    if (tp == nullptr) break;
    const BtfType& t = *tp;
    if (t.is_modifier() || (skip_typedefs && t.kind == BtfKind::kTypedef)) {
      id = t.type();
    } else {
      break;
    }
  }
  return id;
}

uint32_t Btf::SkipQualifiers(uint32_t id) const { return SkipModifiers(id, true); }

absl::StatusOr<uint64_t> Btf::SizeOf(uint32_t id) const {
  uint64_t mult = 1;
  for (int i = 0; i < kMaxResolveDepth; ++i) {
    const BtfType* tp = TypeById(id);
    if (tp == nullptr) return absl::NotFoundError(absl::StrCat("BTF type ", id, " does not exist"));
    const BtfType& t = *tp;
    switch (t.kind) {
      case BtfKind::kInt:
      case BtfKind::kEnum:
      case BtfKind::kEnum64:
      case BtfKind::kStruct:
      case BtfKind::kUnion:
      case BtfKind::kDatasec:
      case BtfKind::kFloat:
        return mult * t.size();
      case BtfKind::kPtr:
        return mult * 8;
      case BtfKind::kArray:
        if (t.array_nelems != 0 && mult > (uint64_t{1} << 40) / t.array_nelems) {
          return absl::InvalidArgumentError(absl::StrCat("BTF type ", id, ": array size overflows"));
        }
        mult *= t.array_nelems;
        id = t.extra;
        break;
      case BtfKind::kTypedef:
      case BtfKind::kVolatile:
      case BtfKind::kConst:
      case BtfKind::kRestrict:
      case BtfKind::kTypeTag:
      case BtfKind::kVar:
      case BtfKind::kDeclTag:
        id = t.type();
        break;
      default:
        return absl::InvalidArgumentError(absl::StrCat("BTF type [", id, "] ", BtfKindName(t.kind),
                                                       " '", Name(t), "' has no size"));
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("BTF type ", id, ": reference chain too long"));
}

namespace {
absl::StatusOr<uint32_t> AlignOfImpl(const Btf& btf, uint32_t id, int depth) {
  if (depth > kMaxResolveDepth) {
    return absl::InvalidArgumentError(absl::StrCat("BTF type ", id, ": nested too deeply (a struct containing itself?)"));
  }
  id = btf.SkipQualifiers(id);
  const BtfType* t = btf.TypeById(id);
  if (t == nullptr) return absl::NotFoundError(absl::StrCat("BTF type ", id, " does not exist"));
  switch (t->kind) {
    case BtfKind::kInt:
    case BtfKind::kEnum:
    case BtfKind::kEnum64:
    case BtfKind::kFloat: {
      uint32_t s = t->size();
      return s == 0 ? 1 : std::min<uint32_t>(s, 8);
    }
    case BtfKind::kPtr:
      return 8;
    case BtfKind::kArray:
      return AlignOfImpl(btf, t->extra, depth + 1);
    case BtfKind::kStruct:
    case BtfKind::kUnion: {
      uint32_t a = 1;
      for (const BtfMember& m : btf.Members(*t)) {
        auto ma = AlignOfImpl(btf, m.type, depth + 1);
        if (!ma.ok()) return ma.status();
        a = std::max(a, *ma);
      }
      return a;
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat("BTF type [", id, "] ", BtfKindName(t->kind),
                                                     " has no alignment"));
  }
}
}  // namespace

absl::StatusOr<uint32_t> Btf::AlignOf(uint32_t id) const { return AlignOfImpl(*this, id, 0); }

absl::StatusOr<Btf::MemberLocation> Btf::FindMember(uint32_t struct_id,
                                                    absl::string_view name) const {
  // Anonymous members are searched breadth-first like C name lookup would
  // find them; depth is bounded by kMaxResolveDepth.
  struct Pending {
    uint32_t id;
    uint32_t base_bits;
    int depth;
  };
  std::vector<Pending> queue = {{SkipQualifiers(struct_id), 0, 0}};
  for (size_t qi = 0; qi < queue.size(); ++qi) {
    Pending cur = queue[qi];
    const BtfType* t = TypeById(cur.id);
    if (t == nullptr || !t->is_composite()) {
      if (qi == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("BTF type ", struct_id, " is not a struct or union"));
      }
      continue;
    }
    for (const BtfMember& m : Members(*t)) {
      if (m.name_off == 0) {
        if (cur.depth < kMaxResolveDepth) {
          queue.push_back({SkipQualifiers(m.type), cur.base_bits + m.bit_offset, cur.depth + 1});
        }
        continue;
      }
      if (String(m.name_off) == name) {
        return MemberLocation{m.type, cur.base_bits + m.bit_offset, m.bitfield_size};
      }
    }
  }
  return absl::NotFoundError(absl::StrCat("BTF type [", struct_id, "] '", NameOf(struct_id),
                                          "' has no member '", name, "'"));
}

std::vector<uint8_t> Btf::Marshal() const {
  // Sized first, so that the blob is written once: header, types and
  // strings, with no intermediate copy of the types and no regrowth.
  uint64_t type_len = 0;
  for (uint32_t id = FirstOwnId(); id < NumTypes(); ++id) type_len += WireSize(Own(id));
  std::vector<uint8_t> blob = BlobHeader(static_cast<uint32_t>(type_len), strings_size_);
  WordWriter types(&blob);
  for (uint32_t id = FirstOwnId(); id < NumTypes(); ++id) {
    const BtfType& t = Own(id);
    types.Put(t.name_off);
    types.Put(TypeInfo(t.kind, t.kind_flag, t.vlen));
    types.Put(t.size_or_type);
    switch (t.kind) {
      case BtfKind::kInt:
      case BtfKind::kVar:
      case BtfKind::kDeclTag:
        types.Put(t.extra);
        break;
      case BtfKind::kArray:
        types.Put(t.extra);
        types.Put(t.array_index_type);
        types.Put(t.array_nelems);
        break;
      case BtfKind::kStruct:
      case BtfKind::kUnion:
        for (const BtfMember& m : Members(t)) {
          types.Put(m.name_off);
          types.Put(m.type);
          types.Put(t.kind_flag ? (m.bitfield_size << 24) | (m.bit_offset & 0xffffff)
                                         : m.bit_offset);
        }
        break;
      case BtfKind::kFuncProto:
        for (const BtfMember& m : Members(t)) {
          types.Put(m.name_off);
          types.Put(m.type);
        }
        break;
      case BtfKind::kEnum:
        for (const BtfEnumValue& v : EnumValues(t)) {
          types.Put(v.name_off);
          types.Put(static_cast<uint32_t>(v.value));
        }
        break;
      case BtfKind::kEnum64:
        for (const BtfEnumValue& v : EnumValues(t)) {
          types.Put(v.name_off);
          types.Put(static_cast<uint32_t>(v.value));
          types.Put(static_cast<uint32_t>(v.value >> 32));
        }
        break;
      case BtfKind::kDatasec:
        for (const BtfVarSecinfo& v : Secinfos(t)) {
          types.Put(v.type);
          types.Put(v.offset);
          types.Put(v.size);
        }
        break;
      default:
        break;
    }
  }
  types.Flush();
  // The header says what was written (WireSize only sized the reserve).
  const uint32_t written = static_cast<uint32_t>(blob.size() - sizeof(btf_header));
  memcpy(blob.data() + offsetof(btf_header, type_len), &written, sizeof(written));
  memcpy(blob.data() + offsetof(btf_header, str_off), &written, sizeof(written));
  blob.insert(blob.end(), strings_.get(), strings_.get() + strings_size_);
  return blob;
}

// --- .BTF.ext ------------------------------------------------------------------

absl::StatusOr<BtfExt> ParseBtfExt(absl::Span<const uint8_t> data, const Btf& btf) {
  auto err = [&](auto&&... args) {
    return absl::InvalidArgumentError(absl::StrCat(".BTF.ext: ", args...));
  };
  if (data.size() < 24) return err("header truncated: ", data.size(), " bytes, need 24");
  uint16_t magic;
  memcpy(&magic, data.data(), 2);
  if (magic != kBtfMagic) return err(absl::StrFormat("bad magic 0x%04x at offset 0", magic));
  if (data[2] != 1) return err("unsupported version ", data[2], " at offset 2");
  uint32_t hdr_len = Load32(&data[4]);
  if (hdr_len < 24 || hdr_len > data.size()) {
    return err("header length ", hdr_len, " at offset 4 is outside [24, ", data.size(), "]");
  }
  struct Part {
    const char* what;
    uint32_t off = 0, len = 0;
    uint32_t min_rec;
  };
  Part parts[3] = {{"func_info", 0, 0, 8}, {"line_info", 0, 0, 16}, {"core_relo", 0, 0, 16}};
  parts[0].off = Load32(&data[8]);
  parts[0].len = Load32(&data[12]);
  parts[1].off = Load32(&data[16]);
  parts[1].len = Load32(&data[20]);
  if (hdr_len >= 32) {
    parts[2].off = Load32(&data[24]);
    parts[2].len = Load32(&data[28]);
  }
  BtfExt ext;
  uint64_t body = data.size() - hdr_len;
  for (int pi = 0; pi < 3; ++pi) {
    const Part& part = parts[pi];
    if (part.len == 0) continue;
    if (uint64_t{part.off} + part.len > body) {
      return err(part.what, " [", part.off, ", +", part.len, ") exceeds the ", body,
                 " bytes after the header");
    }
    const uint8_t* p = data.data() + hdr_len + part.off;
    const uint8_t* end = p + part.len;
    if (part.len < 4) return err(part.what, ": truncated record size");
    uint32_t rec_size = Load32(p);
    p += 4;
    if (rec_size < part.min_rec || rec_size % 4 != 0 || rec_size > 1024) {
      return err(part.what, ": record size ", rec_size, " is not supported (minimum ",
                 part.min_rec, ")");
    }
    while (p < end) {
      size_t at = part.off + static_cast<size_t>(p - (data.data() + hdr_len + part.off));
      if (end - p < 8) return err(part.what, ": truncated section header at offset ", at);
      uint32_t name_off = Load32(p), num = Load32(p + 4);
      p += 8;
      absl::string_view sec = btf.String(name_off);
      if (sec.empty()) {
        return err(part.what, ": section name offset ", name_off, " at offset ", at,
                   " is not a string in .BTF");
      }
      if (uint64_t{num} * rec_size > static_cast<uint64_t>(end - p)) {
        return err(part.what, ": section '", sec, "' claims ", num, " records of ", rec_size,
                   " bytes at offset ", at, ", past the end");
      }
      BtfExtSection& out = ext.sections[std::string(sec)];
      // The count is known (and bounded by the bytes just checked): one
      // allocation per list instead of one per doubling. Only for a
      // section's first header: exact reserves on repeated headers of one
      // section would copy the list every time.
      auto reserve = [num](auto* list) {
        if (list->empty()) list->reserve(num);
      };
      auto bad_offset = [&](uint32_t i, uint32_t byte_off) {
        return err(part.what, ": section '", sec, "' record ", i, " has instruction offset ",
                   byte_off, ", not a multiple of 8");
      };
      // One loop per kind of record, so that the kind is not tested again
      // for every record.
      if (pi == 0) {
        reserve(&out.func_info);
        for (uint32_t i = 0; i < num; ++i, p += rec_size) {
          uint32_t byte_off = Load32(p);
          if (byte_off % 8 != 0) return bad_offset(i, byte_off);
          out.func_info.push_back({byte_off / 8, Load32(p + 4)});
        }
      } else if (pi == 1) {
        reserve(&out.line_info);
        for (uint32_t i = 0; i < num; ++i, p += rec_size) {
          uint32_t byte_off = Load32(p);
          if (byte_off % 8 != 0) return bad_offset(i, byte_off);
          out.line_info.push_back({byte_off / 8, Load32(p + 4), Load32(p + 8), Load32(p + 12)});
        }
      } else {
        reserve(&out.core_relos);
        for (uint32_t i = 0; i < num; ++i, p += rec_size) {
          uint32_t byte_off = Load32(p);
          if (byte_off % 8 != 0) return bad_offset(i, byte_off);
          uint32_t kind = Load32(p + 12);
          if (kind > static_cast<uint32_t>(CoreReloKind::kTypeMatches)) {
            return err("core_relo: section '", sec, "' record ", i, " has unknown kind ", kind);
          }
          out.core_relos.push_back(
              {byte_off / 8, Load32(p + 4), Load32(p + 8), static_cast<CoreReloKind>(kind)});
        }
      }
    }
  }
  return ext;
}

// --- kernel compatibility -------------------------------------------------------

// KernelBtfFeatures() is defined with the feature probes it asks
// (lib/features/btf_kinds.cc), one layer up.

std::vector<uint8_t> SanitizeBtfForKernel(const Btf& btf, const BtfFeatures& features) {
  std::vector<uint8_t> blob = btf.Marshal();
  // A kernel with every kind rewrites nothing below: the marshalled blob
  // is the answer, without splitting and reassembling a copy of it.
  if (features.func && features.func_global && features.datasec && features.float_kind &&
      features.decl_tag && features.type_tag && features.enum64) {
    return blob;
  }
  // The marshalled layout is ours: a 24-byte header, types, then strings.
  uint32_t type_len = Load32(&blob[12]);
  std::vector<uint8_t> types(blob.begin() + 24, blob.begin() + 24 + type_len);
  std::string strings(blob.begin() + 24 + type_len, blob.end());
  auto w32 = [&](size_t off, uint32_t v) { memcpy(&types[off], &v, 4); };
  auto r32 = [&](size_t off) { return Load32(&types[off]); };
  uint32_t placeholder_id = 0;
  bool need_placeholder = false;
  const uint32_t n = btf.NumTypes();
  size_t off = 0;
  for (uint32_t id = 1; id < n; ++id) {
    const BtfType& t = *btf.TypeById(id);
    size_t start = off;
    off += 12;
    size_t tail = 0;
    switch (t.kind) {
      case BtfKind::kInt: case BtfKind::kVar: case BtfKind::kDeclTag: tail = 4; break;
      case BtfKind::kArray: tail = 12; break;
      case BtfKind::kStruct: case BtfKind::kUnion: case BtfKind::kDatasec:
      case BtfKind::kEnum64: tail = 12u * t.vlen; break;
      case BtfKind::kEnum: case BtfKind::kFuncProto: tail = 8u * t.vlen; break;
      default: break;
    }
    switch (t.kind) {
      case BtfKind::kVar:
        if (!features.datasec) {
          w32(start + 4, TypeInfo(BtfKind::kInt, false, 0));
          w32(start + 8, 1);
          w32(start + 12, 8);  // 8 bits, no encoding
        }
        break;
      case BtfKind::kDatasec:
        if (!features.datasec) {
          // Same record layout as struct members: {name, type, offset},
          // where the struct wants the var's name and a bit offset.
          w32(start + 4, TypeInfo(BtfKind::kStruct, false, t.vlen));
          // The kernel wants every member inside the struct. A section's
          // size is 0 in the compiler's output until the loader fills it
          // in, so grow the struct to cover its (now 1-byte) members.
          uint64_t needed = t.size_or_type;
          for (uint32_t i = 0; i < t.vlen; ++i) {
            size_t m = start + 12 + 12 * i;
            uint32_t var = r32(m);
            uint32_t var_off = r32(m + 4);
            const BtfType* vt = btf.TypeById(var);
            w32(m, vt ? vt->name_off : 0);
            w32(m + 4, var);
            w32(m + 8, var_off * 8);
            needed = std::max<uint64_t>(needed, uint64_t{var_off} + 1);
          }
          w32(start + 8, static_cast<uint32_t>(std::min<uint64_t>(needed, UINT32_MAX)));
          // Section names like ".data" are not C identifiers.
          for (size_t i = t.name_off; i < strings.size() && strings[i]; ++i) {
            if (strings[i] == '.') strings[i] = '_';
          }
        }
        break;
      case BtfKind::kFuncProto:
        if (!features.func) {
          // Params {name, type} have the layout of enum values {name, val}.
          w32(start + 4, TypeInfo(BtfKind::kEnum, false, t.vlen));
          w32(start + 8, 4);
          for (uint32_t i = 0; i < t.vlen; ++i) w32(start + 12 + 8 * i + 4, 0);
        }
        break;
      case BtfKind::kFunc:
        if (!features.func) {
          w32(start + 4, TypeInfo(BtfKind::kTypedef, false, 0));
        } else if (!features.func_global && t.vlen != 0) {
          w32(start + 4, TypeInfo(BtfKind::kFunc, false, 0));
        }
        break;
      case BtfKind::kFloat:
        if (!features.float_kind) {
          w32(start, 0);  // "float" is not a valid struct name
          w32(start + 4, TypeInfo(BtfKind::kStruct, false, 0));
        }
        break;
      case BtfKind::kDeclTag:
        if (!features.decl_tag) {
          w32(start, 0);
          w32(start + 4, TypeInfo(BtfKind::kInt, false, 0));
          w32(start + 8, 1);
          w32(start + 12, 8);
        }
        break;
      case BtfKind::kTypeTag:
        if (!features.type_tag) {
          w32(start, 0);
          w32(start + 4, TypeInfo(BtfKind::kConst, false, 0));
        }
        break;
      case BtfKind::kEnum:
        if (!features.enum64 && t.kind_flag) w32(start + 4, TypeInfo(BtfKind::kEnum, false, t.vlen));
        break;
      case BtfKind::kEnum64:
        if (!features.enum64) {
          // ENUM64 values {name, lo, hi} become union members {name, type,
          // offset}: all of the placeholder type at offset 0.
          need_placeholder = true;
          placeholder_id = n;
          w32(start + 4, TypeInfo(BtfKind::kUnion, false, t.vlen));
          for (uint32_t i = 0; i < t.vlen; ++i) {
            w32(start + 12 + 12 * i + 4, placeholder_id);
            w32(start + 12 + 12 * i + 8, 0);
          }
        }
        break;
      default:
        break;
    }
    off += tail;
  }
  if (need_placeholder) {
    uint32_t name = static_cast<uint32_t>(strings.size());
    strings += "enum64_placeholder";
    strings.push_back('\0');
    for (uint32_t v : {name, TypeInfo(BtfKind::kInt, false, 0), 1u, 8u}) AppendWord(&types, v);
  }
  return AssembleBlob(types, strings);
}

}  // namespace tether
