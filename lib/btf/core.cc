#include "tether/core.h"

#include <dirent.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/types/optional.h"
#include "btf/kernel_btf.h"
#include "base/mutex_internal.h"
#include "base/status_macros.h"

namespace tether {
namespace {

// libbpf's BPF_CORE_SPEC_MAX_LEN: deeper access paths are refused, which
// also bounds every recursion below.
constexpr size_t kMaxSpecLen = 64;
// Bound on the structural comparisons, which recurse through pointers and
// members of types that may refer to themselves.
constexpr int kMaxCompatDepth = 32;

bool IsFieldBased(CoreReloKind k) { return k <= CoreReloKind::kFieldRShiftU64; }
bool IsTypeBased(CoreReloKind k) {
  return (k >= CoreReloKind::kTypeIdLocal && k <= CoreReloKind::kTypeSize) ||
         k == CoreReloKind::kTypeMatches;
}
bool IsEnumvalBased(CoreReloKind k) {
  return k == CoreReloKind::kEnumvalExists || k == CoreReloKind::kEnumvalValue;
}
bool IsAnyEnum(const BtfType& t) { return t.kind == BtfKind::kEnum || t.kind == BtfKind::kEnum64; }
// Kinds that may stand for each other: a 32-bit enum locally may be an
// ENUM64 in the target and vice versa.
bool KindsCompatible(BtfKind a, BtfKind b) {
  if (a == b) return true;
  auto any_enum = [](BtfKind k) { return k == BtfKind::kEnum || k == BtfKind::kEnum64; };
  return any_enum(a) && any_enum(b);
}

std::string KindWord(BtfKind k) { return absl::AsciiStrToLower(BtfKindName(k)); }

// One step of an access path: a named member (of composite type_id), an
// array element (type_id is the element type, name empty), or an
// enumerator (of enum type_id).
struct Access {
  uint32_t type_id = 0;
  uint32_t idx = 0;
  absl::string_view name;
};

struct Spec {
  const Btf* btf = nullptr;
  uint32_t root_id = 0;
  CoreReloKind kind = CoreReloKind::kFieldByteOffset;
  std::vector<Access> access;  // named steps and array steps only
  std::vector<uint32_t> raw;   // every step, anonymous members included
  uint64_t bit_offset = 0;
};

// The type a modifier/typedef chain ends at, and its id.
const BtfType* Resolve(const Btf& btf, uint32_t id, uint32_t* out_id) {
  uint32_t r = btf.SkipQualifiers(id);
  if (out_id) *out_id = r;
  return btf.TypeById(r);
}

std::string Raw(const std::vector<uint32_t>& raw) {
  std::string s;
  for (size_t i = 0; i < raw.size(); ++i) absl::StrAppend(&s, i ? ":" : "", raw[i]);
  return s;
}

std::string FormatSpec(const Spec& spec) {
  const Btf& btf = *spec.btf;
  const BtfType* root = btf.TypeById(spec.root_id);
  std::string out = absl::StrCat("[", spec.root_id, "] ",
                                 root ? KindWord(root->kind) : std::string("?"), " ",
                                 btf.NameOf(spec.root_id));
  if (IsTypeBased(spec.kind)) return out;
  if (IsEnumvalBased(spec.kind)) {
    if (!spec.access.empty()) {
      const Access& a = spec.access[0];
      const BtfType* e = btf.TypeById(a.type_id);
      auto vals = e ? btf.EnumValues(*e) : absl::Span<const BtfEnumValue>();
      absl::StrAppend(&out, "::", a.name);
      if (a.idx < vals.size()) {
        absl::StrAppend(&out, " = ", static_cast<int64_t>(vals[a.idx].value));
      }
    }
    return out;
  }
  for (size_t i = 0; i < spec.access.size(); ++i) {
    const Access& a = spec.access[i];
    if (!a.name.empty()) {
      absl::StrAppend(&out, ".", a.name);
    } else if (i > 0) {
      absl::StrAppend(&out, "[", a.idx, "]");
    }
  }
  absl::StrAppend(&out, " (", Raw(spec.raw), " @ offset ", spec.bit_offset / 8);
  if (spec.bit_offset % 8) absl::StrAppend(&out, ".", spec.bit_offset % 8);
  absl::StrAppend(&out, ")");
  return out;
}

// A C array whose size is 0 and that ends its struct: any index is fine.
bool IsFlexArray(const Btf& btf, const Access& prev, const BtfType& array) {
  if (prev.name.empty() || array.array_nelems > 0) return false;
  const BtfType* t = btf.TypeById(prev.type_id);
  return t != nullptr && t->is_composite() && prev.idx + 1 == t->vlen;
}

absl::StatusOr<Spec> ParseSpec(const Btf& btf, uint32_t type_id, absl::string_view access,
                               CoreReloKind kind) {
  auto err = [&](auto&&... args) {
    return absl::InvalidArgumentError(absl::StrCat(args...));
  };
  Spec spec;
  spec.btf = &btf;
  spec.root_id = type_id;
  spec.kind = kind;
  if (btf.TypeById(type_id) == nullptr || type_id == 0) {
    return err("local type id ", type_id, " does not exist");
  }
  if (access.empty() || access[0] == ':') return err("malformed access string '", access, "'");
  if (IsTypeBased(kind)) {
    if (access != "0") return err("type relocation with access string '", access, "' (want \"0\")");
    return spec;
  }
  for (absl::string_view part : absl::StrSplit(access, ':')) {
    uint32_t idx;
    if (!absl::SimpleAtoi(part, &idx) || idx > INT32_MAX) {
      return err("malformed access string '", access, "'");
    }
    if (spec.raw.size() == kMaxSpecLen) return err("access string '", access, "' is too deep");
    spec.raw.push_back(idx);
  }
  uint32_t id;
  const BtfType* t = Resolve(btf, type_id, &id);
  if (t == nullptr) return err("local type id ", type_id, " does not resolve");
  spec.access.push_back({id, spec.raw[0], {}});
  if (IsEnumvalBased(kind)) {
    if (!IsAnyEnum(*t) || spec.raw.size() > 1 || spec.raw[0] >= t->vlen) {
      return err("enum value relocation '", access, "' on [", id, "] ", KindWord(t->kind),
                 " with ", t->vlen, " values");
    }
    spec.access[0].name = btf.String(btf.EnumValues(*t)[spec.raw[0]].name_off);
    return spec;
  }
  if (!IsFieldBased(kind)) return err("unknown relocation kind ", static_cast<uint32_t>(kind));
  auto size = btf.SizeOf(id);
  if (!size.ok()) return size.status();
  spec.bit_offset = uint64_t{spec.raw[0]} * *size * 8;
  for (size_t i = 1; i < spec.raw.size(); ++i) {
    t = Resolve(btf, id, &id);
    if (t == nullptr) return err("type ", id, " does not resolve");
    uint32_t idx = spec.raw[i];
    if (t->is_composite()) {
      if (idx >= t->vlen) {
        return err("access ", idx, " of '", access, "' is past the ", t->vlen, " members of [",
                   id, "] ", KindWord(t->kind), " ", btf.NameOf(id));
      }
      const BtfMember& m = btf.Members(*t)[idx];
      spec.bit_offset += m.bit_offset;
      if (m.name_off != 0) {
        absl::string_view name = btf.String(m.name_off);
        if (name.empty()) return err("member ", idx, " of [", id, "] has a bad name");
        spec.access.push_back({id, idx, name});
      }
      id = m.type;
    } else if (t->kind == BtfKind::kArray) {
      const BtfType& array = *t;
      uint32_t elem;
      if (Resolve(btf, array.extra, &elem) == nullptr) return err("array element does not resolve");
      bool flex = IsFlexArray(btf, spec.access.back(), array);
      if (!flex && idx >= array.array_nelems) {
        return err("index ", idx, " of '", access, "' is past the ", array.array_nelems,
                   " elements of array [", id, "]");
      }
      spec.access.push_back({elem, idx, {}});
      auto esz = btf.SizeOf(elem);
      if (!esz.ok()) return esz.status();
      spec.bit_offset += uint64_t{idx} * *esz * 8;
      id = elem;
    } else {
      return err("access ", i, " of '", access, "' reaches [", id, "] ", KindWord(t->kind),
                 ", which has no members or elements");
    }
  }
  return spec;
}

// Essential names equal, both anonymous counting as equal.
bool NamesMatch(const Btf& a, uint32_t a_off, const Btf& b, uint32_t b_off) {
  absl::string_view an = a.String(a_off), bn = b.String(b_off);
  if (bn.empty()) return an.empty();
  return CoreEssentialName(an) == CoreEssentialName(bn);
}

// libbpf's bpf_core_types_are_compat: what TYPE_* relocations require.
int TypesAreCompat(const Btf& lb, uint32_t lid, const Btf& tb, uint32_t tid, int depth) {
  for (;;) {
    if (--depth < 0) return -1;
    const BtfType* lt = Resolve(lb, lid, &lid);
    const BtfType* tt = Resolve(tb, tid, &tid);
    if (lt == nullptr || tt == nullptr) return -1;
    if (!KindsCompatible(lt->kind, tt->kind)) return 0;
    switch (lt->kind) {
      case BtfKind::kVoid:
      case BtfKind::kStruct:
      case BtfKind::kUnion:
      case BtfKind::kEnum:
      case BtfKind::kEnum64:
      case BtfKind::kFwd:
      case BtfKind::kFloat:
        return 1;
      case BtfKind::kInt:
        // Old-style bitfield integers (with a bit offset) are refused.
        return lt->int_offset() == 0 && tt->int_offset() == 0;
      case BtfKind::kPtr:
        lid = lt->type();
        tid = tt->type();
        continue;
      case BtfKind::kArray:
        lid = lt->extra;
        tid = tt->extra;
        continue;
      case BtfKind::kFuncProto: {
        auto lp = lb.Members(*lt), tp = tb.Members(*tt);
        if (lp.size() != tp.size()) return 0;
        for (size_t i = 0; i < lp.size(); ++i) {
          int r = TypesAreCompat(lb, lp[i].type, tb, tp[i].type, depth);
          if (r <= 0) return r;
        }
        lid = lt->type();
        tid = tt->type();
        continue;
      }
      default:
        return 0;
    }
  }
}

// libbpf's bpf_core_fields_are_compat: what a matched member must satisfy.
int FieldsAreCompat(const Btf& lb, uint32_t lid, const Btf& tb, uint32_t tid) {
  for (int depth = 0; depth < kMaxCompatDepth; ++depth) {
    const BtfType* lt = Resolve(lb, lid, &lid);
    const BtfType* tt = Resolve(tb, tid, &tid);
    if (lt == nullptr || tt == nullptr) return -1;
    if (lt->is_composite() && tt->is_composite()) return 1;
    if (!KindsCompatible(lt->kind, tt->kind)) return 0;
    switch (lt->kind) {
      case BtfKind::kPtr:
      case BtfKind::kFloat:
        return 1;
      case BtfKind::kFwd:
      case BtfKind::kEnum:
      case BtfKind::kEnum64: {
        absl::string_view ln = CoreEssentialName(lb.Name(*lt)), tn = CoreEssentialName(tb.Name(*tt));
        return ln.empty() || tn.empty() || ln == tn;
      }
      case BtfKind::kInt:
        return lt->int_offset() == 0 && tt->int_offset() == 0;
      case BtfKind::kArray:
        lid = lt->extra;
        tid = tt->extra;
        continue;
      default:
        return 0;
    }
  }
  return -1;
}

int TypesMatch(const Btf& lb, uint32_t lid, const Btf& tb, uint32_t tid, bool behind_ptr, int depth);

bool EnumsMatch(const Btf& lb, const BtfType& lt, const Btf& tb, const BtfType& tt) {
  if (lt.size() != tt.size() || lt.vlen > tt.vlen) return false;
  for (const BtfEnumValue& lv : lb.EnumValues(lt)) {
    bool found = false;
    for (const BtfEnumValue& tv : tb.EnumValues(tt)) {
      if (NamesMatch(lb, lv.name_off, tb, tv.name_off)) {
        found = true;
        break;
      }
    }
    if (!found) return false;
  }
  return true;
}

int CompositesMatch(const Btf& lb, const BtfType& lt, const Btf& tb, const BtfType& tt,
                    bool behind_ptr, int depth) {
  if (lt.vlen > tt.vlen) return 0;
  for (const BtfMember& lm : lb.Members(lt)) {
    bool found = false;
    for (const BtfMember& tm : tb.Members(tt)) {
      if (!NamesMatch(lb, lm.name_off, tb, tm.name_off)) continue;
      int r = TypesMatch(lb, lm.type, tb, tm.type, behind_ptr, depth - 1);
      if (r < 0) return r;
      if (r > 0) {
        found = true;
        break;
      }
    }
    if (!found) return 0;
  }
  return 1;
}

// libbpf's bpf_core_types_match: the stricter TYPE_MATCHES comparison.
int TypesMatch(const Btf& lb, uint32_t lid, const Btf& tb, uint32_t tid, bool behind_ptr,
               int depth) {
  for (;;) {
    if (--depth < 0) return -1;
    const BtfType* lt = Resolve(lb, lid, &lid);
    const BtfType* tt = Resolve(tb, tid, &tid);
    if (lt == nullptr || tt == nullptr) return -1;
    if (!NamesMatch(lb, lt->name_off, tb, tt->name_off)) return 0;
    BtfKind lk = lt->kind, tk = tt->kind;
    switch (lk) {
      case BtfKind::kVoid:
        return lk == tk;
      case BtfKind::kFwd: {
        // A forward declaration's kind flag says union.
        if (tk == BtfKind::kFwd) return lt->kind_flag == tt->kind_flag;
        if (tk == BtfKind::kUnion) return lt->kind_flag;
        if (tk == BtfKind::kStruct) return !lt->kind_flag;
        return 0;
      }
      case BtfKind::kEnum:
      case BtfKind::kEnum64:
        if (!IsAnyEnum(*tt)) return 0;
        return EnumsMatch(lb, *lt, tb, *tt);
      case BtfKind::kStruct:
      case BtfKind::kUnion:
        if (behind_ptr) {
          if (lk == tk) return 1;
          if (tk != BtfKind::kFwd) return 0;
          return (lk == BtfKind::kUnion) == tt->kind_flag;
        }
        if (lk != tk) return 0;
        return CompositesMatch(lb, *lt, tb, *tt, behind_ptr, depth);
      case BtfKind::kInt:
        if (lk != tk) return 0;
        return lt->size() == tt->size() &&
               (lt->int_encoding() & kBtfIntSigned) == (tt->int_encoding() & kBtfIntSigned);
      case BtfKind::kFloat:
        return lk == tk && lt->size() == tt->size();
      case BtfKind::kPtr:
        if (lk != tk) return 0;
        behind_ptr = true;
        lid = lt->type();
        tid = tt->type();
        continue;
      case BtfKind::kArray:
        if (lk != tk || lt->array_nelems != tt->array_nelems) return 0;
        lid = lt->extra;
        tid = tt->extra;
        continue;
      case BtfKind::kFuncProto: {
        if (lk != tk) return 0;
        auto lp = lb.Members(*lt), tp = tb.Members(*tt);
        if (lp.size() != tp.size()) return 0;
        for (size_t i = 0; i < lp.size(); ++i) {
          int r = TypesMatch(lb, lp[i].type, tb, tp[i].type, behind_ptr, depth);
          if (r <= 0) return r;
        }
        lid = lt->type();
        tid = tt->type();
        continue;
      }
      default:
        return 0;
    }
  }
}

// Finds the local access's member by name in target composite `tid`,
// descending into anonymous members, and extends `ts` with the path.
int MatchMember(const Spec& ls, const Access& la, const Btf& tb, uint32_t tid, Spec* ts,
                uint32_t* next_tid, int depth) {
  if (depth > static_cast<int>(kMaxSpecLen)) return -1;
  const Btf& lb = *ls.btf;
  const BtfType* lt = lb.TypeById(la.type_id);
  const BtfMember& lm = lb.Members(*lt)[la.idx];
  const BtfType* tt = Resolve(tb, tid, &tid);
  if (tt == nullptr) return -1;
  if (!tt->is_composite()) return 0;
  auto members = tb.Members(*tt);
  for (uint32_t i = 0; i < members.size(); ++i) {
    const BtfMember& m = members[i];
    if (ts->raw.size() == kMaxSpecLen) return -1;
    ts->bit_offset += m.bit_offset;
    ts->raw.push_back(i);
    absl::string_view tn = tb.String(m.name_off);
    if (tn.empty()) {
      int r = MatchMember(ls, la, tb, m.type, ts, next_tid, depth + 1);
      if (r != 0) return r;
    } else if (tn == la.name) {
      ts->access.push_back({tid, i, tn});
      *next_tid = m.type;
      int r = FieldsAreCompat(lb, lm.type, tb, m.type);
      if (r <= 0) ts->access.pop_back();
      return r;
    }
    ts->bit_offset -= m.bit_offset;
    ts->raw.pop_back();
  }
  return 0;
}

// libbpf's bpf_core_spec_match: 1 and *ts filled if target type `tid`
// of `tb` satisfies the local spec, 0 if not, -1 for malformed types.
int SpecMatch(const Spec& ls, const Btf& tb, uint32_t tid, Spec* ts) {
  *ts = Spec();
  ts->btf = &tb;
  ts->root_id = tid;
  ts->kind = ls.kind;
  const Btf& lb = *ls.btf;
  if (IsTypeBased(ls.kind)) {
    if (ls.kind == CoreReloKind::kTypeMatches) {
      return TypesMatch(lb, ls.root_id, tb, tid, false, kMaxCompatDepth);
    }
    return TypesAreCompat(lb, ls.root_id, tb, tid, kMaxCompatDepth);
  }
  const Access& la0 = ls.access[0];
  if (IsEnumvalBased(ls.kind)) {
    const BtfType* tt = Resolve(tb, tid, &tid);
    if (tt == nullptr) return -1;
    if (!IsAnyEnum(*tt)) return 0;
    absl::string_view want = CoreEssentialName(la0.name);
    auto vals = tb.EnumValues(*tt);
    for (uint32_t i = 0; i < vals.size(); ++i) {
      absl::string_view tn = tb.String(vals[i].name_off);
      if (CoreEssentialName(tn) == want) {
        ts->access.push_back({tid, i, tn});
        ts->raw.push_back(i);
        return 1;
      }
    }
    return 0;
  }
  for (size_t i = 0; i < ls.access.size(); ++i) {
    const Access& la = ls.access[i];
    const BtfType* tt = Resolve(tb, tid, &tid);
    if (tt == nullptr) return -1;
    if (i > 0 && !la.name.empty()) {
      int r = MatchMember(ls, la, tb, tid, ts, &tid, 0);
      if (r <= 0) return r;
      continue;
    }
    if (i > 0) {
      if (tt->kind != BtfKind::kArray) return 0;
      bool flex = IsFlexArray(tb, ts->access.back(), *tt);
      if (!flex && la.idx >= tt->array_nelems) return 0;
      if (Resolve(tb, tt->extra, &tid) == nullptr) return -1;
    }
    if (ts->raw.size() == kMaxSpecLen) return -1;
    ts->access.push_back({tid, la.idx, {}});
    ts->raw.push_back(la.idx);
    // A target without a size (a forward declaration) cannot hold the
    // field; another candidate may.
    auto size = tb.SizeOf(tid);
    if (!size.ok()) return 0;
    ts->bit_offset += uint64_t{la.idx} * *size * 8;
  }
  return 1;
}

// Result of computing one side (local or target) of a relocation.
struct Side {
  uint64_t value = 0;
  uint32_t mem_size = 0;  // plain field's size, for LDX/ST/STX size changes
  uint32_t type_id = 0;   // plain field's type (after modifiers)
  bool validate = true;
  bool poison = false;
};

absl::StatusOr<Side> CalcField(CoreReloKind kind, const Spec* spec) {
  Side s;
  if (kind == CoreReloKind::kFieldExists) {
    s.value = spec ? 1 : 0;
    return s;
  }
  if (spec == nullptr) {
    s.poison = true;
    return s;
  }
  const Btf& btf = *spec->btf;
  const Access& acc = spec->access.back();
  if (acc.name.empty()) {
    // The path ends at an array element (or the root itself).
    auto size = btf.SizeOf(acc.type_id);
    if (!size.ok()) return size.status();
    if (kind == CoreReloKind::kFieldByteOffset) {
      s.value = spec->bit_offset / 8;
      s.mem_size = static_cast<uint32_t>(*size);
      s.type_id = acc.type_id;
    } else if (kind == CoreReloKind::kFieldByteSize) {
      s.value = *size;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          CoreReloKindName(kind), " cannot be applied to an array element"));
    }
    return s;
  }
  const BtfType* outer = btf.TypeById(acc.type_id);
  const BtfMember& m = btf.Members(*outer)[acc.idx];
  uint32_t field_id;
  const BtfType* mt = Resolve(btf, m.type, &field_id);
  if (mt == nullptr) return absl::InvalidArgumentError("member type does not resolve");
  uint64_t bit_off = spec->bit_offset;
  uint64_t bit_sz = m.bitfield_size;
  uint64_t byte_off, byte_sz;
  const bool bitfield = bit_sz > 0;
  if (bitfield) {
    if ((mt->kind != BtfKind::kInt && !IsAnyEnum(*mt)) || mt->size() == 0 || mt->size() > 8) {
      return absl::InvalidArgumentError(absl::StrCat("bitfield '", acc.name, "' of [",
                                                     field_id, "] ", KindWord(mt->kind),
                                                     " cannot be read as an integer"));
    }
    // The smallest naturally aligned load covering the bits.
    byte_sz = mt->size();
    byte_off = bit_off / 8 / byte_sz * byte_sz;
    while (bit_off + bit_sz - byte_off * 8 > byte_sz * 8) {
      if (byte_sz >= 8) {
        return absl::OutOfRangeError(absl::StrCat("bitfield '", acc.name,
                                                  "' cannot be read with a 64-bit load"));
      }
      byte_sz *= 2;
      byte_off = bit_off / 8 / byte_sz * byte_sz;
    }
  } else {
    auto size = btf.SizeOf(field_id);
    if (!size.ok()) return size.status();
    byte_sz = *size;
    byte_off = bit_off / 8;
    bit_sz = byte_sz * 8;
  }
  // Where the compiler placed a bitfield load is its own choice; only
  // what is fixed by the type (signedness, the right shift) is checked.
  s.validate = !bitfield;
  switch (kind) {
    case CoreReloKind::kFieldByteOffset:
      s.value = byte_off;
      if (!bitfield) {
        s.mem_size = static_cast<uint32_t>(byte_sz);
        s.type_id = field_id;
      }
      break;
    case CoreReloKind::kFieldByteSize:
      s.value = byte_sz;
      break;
    case CoreReloKind::kFieldSigned:
      s.value = IsAnyEnum(*mt) ? mt->kind_flag
                               : (mt->kind == BtfKind::kInt && (mt->int_encoding() & kBtfIntSigned));
      s.validate = true;
      break;
    case CoreReloKind::kFieldLShiftU64:
      // Little-endian: move the field's top bit to bit 63.
      s.value = 64 - (bit_off + bit_sz - byte_off * 8);
      break;
    case CoreReloKind::kFieldRShiftU64:
      s.value = 64 - bit_sz;
      s.validate = true;
      break;
    default:
      return absl::InternalError("not a field relocation");
  }
  return s;
}

absl::StatusOr<Side> CalcType(CoreReloKind kind, const Spec* spec) {
  Side s;
  if (spec == nullptr) return s;  // a missing type reads as 0, never poisons
  switch (kind) {
    case CoreReloKind::kTypeIdTarget:
      s.value = spec->root_id;
      break;
    case CoreReloKind::kTypeExists:
    case CoreReloKind::kTypeMatches:
      s.value = 1;
      break;
    case CoreReloKind::kTypeSize: {
      auto size = spec->btf->SizeOf(spec->root_id);
      if (!size.ok()) return size.status();
      s.value = *size;
      break;
    }
    default:
      return absl::InternalError("not a type relocation");
  }
  return s;
}

absl::StatusOr<Side> CalcEnumval(CoreReloKind kind, const Spec* spec) {
  Side s;
  if (kind == CoreReloKind::kEnumvalExists) {
    s.value = spec ? 1 : 0;
    return s;
  }
  if (spec == nullptr) {
    s.poison = true;
    return s;
  }
  const Access& a = spec->access[0];
  const BtfType* e = spec->btf->TypeById(a.type_id);
  s.value = spec->btf->EnumValues(*e)[a.idx].value;
  return s;
}

absl::StatusOr<Side> Calc(CoreReloKind kind, const Spec* spec) {
  if (IsFieldBased(kind)) return CalcField(kind, spec);
  if (IsTypeBased(kind)) return CalcType(kind, spec);
  return CalcEnumval(kind, spec);
}

// Only pointers and unsigned integers read the same through a narrower
// or wider load (the upper bits are zero).
bool SizeChangeSafe(const Btf& lb, uint32_t lid, const Btf& tb, uint32_t tid) {
  const BtfType* l = lb.TypeById(lid);
  const BtfType* t = tb.TypeById(tid);
  if (l == nullptr || t == nullptr) return false;
  if (l->kind == BtfKind::kPtr && t->kind == BtfKind::kPtr) return true;
  return l->kind == BtfKind::kInt && t->kind == BtfKind::kInt &&
         !(l->int_encoding() & kBtfIntSigned) && !(t->int_encoding() & kBtfIntSigned);
}

std::string MissingReason(const Spec& local, size_t candidates) {
  const BtfType* root = local.btf->TypeById(local.root_id);
  absl::string_view name = local.btf->Name(*root);
  std::string why =
      candidates == 0
          ? absl::StrCat("the target's BTF has no ", KindWord(root->kind), " named '",
                         CoreEssentialName(name), "'")
          : absl::StrCat("none of the target's ", candidates, " ", KindWord(root->kind),
                         candidates == 1 ? "" : "s", " named '", CoreEssentialName(name),
                         "' matches");
  const char* what = IsFieldBased(local.kind)     ? "the field "
                     : IsEnumvalBased(local.kind) ? "the enumerator "
                                                  : "the type ";
  return absl::StrCat(what, FormatSpec(local), " is not in the target: ", why);
}

int InsnSizeBytes(uint8_t code) {
  switch (BPF_SIZE(code)) {
    case BPF_B: return 1;
    case BPF_H: return 2;
    case BPF_W: return 4;
    case BPF_DW: return 8;
  }
  return -1;
}

int BytesToInsnSize(uint32_t n) {
  switch (n) {
    case 1: return BPF_B;
    case 2: return BPF_H;
    case 4: return BPF_W;
    case 8: return BPF_DW;
  }
  return -1;
}

bool IsLdImm64(const bpf_insn& in) { return in.code == (BPF_LD | BPF_IMM | BPF_DW); }

void Poison(bpf_insn* in) {
  in->code = BPF_JMP | BPF_CALL;
  in->dst_reg = 0;
  in->src_reg = 0;
  in->off = 0;
  in->imm = kCorePoisonHelper;
}

}  // namespace

absl::string_view CoreReloKindName(CoreReloKind kind) {
  switch (kind) {
    case CoreReloKind::kFieldByteOffset: return "byte_off";
    case CoreReloKind::kFieldByteSize: return "byte_sz";
    case CoreReloKind::kFieldExists: return "field_exists";
    case CoreReloKind::kFieldSigned: return "signed";
    case CoreReloKind::kFieldLShiftU64: return "lshift_u64";
    case CoreReloKind::kFieldRShiftU64: return "rshift_u64";
    case CoreReloKind::kTypeIdLocal: return "local_type_id";
    case CoreReloKind::kTypeIdTarget: return "target_type_id";
    case CoreReloKind::kTypeExists: return "type_exists";
    case CoreReloKind::kTypeSize: return "type_size";
    case CoreReloKind::kEnumvalExists: return "enumval_exists";
    case CoreReloKind::kEnumvalValue: return "enumval_value";
    case CoreReloKind::kTypeMatches: return "type_matches";
  }
  return "unknown";
}

absl::string_view CoreEssentialName(absl::string_view name) {
  if (name.size() < 5) return name;
  for (size_t i = name.size() - 5 + 1; i-- > 0;) {
    if (name[i] != '_' && name[i + 1] == '_' && name[i + 2] == '_' && name[i + 3] == '_' &&
        name[i + 4] != '_') {
      return name.substr(0, i + 1);
    }
  }
  return name;
}

// --- targets --------------------------------------------------------------------

// Types whose names carry a flavour, by essential name: a name index
// lookup finds plain names, and this finds "task_struct___v1" for
// "task_struct". Built once per target BTF.
struct CoreTarget::Index {
  absl::flat_hash_map<absl::string_view, std::vector<uint32_t>> flavoured;

  // Names only: the kernel's BTF decodes a type when it is first read,
  // and most are never read.
  explicit Index(const Btf& btf) {
    btf.ForEachNamedType([&](uint32_t id, uint32_t name_off) {
      absl::string_view name = btf.String(name_off);
      if (name.find("___") == absl::string_view::npos) return;
      absl::string_view essential = CoreEssentialName(name);
      if (essential.size() != name.size()) flavoured[essential].push_back(id);
    });
  }
};

CoreTarget::CoreTarget(const Btf& btf) {
  btfs_.push_back(&btf);
  indexes_.push_back(std::make_unique<Index>(btf));
}

CoreTarget::CoreTarget(const Btf& primary, absl::Span<const Btf* const> fallbacks)
    : CoreTarget(primary) {
  for (const Btf* b : fallbacks) {
    btfs_.push_back(b);
    indexes_.push_back(std::make_unique<Index>(*b));
  }
}

CoreTarget::~CoreTarget() = default;

absl::StatusOr<const CoreTarget*> CoreTarget::Kernel() {
  // A function-local static, not absl::call_once: see KernelBtf().
  static const absl::StatusOr<const CoreTarget*>* const result =
      []() -> absl::StatusOr<const CoreTarget*>* {
    auto vmlinux = KernelBtf();
    if (!vmlinux.ok()) return new absl::StatusOr<const CoreTarget*>(vmlinux.status());
    auto* t = new CoreTarget(**vmlinux);  // lives until exit, like the BTF it indexes
    t->kernel_ = true;
    return new absl::StatusOr<const CoreTarget*>(t);
  }();
  return *result;
}

void CoreTarget::AddModuleCandidates(absl::string_view name, BtfKind kind,
                                     std::vector<Candidate>* out) const {
  static detail::Mutex mu(absl::kConstInit);
  // Indexes live until exit, like the module BTFs they describe.
  static auto* index_of = new absl::flat_hash_map<const Btf*, std::unique_ptr<Index>>;
  static auto* current = new std::vector<std::pair<const Btf*, const Index*>>;
  // Names that found nothing since the last walk: asking again for one of
  // them (fifty bpf_core_type_exists() of one absent type) walks nothing.
  static auto* missed = new absl::flat_hash_set<std::string>;
  static bool walked = false;
  detail::MutexLock lock(&mu);
  auto walk = [&] {
    auto modules = detail::LoadedModuleBtfs();
    walked = true;
    if (!modules.ok()) return;  // keep what the last walk found
    current->clear();
    missed->clear();
    for (const detail::ModuleBtf& m : *modules) {
      std::unique_ptr<Index>& index = (*index_of)[m.btf];
      if (!index) index = std::make_unique<Index>(*m.btf);
      current->emplace_back(m.btf, index.get());
    }
  };
  auto search = [&] {
    for (const auto& [btf, index] : *current) AddCandidates(*btf, *index, name, kind, out);
  };
  const size_t before = out->size();
  bool walked_now = !walked;
  if (walked_now) walk();
  search();
  // A module loaded since the last walk (modprobe by the agent itself)
  // is found by walking again.
  if (out->size() == before && !walked_now && !missed->count(name)) {
    walk();
    search();
  }
  if (out->size() == before) missed->emplace(name);
}

void CoreTarget::AddCandidates(const Btf& btf, const Index& index, absl::string_view name,
                               BtfKind kind, std::vector<Candidate>* out) const {
  size_t before = out->size();
  for (uint32_t id : btf.IdsByName(name)) {
    if (KindsCompatible(btf.TypeById(id)->kind, kind)) out->push_back({&btf, id});
  }
  if (auto it = index.flavoured.find(name); it != index.flavoured.end()) {
    for (uint32_t id : it->second) {
      if (KindsCompatible(btf.TypeById(id)->kind, kind)) out->push_back({&btf, id});
    }
  }
  std::sort(out->begin() + before, out->end(),
            [](const Candidate& a, const Candidate& b) { return a.id < b.id; });
}

std::vector<CoreTarget::Candidate> CoreTarget::Candidates(absl::string_view essential_name,
                                                          BtfKind kind) const {
  std::vector<Candidate> out;
  AddCandidates(*btfs_[0], *indexes_[0], essential_name, kind, &out);
  if (!out.empty()) return out;
  for (size_t i = 1; i < btfs_.size(); ++i) {
    AddCandidates(*btfs_[i], *indexes_[i], essential_name, kind, &out);
  }
  if (!kernel_) return out;
  // Like libbpf: modules only when vmlinux has nothing of that name.
  AddModuleCandidates(essential_name, kind, &out);
  return out;
}

// --- computing ---------------------------------------------------------------------

absl::StatusOr<CoreFixup> ComputeCoreFixup(const Btf& local, const CoreRelo& relo,
                                           const CoreTarget& target) {
  CoreFixup fx;
  fx.kind = relo.kind;
  absl::string_view access = local.String(relo.access_str_off);
  auto describe = [&](const absl::Status& st) {
    return absl::Status(st.code(), absl::StrCat(CoreReloKindName(relo.kind), " relocation of [",
                                                relo.type_id, "] ", local.NameOf(relo.type_id),
                                                " access '", access, "': ", st.message()));
  };
  auto local_spec = ParseSpec(local, relo.type_id, access, relo.kind);
  if (!local_spec.ok()) return describe(local_spec.status());
  fx.local_spec = FormatSpec(*local_spec);
  if (relo.kind == CoreReloKind::kTypeIdLocal) {
    // Nothing to find: the id is the object's own, which the loader
    // passes to the kernel along with the program.
    fx.local_value = fx.target_value = relo.type_id;
    fx.validate = false;
    return fx;
  }
  const BtfType* root = local.TypeById(relo.type_id);
  absl::string_view name = local.Name(*root);
  if (name.empty()) {
    return describe(absl::UnimplementedError(
        "the local type is anonymous, and CO-RE finds target types by name"));
  }

  auto local_side = Calc(relo.kind, &*local_spec);
  if (!local_side.ok()) return describe(local_side.status());
  fx.local_value = local_side->value;
  fx.validate = local_side->validate;
  fx.local_size = local_side->mem_size;

  bool found = false;
  Spec best;
  Side best_side;
  Spec cand_spec;
  const std::vector<CoreTarget::Candidate> candidates =
      target.Candidates(CoreEssentialName(name), root->kind);
  for (const CoreTarget::Candidate& c : candidates) {
    int r = SpecMatch(*local_spec, *c.btf, c.id, &cand_spec);
    if (r < 0) {
      return describe(absl::InvalidArgumentError(absl::StrCat(
          "target candidate [", c.id, "] ", c.btf->NameOf(c.id),
          " is malformed or nested too deeply")));
    }
    if (r == 0) continue;
    auto side = Calc(relo.kind, &cand_spec);
    if (!side.ok()) {
      return describe(absl::Status(side.status().code(),
                                   absl::StrCat("target ", FormatSpec(cand_spec), ": ",
                                                side.status().message())));
    }
    if (!found) {
      found = true;
      best = cand_spec;
      best_side = *side;
      continue;
    }
    // Several candidates match (flavours, or duplicates in the target):
    // usable only if they lead to the same instruction.
    if (cand_spec.bit_offset != best.bit_offset) {
      return describe(absl::FailedPreconditionError(absl::StrCat(
          "ambiguous: candidates ", FormatSpec(best), " and ", FormatSpec(cand_spec),
          " put the field at different offsets")));
    }
    if (side->poison != best_side.poison || side->value != best_side.value) {
      return describe(absl::FailedPreconditionError(absl::StrCat(
          "ambiguous: candidates ", FormatSpec(best), " and ", FormatSpec(cand_spec),
          " give different values (", best_side.value, " and ", side->value, ")")));
    }
  }
  if (!found) {
    auto side = Calc(relo.kind, nullptr);
    if (!side.ok()) return describe(side.status());
    fx.target_value = side->value;
    fx.poison = side->poison;
    if (fx.poison) fx.poison_reason = MissingReason(*local_spec, candidates.size());
    return fx;
  }
  fx.target_btf = best.btf;
  fx.target_id = best.root_id;
  fx.target_spec = FormatSpec(best);
  fx.target_value = best_side.value;
  fx.target_size = best_side.mem_size;
  if (fx.local_size != fx.target_size) {
    fx.size_change_unsafe =
        !SizeChangeSafe(local, local_side->type_id, *best.btf, best_side.type_id);
  }
  return fx;
}

// --- patching -----------------------------------------------------------------------

absl::Status ApplyCoreRelocations(absl::string_view program, const Btf& local,
                                  absl::Span<const CoreRelo> relos, absl::Span<bpf_insn> insns,
                                  const CoreTarget& target, std::vector<CorePoison>* poisoned) {
  for (size_t ri = 0; ri < relos.size(); ++ri) {
    const CoreRelo& relo = relos[ri];
    const uint32_t at = relo.insn_off;
    absl::string_view access = local.String(relo.access_str_off);
    auto where = [&]() {
      return absl::StrFormat("program '%s': CO-RE relocation #%u (%s of [%u] %s, access '%s') "
                             "at instruction %u",
                             program, ri, CoreReloKindName(relo.kind), relo.type_id,
                             local.NameOf(relo.type_id), access, at);
    };
    if (at >= insns.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), ": the program has only ", insns.size(), " instructions"));
    }
    auto fx = ComputeCoreFixup(local, relo, target);
    if (!fx.ok()) {
      return absl::Status(fx.status().code(),
                          absl::StrFormat("program '%s': CO-RE relocation #%u at instruction %u: %s",
                                          program, ri, at, fx.status().message()));
    }
    bpf_insn& in = insns[at];
    const bool ld64 = IsLdImm64(in);
    auto poison = [&](const std::string& reason) -> absl::Status {
      if (ld64 && at + 1 < insns.size()) Poison(&insns[at + 1]);
      Poison(&in);
      if (poisoned) poisoned->push_back({at, ld64 ? 2u : 1u, absl::StrCat(where(), ": ", reason)});
      return absl::OkStatus();
    };
    if (fx->poison) {
      TETHER_RETURN_IF_ERROR(poison(fx->poison_reason));
      continue;
    }
    auto bad = [&](auto&&... args) {
      return absl::InvalidArgumentError(absl::StrCat(where(), " (", fx->local_spec, "): ", args...));
    };
    const uint64_t want = fx->local_value, value = fx->target_value;
    switch (BPF_CLASS(in.code)) {
      case BPF_ALU:
      case BPF_ALU64: {
        if (BPF_SRC(in.code) != BPF_K) return bad("the ALU instruction does not take an immediate");
        if (fx->validate && static_cast<uint32_t>(in.imm) != static_cast<uint32_t>(want)) {
          return bad("the instruction holds ", in.imm, " where the compiler's value is ", want);
        }
        int64_t sv = static_cast<int64_t>(value);
        if (value > UINT32_MAX && (sv < INT32_MIN || sv > INT32_MAX)) {
          return bad("the target value ", value, " does not fit a 32-bit immediate");
        }
        in.imm = static_cast<int32_t>(static_cast<uint32_t>(value));
        break;
      }
      case BPF_LDX:
      case BPF_ST:
      case BPF_STX: {
        if (fx->validate && in.off != static_cast<int64_t>(want)) {
          return bad("the instruction's offset is ", in.off, " where the compiler's value is ",
                     want);
        }
        if (value > SHRT_MAX) return bad("the target offset ", value, " does not fit 16 bits");
        if (fx->size_change_unsafe) {
          absl::Status st = poison(absl::StrCat(
              "the field is ", fx->local_size, " bytes locally but ", fx->target_size,
              " in the target (", fx->target_spec,
              "), and only pointers and unsigned integers can be read with another size"));
          if (!st.ok()) return st;
          continue;
        }
        in.off = static_cast<int16_t>(value);
        if (fx->local_size != fx->target_size) {
          if (InsnSizeBytes(in.code) != static_cast<int>(fx->local_size)) {
            return bad("the instruction accesses ", InsnSizeBytes(in.code),
                       " bytes where the field has ", fx->local_size);
          }
          int size = BytesToInsnSize(fx->target_size);
          if (size < 0) return bad("the target field's size ", fx->target_size, " is not loadable");
          in.code = BPF_MODE(in.code) | size | BPF_CLASS(in.code);
        }
        break;
      }
      case BPF_LD: {
        if (!ld64 || at + 1 >= insns.size() || in.src_reg != 0 || in.off != 0 ||
            insns[at + 1].code != 0 || insns[at + 1].dst_reg != 0 ||
            insns[at + 1].src_reg != 0 || insns[at + 1].off != 0) {
          return bad("the instruction is not a plain 64-bit immediate load");
        }
        uint64_t imm = static_cast<uint32_t>(in.imm) |
                       (uint64_t{static_cast<uint32_t>(insns[at + 1].imm)} << 32);
        if (fx->validate && imm != want) {
          return bad("the instruction holds ", imm, " where the compiler's value is ", want);
        }
        in.imm = static_cast<int32_t>(static_cast<uint32_t>(value));
        insns[at + 1].imm = static_cast<int32_t>(static_cast<uint32_t>(value >> 32));
        break;
      }
      default:
        return bad(absl::StrFormat("cannot patch opcode 0x%02x", in.code));
    }
  }
  return absl::OkStatus();
}

absl::Status ExplainCorePoison(const absl::Status& load_error,
                               absl::Span<const CorePoison> poisoned) {
  if (load_error.ok() || poisoned.empty()) return load_error;
  absl::string_view msg = load_error.message();
  const std::string marker = absl::StrCat("unknown#", kCorePoisonHelper);
  if (msg.find(marker) == absl::string_view::npos) return load_error;
  // The verifier prints "N: (85) call unknown#195896080" as it reaches
  // each instruction and stops at the one it refuses: the last such line
  // says which relocation.
  const CorePoison* hit = nullptr;
  for (absl::string_view line : absl::StrSplit(msg, '\n')) {
    if (line.find(marker) == absl::string_view::npos) continue;
    size_t colon = line.find(':');
    uint32_t insn;
    if (colon == absl::string_view::npos ||
        !absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(0, colon)), &insn)) {
      continue;
    }
    for (const CorePoison& p : poisoned) {
      if (insn >= p.insn && insn < p.insn + p.count) hit = &p;
    }
  }
  std::string why;
  if (hit == nullptr) {
    // The log was cut before the line: list every candidate.
    for (const CorePoison& p : poisoned) absl::StrAppend(&why, why.empty() ? "" : "; ", p.reason);
    why = absl::StrCat("the verifier reached an instruction poisoned by CO-RE; poisoned: ", why);
  } else {
    why = absl::StrCat("the verifier reached an instruction poisoned by CO-RE: ", hit->reason);
  }
  absl::Status out(load_error.code(), absl::StrCat(why, "\n", msg));
  load_error.ForEachPayload(
      [&](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

}  // namespace tether
