// BPF Type Format: parsing, lookup and re-encoding of .BTF and .BTF.ext.
//
// A Btf holds types decoded into flat tables, so lookups never touch the
// wire format again. Blobs are decoded and validated whole when parsed; the
// running kernel's BTF (vmlinux is about 150k types, most of which a
// process never reads) is decoded a block at a time on first access. Type ids are the kernel's: 0 is void, 1.. are the types
// in section order. Names are offsets into the string section, which is
// immutable after parsing and shared between copies of a Btf.
#ifndef TETHER_BTF_H_
#define TETHER_BTF_H_

#include <cstdint>
#include <memory>
#include <utility>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"

namespace tether {

enum class BtfKind : uint8_t {
  kVoid = 0,  // only id 0; never appears in the type section
  kInt = 1,
  kPtr = 2,
  kArray = 3,
  kStruct = 4,
  kUnion = 5,
  kEnum = 6,
  kFwd = 7,
  kTypedef = 8,
  kVolatile = 9,
  kConst = 10,
  kRestrict = 11,
  kFunc = 12,
  kFuncProto = 13,
  kVar = 14,
  kDatasec = 15,
  kFloat = 16,
  kDeclTag = 17,
  kTypeTag = 18,
  kEnum64 = 19,
};
inline constexpr int kBtfMaxKind = 19;
absl::string_view BtfKindName(BtfKind kind);

// INT encoding bits.
inline constexpr uint8_t kBtfIntSigned = 1;
inline constexpr uint8_t kBtfIntChar = 2;
inline constexpr uint8_t kBtfIntBool = 4;

// Linkage of FUNC (in vlen) and VAR.
enum class BtfLinkage : uint32_t { kStatic = 0, kGlobal = 1, kExtern = 2 };

// A struct/union member, or a FUNC_PROTO parameter (offset fields unused).
struct BtfMember {
  uint32_t name_off = 0;
  uint32_t type = 0;
  uint32_t bit_offset = 0;     // from the start of the struct
  uint32_t bitfield_size = 0;  // 0: not a bitfield
};

struct BtfEnumValue {
  uint32_t name_off = 0;
  uint64_t value = 0;  // sign-extended when the enum is signed
};

struct BtfVarSecinfo {
  uint32_t type = 0;  // a VAR (or FUNC for .ksyms)
  uint32_t offset = 0;
  uint32_t size = 0;
};

// One decoded type. Which fields mean something depends on kind; the
// variable-length parts (members, params, enum values, secinfos) live in
// the Btf's tables and are reached through Btf::Members() and friends.
struct BtfType {
  BtfKind kind = BtfKind::kVoid;
  bool kind_flag = false;
  uint16_t vlen = 0;
  uint32_t name_off = 0;
  // INT, ENUM, ENUM64, STRUCT, UNION, DATASEC, FLOAT: byte size.
  // PTR, TYPEDEF, modifiers, FUNC, VAR, DECL_TAG, TYPE_TAG, FUNC_PROTO
  // (return type): the referenced type.
  uint32_t size_or_type = 0;
  // INT: raw encoding word. VAR: linkage. DECL_TAG: component index
  // (as uint32_t; 0xffffffff means the declaration itself). ARRAY: element type.
  uint32_t extra = 0;
  // ARRAY: index type and element count.
  uint32_t array_index_type = 0;
  uint32_t array_nelems = 0;
  // First row of this type's variable-length part in its table.
  uint32_t first = 0;

  uint32_t size() const { return size_or_type; }
  uint32_t type() const { return size_or_type; }
  uint8_t int_encoding() const { return (extra >> 24) & 0x0f; }
  uint8_t int_offset() const { return (extra >> 16) & 0xff; }
  uint8_t int_bits() const { return extra & 0xff; }
  bool is_signed_enum() const { return kind_flag; }
  // FUNC linkage is stored in vlen by the format.
  BtfLinkage func_linkage() const { return static_cast<BtfLinkage>(vlen); }
  BtfLinkage var_linkage() const { return static_cast<BtfLinkage>(extra); }
  bool is_composite() const { return kind == BtfKind::kStruct || kind == BtfKind::kUnion; }
  bool is_modifier() const {
    return kind == BtfKind::kVolatile || kind == BtfKind::kConst ||
           kind == BtfKind::kRestrict || kind == BtfKind::kTypeTag;
  }
};

namespace detail {
// An allocator whose resize() leaves elements unwritten. The tables of a
// lazily decoded kernel BTF are megabytes that a process mostly never
// reads; writing them up front would fault in every page.
template <typename T>
struct UninitializedAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = UninitializedAllocator<U>;
  };
  UninitializedAllocator() = default;
  template <typename U>
  UninitializedAllocator(const UninitializedAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U*) noexcept {}
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
template <typename T>
using UninitializedVector = std::vector<T, UninitializedAllocator<T>>;
}  // namespace detail

class Btf {
 public:
  Btf();
  ~Btf();
  // A copy is fully decoded and owns its tables.
  Btf(const Btf& other);
  Btf& operator=(const Btf& other);
  Btf(Btf&&) noexcept;
  Btf& operator=(Btf&&) noexcept;

  // Parses raw .BTF bytes (header, types, strings). Every offset, length
  // and type reference is checked; referenced ids must exist, and chains of
  // typedefs/modifiers/arrays must not loop. `what` names the blob in errors.
  //
  // With `base`, the blob is split BTF (a kernel module's): its ids start
  // at base->NumTypes() and its string offsets at the end of base's
  // strings, and it may refer to base's types. `base` must outlive the
  // result and every copy of it; lookups of base ids and strings go there.
  static absl::StatusOr<Btf> Parse(absl::Span<const uint8_t> data,
                                   absl::string_view what = ".BTF",
                                   const Btf* base = nullptr);
  // Parses /sys/kernel/btf/vmlinux, or a module's file with vmlinux as base.
  // The running kernel's own files (on sysfs, with no base or a base that
  // is itself the kernel's) were checked by the kernel when it booted or
  // loaded the module: only their structure is checked again, and their
  // types are decoded lazily, a block at a time, on first access
  // (thread-safe). Any other file is parsed and validated like Parse().
  static absl::StatusOr<Btf> LoadKernel(const std::string& path = "/sys/kernel/btf/vmlinux",
                                        const Btf* base = nullptr);

  // Number of type ids including void (and a base's types): valid ids are
  // [0, NumTypes()).
  uint32_t NumTypes() const { return start_id_ + static_cast<uint32_t>(types_.size()); }
  // The first id this Btf holds itself: 1, or base->NumTypes() for split BTF.
  uint32_t FirstOwnId() const { return base_ ? start_id_ : 1; }
  const Btf* base() const { return base_; }
  // nullptr if id is out of range.
  const BtfType* TypeById(uint32_t id) const;
  BtfType* MutableTypeById(uint32_t id);
  absl::StatusOr<const BtfType*> Type(uint32_t id) const;

  // The string at a string-section offset; empty if out of range.
  absl::string_view String(uint32_t off) const;
  absl::string_view Name(const BtfType& t) const { return String(t.name_off); }
  absl::string_view NameOf(uint32_t id) const;

  // All ids with this name, in id order. Empty span if none. Split BTF
  // answers for its own types only. The first lookup builds the index
  // (thread-safe); names changed through MutableTypeById after that are
  // not seen.
  absl::Span<const uint32_t> IdsByName(absl::string_view name) const;
  // Calls fn(id, name offset) for each of this Btf's own named types, in
  // id order, without decoding them.
  void ForEachNamedType(absl::FunctionRef<void(uint32_t id, uint32_t name_off)> fn) const;
  // The first id with this name and kind.
  absl::optional<uint32_t> FindByNameKind(absl::string_view name, BtfKind kind) const;

  absl::Span<const BtfMember> Members(const BtfType& t) const;  // STRUCT/UNION/FUNC_PROTO
  absl::Span<BtfMember> MutableMembers(const BtfType& t);
  absl::Span<const BtfEnumValue> EnumValues(const BtfType& t) const;  // ENUM/ENUM64
  absl::Span<const BtfVarSecinfo> Secinfos(const BtfType& t) const;   // DATASEC
  absl::Span<BtfVarSecinfo> MutableSecinfos(const BtfType& t);

  // Follows typedefs and modifiers (const, volatile, restrict, type tags).
  uint32_t SkipQualifiers(uint32_t id) const;
  // Like SkipQualifiers, but follows typedefs only if the bool is set.
  uint32_t SkipModifiers(uint32_t id, bool skip_typedefs) const;
  // Byte size of a type (arrays multiply, pointers are 8). Fails for
  // types without a size (void, FUNC, FWD, FUNC_PROTO).
  absl::StatusOr<uint64_t> SizeOf(uint32_t id) const;
  // Alignment in bytes as the compiler would lay the type out.
  absl::StatusOr<uint32_t> AlignOf(uint32_t id) const;

  struct MemberLocation {
    uint32_t type = 0;           // the member's type id
    uint32_t bit_offset = 0;     // from the start of the outer type
    uint32_t bitfield_size = 0;  // 0: not a bitfield
  };
  // Finds a member by name in a struct/union (after skipping qualifiers),
  // descending into anonymous struct/union members.
  absl::StatusOr<MemberLocation> FindMember(uint32_t struct_id, absl::string_view name) const;

  // Re-encodes the types and strings into .BTF wire format.
  std::vector<uint8_t> Marshal() const;

 private:
  // Parse() with `owner` keeping `data` alive: the string section is then
  // used in place instead of copied.
  // With `trusted` (and an owner keeping the bytes alive), decoding is
  // deferred; the structural checks still run, while Validate() and the
  // name-offset checks of members, enumerators and parameters do not.
  static absl::StatusOr<Btf> ParseOwned(absl::Span<const uint8_t> data, absl::string_view what,
                                        const Btf* base, std::shared_ptr<const void> owner,
                                        bool trusted = false);
  void BuildNameIndex() const;
  absl::Status Validate(absl::string_view what) const;
  // True if t is one of this Btf's own types, not its base's.
  bool Owns(const BtfType& t) const {
    return &t >= types_.data() && &t < types_.data() + types_.size();
  }
  const BtfType& Own(uint32_t id) const {
    if (lazy_) EnsureDecoded(id - start_id_);
    return types_[id - start_id_];
  }
  // Lazy decoding: the block holding types_[slot], every block, the name index.
  void EnsureDecoded(uint32_t slot) const;
  void DecodeAll() const;
  void EnsureNameIndex() const;
  // The name offset of own slot `slot` (>= the first own slot), without
  // decoding it.
  uint32_t NameOffAt(uint32_t slot) const;
  // Decodes `count` types from wire bytes `p` into types_[slot...], their
  // members, enumerators and secinfos from the given rows on. The bytes
  // were checked by ParseOwned's structural pass.
  void DecodeRange(const uint8_t* p, uint32_t slot, uint32_t count, uint32_t member_row,
                   uint32_t enum_row, uint32_t secinfo_row);

  // The string section (immutable, shared by copies), and its size.
  std::shared_ptr<const char> strings_;
  uint32_t strings_size_ = 0;
  detail::UninitializedVector<BtfType> types_;  // types_[i] is id start_id_ + i
  detail::UninitializedVector<BtfMember> members_;
  detail::UninitializedVector<BtfEnumValue> enums_;
  detail::UninitializedVector<BtfVarSecinfo> secinfos_;
  struct LazyState;
  std::unique_ptr<LazyState> lazy_;  // only for lazily decoded kernel BTF
  const Btf* base_ = nullptr;
  uint32_t start_id_ = 0;
  uint32_t start_str_ = 0;  // string offsets below this are base's
  // Name index: ids grouped by name in id order. An open-addressed table
  // keyed by the name's hash, whose slots hold a string offset of the name
  // and its group number (+1; 0 is empty), so copies of a Btf share
  // nothing mutable.
  struct NameGroup {
    uint32_t name_off;
    uint32_t start;
    uint32_t count;
  };
  // Mutable: the index is built on the first lookup, through a const
  // method, under NameIndexState's lock.
  mutable std::vector<uint32_t> name_ids_;
  mutable std::vector<NameGroup> name_groups_;
  struct NameSlot {
    uint32_t name_off = 0;
    uint32_t group = 0;
  };
  mutable std::vector<NameSlot> name_slots_;
  struct NameIndexState;
  std::unique_ptr<NameIndexState> names_;  // whether the index is built yet
};

// --- .BTF.ext ---------------------------------------------------------------

// Instruction offsets below are in instructions (8 bytes), not bytes: the
// wire format of objects uses bytes, the kernel's PROG_LOAD uses
// instructions, and the spec converts once when parsing.
struct FuncInfo {
  uint32_t insn_off = 0;
  uint32_t type_id = 0;  // a FUNC
};
struct LineInfo {
  uint32_t insn_off = 0;
  uint32_t file_name_off = 0;
  uint32_t line_off = 0;
  uint32_t line_col = 0;  // line << 10 | column
};
// enum bpf_core_relo_kind values.
enum class CoreReloKind : uint32_t {
  kFieldByteOffset = 0,
  kFieldByteSize = 1,
  kFieldExists = 2,
  kFieldSigned = 3,
  kFieldLShiftU64 = 4,
  kFieldRShiftU64 = 5,
  kTypeIdLocal = 6,
  kTypeIdTarget = 7,
  kTypeExists = 8,
  kTypeSize = 9,
  kEnumvalExists = 10,
  kEnumvalValue = 11,
  kTypeMatches = 12,
};
struct CoreRelo {
  uint32_t insn_off = 0;
  uint32_t type_id = 0;
  uint32_t access_str_off = 0;  // into the .BTF string section, e.g. "0:1:2"
  CoreReloKind kind = CoreReloKind::kFieldByteOffset;
};

struct BtfExtSection {
  std::vector<FuncInfo> func_info;
  std::vector<LineInfo> line_info;
  std::vector<CoreRelo> core_relos;
};

struct BtfExt {
  // Keyed by ELF section name.
  absl::flat_hash_map<std::string, BtfExtSection> sections;
};

// Parses .BTF.ext; section names are resolved through `btf`'s strings.
// Record sizes larger than the known ones are accepted (newer fields are
// dropped); smaller ones are refused.
absl::StatusOr<BtfExt> ParseBtfExt(absl::Span<const uint8_t> data, const Btf& btf);

// --- kernel compatibility ----------------------------------------------------

// Which BTF features the running kernel accepts.
struct BtfFeatures {
  bool func = true;          // FUNC, FUNC_PROTO (4.20)
  bool func_global = true;   // FUNC with global linkage (5.6)
  bool datasec = true;       // VAR, DATASEC (5.2)
  bool float_kind = true;    // FLOAT (5.13)
  bool decl_tag = true;      // DECL_TAG (5.16)
  bool type_tag = true;      // TYPE_TAG (5.17)
  bool enum64 = true;        // ENUM64 and signed ENUM (6.0)
};

// The running kernel's answers to the BTF probes (probe::HaveBtfKind and
// HaveBtfFuncLinkage, tether/probe.h). Cached: the first call probes,
// later calls return the same answer.
const BtfFeatures& KernelBtfFeatures();

// Rewrites kinds the kernel would refuse into ones it accepts, the way the
// BPF toolchain does (DECL_TAG -> INT, TYPE_TAG -> CONST, ENUM64 -> UNION
// of placeholder INTs, FLOAT -> empty STRUCT, global FUNC -> static, and
// without DATASEC support VAR -> INT, DATASEC -> STRUCT) and returns the
// blob to pass to BTF_LOAD. Type ids are unchanged; at most one type is
// appended at the end.
std::vector<uint8_t> SanitizeBtfForKernel(const Btf& btf, const BtfFeatures& features);

}  // namespace tether

#endif  // TETHER_BTF_H_
