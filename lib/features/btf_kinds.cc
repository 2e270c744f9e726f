// HaveBtfKind and HaveBtfFuncLinkage: the smallest BTF that uses a kind (or
// a FUNC linkage), handed to BTF_LOAD. KernelBtfFeatures, which tells the
// loader what to sanitize, reads the same answers.
#include <linux/btf.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "btf/btf_writer.h"
#include "features/features_internal.h"
#include "tether/btf.h"

namespace tether {
namespace probe {
namespace {

using btf::BtfWriter;

// Adds to `b`, which holds `int` as type `int_id`, a type of the probed
// kind the way compilers emit it. The kernel checks references, so each
// kind comes with the types it points at.
using KindWriter = void (*)(BtfWriter& b, uint32_t int_id);

struct BtfKindFeature {
  BtfKind kind;
  const char* since;
  KindWriter write;
};

void WriteNothingMore(BtfWriter&, uint32_t) {}

void WritePtr(BtfWriter& b, uint32_t i) { b.Add(0, BtfKind::kPtr, 0, i); }

void WriteArray(BtfWriter& b, uint32_t i) { b.Add(0, BtfKind::kArray, 0, 0, {i, i, 2}); }

void WriteStruct(BtfWriter& b, uint32_t i) {
  b.Add(b.Str("s"), BtfKind::kStruct, 1, 4, {b.Str("a"), i, 0});
}

void WriteUnion(BtfWriter& b, uint32_t i) {
  b.Add(b.Str("s"), BtfKind::kUnion, 1, 4, {b.Str("a"), i, 0});
}

void WriteEnum(BtfWriter& b, uint32_t) { b.Add(b.Str("e"), BtfKind::kEnum, 1, 4, {b.Str("A"), 1}); }

void WriteFwd(BtfWriter& b, uint32_t) { b.Add(b.Str("f"), BtfKind::kFwd, 0, 0); }

void WriteTypedef(BtfWriter& b, uint32_t i) { b.Add(b.Str("t"), BtfKind::kTypedef, 0, i); }

void WriteVolatile(BtfWriter& b, uint32_t i) { b.Add(0, BtfKind::kVolatile, 0, i); }

void WriteConst(BtfWriter& b, uint32_t i) { b.Add(0, BtfKind::kConst, 0, i); }

// Only meaningful on a pointer.
void WriteRestrict(BtfWriter& b, uint32_t i) {
  b.Add(0, BtfKind::kRestrict, 0, b.Add(0, BtfKind::kPtr, 0, i));
}

void WriteFunc(BtfWriter& b, uint32_t i) {
  b.Add(b.Str("f"), BtfKind::kFunc, BTF_FUNC_STATIC, b.Add(0, BtfKind::kFuncProto, 0, i));
}

void WriteFuncProto(BtfWriter& b, uint32_t i) { b.Add(0, BtfKind::kFuncProto, 1, i, {0, i}); }

void WriteVar(BtfWriter& b, uint32_t i) {
  b.Add(b.Str("v"), BtfKind::kVar, 0, i, {BTF_VAR_GLOBAL_ALLOCATED});
}

void WriteDatasec(BtfWriter& b, uint32_t i) {
  uint32_t v = b.Add(b.Str("v"), BtfKind::kVar, 0, i, {BTF_VAR_GLOBAL_ALLOCATED});
  b.Add(b.Str(".data"), BtfKind::kDatasec, 1, 4, {v, 0, 4});
}

void WriteFloat(BtfWriter& b, uint32_t) { b.Add(b.Str("float"), BtfKind::kFloat, 0, 4); }

// On the struct itself (component_idx -1).
void WriteDeclTag(BtfWriter& b, uint32_t i) {
  uint32_t st = b.Add(b.Str("s"), BtfKind::kStruct, 1, 4, {b.Str("a"), i, 0});
  b.Add(b.Str("tag"), BtfKind::kDeclTag, 0, st, {0xffffffffu});
}

// Kernels accept type tags only under a pointer.
void WriteTypeTag(BtfWriter& b, uint32_t i) {
  b.Add(0, BtfKind::kPtr, 0, b.Add(b.Str("tag"), BtfKind::kTypeTag, 0, i));
}

void WriteEnum64(BtfWriter& b, uint32_t) {
  b.Add(b.Str("e"), BtfKind::kEnum64, 1, 8, {b.Str("A"), 1, 1});
}

constexpr BtfKindFeature kBtfKindFeatures[] = {
    {BtfKind::kInt, "4.18", WriteNothingMore},
    {BtfKind::kPtr, "4.18", WritePtr},
    {BtfKind::kArray, "4.18", WriteArray},
    {BtfKind::kStruct, "4.18", WriteStruct},
    {BtfKind::kUnion, "4.18", WriteUnion},
    {BtfKind::kEnum, "4.18", WriteEnum},
    {BtfKind::kFwd, "4.18", WriteFwd},
    {BtfKind::kTypedef, "4.18", WriteTypedef},
    {BtfKind::kVolatile, "4.18", WriteVolatile},
    {BtfKind::kConst, "4.18", WriteConst},
    {BtfKind::kRestrict, "4.18", WriteRestrict},
    {BtfKind::kFunc, "5.0", WriteFunc},
    {BtfKind::kFuncProto, "5.0", WriteFuncProto},
    {BtfKind::kVar, "5.2", WriteVar},
    {BtfKind::kDatasec, "5.2", WriteDatasec},
    {BtfKind::kFloat, "5.13", WriteFloat},
    {BtfKind::kDeclTag, "5.16", WriteDeclTag},
    {BtfKind::kTypeTag, "5.17", WriteTypeTag},
    {BtfKind::kEnum64, "6.0", WriteEnum64},
};

const BtfKindFeature* FindBtfKindFeature(uint32_t kind) {
  for (const BtfKindFeature& f : kBtfKindFeatures) {
    if (static_cast<uint32_t>(f.kind) == kind) return &f;
  }
  return nullptr;
}

struct FuncLinkageFeature {
  const char* name;
  const char* since;  // or why no release takes it
};

// Indexed by BTF_FUNC_STATIC, BTF_FUNC_GLOBAL, BTF_FUNC_EXTERN.
constexpr FuncLinkageFeature kFuncLinkageFeatures[] = {
    {"static", "5.0"},
    {"global", "5.6"},
    {"extern", "no release: loaders must rewrite it"},
};

// The line of a BTF log that says why the kernel refused.
std::string LastLogLine(const absl::Status& st) {
  absl::string_view msg = st.message();
  while (!msg.empty() && msg.back() == '\n') msg.remove_suffix(1);
  size_t nl = msg.rfind('\n');
  return std::string(nl == absl::string_view::npos ? msg : msg.substr(nl + 1));
}

absl::Status ProbeBtfKind(const BtfKindFeature& feature) {
  BtfWriter b;
  feature.write(b, b.Int());
  auto loaded = sys::BtfLoad(b.Bytes());
  if (loaded.ok()) return absl::OkStatus();
  int err = sys::StatusErrno(loaded.status());
  if (err != EINVAL && err != E2BIG) return loaded.status();
  return absl::UnimplementedError(absl::StrFormat(
      "BTF kind %s is not accepted by kernel %s (it needs %s): %s", BtfKindName(feature.kind),
      KernelRelease(), feature.since, LastLogLine(loaded.status())));
}

absl::Status ProbeBtfFuncLinkage(uint32_t linkage) {
  BtfWriter b;
  uint32_t i = b.Int();
  b.Add(b.Str("f"), BtfKind::kFunc, linkage, b.Add(0, BtfKind::kFuncProto, 0, i));
  auto loaded = sys::BtfLoad(b.Bytes());
  if (loaded.ok()) return absl::OkStatus();
  int err = sys::StatusErrno(loaded.status());
  if (err != EINVAL) return loaded.status();
  const FuncLinkageFeature& feature = kFuncLinkageFeatures[linkage];
  return absl::UnimplementedError(absl::StrFormat(
      "BTF func linkage %s is not accepted by kernel %s (%s): %s", feature.name, KernelRelease(),
      feature.since, LastLogLine(loaded.status())));
}

}  // namespace

absl::Status HaveBtfKind(uint32_t kind) {
  const BtfKindFeature* feature = FindBtfKindFeature(kind);
  if (feature == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat("BTF kind %u is not one tether knows", kind));
  }
  return Cached(absl::StrCat("btf_kind:", BtfKindName(feature->kind)),
                [feature] { return ProbeBtfKind(*feature); });
}

absl::Status HaveBtfFuncLinkage(uint32_t linkage) {
  if (linkage > BTF_FUNC_EXTERN) {
    return absl::InvalidArgumentError(absl::StrFormat("BTF func linkage %u is unknown", linkage));
  }
  return Cached(absl::StrCat("btf_func_linkage:", kFuncLinkageFeatures[linkage].name),
                [linkage] { return ProbeBtfFuncLinkage(linkage); });
}

}  // namespace probe

const BtfFeatures& KernelBtfFeatures() {
  static const BtfFeatures features = [] {
    BtfFeatures f;
    f.func = probe::HaveBtfKind(BTF_KIND_FUNC).ok();
    f.func_global = probe::HaveBtfFuncLinkage(BTF_FUNC_GLOBAL).ok();
    f.datasec = probe::HaveBtfKind(BTF_KIND_DATASEC).ok();
    f.float_kind = probe::HaveBtfKind(BTF_KIND_FLOAT).ok();
    f.decl_tag = probe::HaveBtfKind(BTF_KIND_DECL_TAG).ok();
    f.type_tag = probe::HaveBtfKind(BTF_KIND_TYPE_TAG).ok();
    f.enum64 = probe::HaveBtfKind(BTF_KIND_ENUM64).ok();
    return f;
  }();
  return features;
}

}  // namespace tether
