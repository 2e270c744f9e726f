// tether-skel: writes a C++ skeleton header for a BPF ELF object.
//
//   tether-skel FILE.o [--name NAME] [-o OUT.skel.hpp]
//
// The header defines namespace NAME with
//   - C++ types for the object's global variables, made from its BTF
//     (ints, enums, fixed arrays, structs and unions, with static_asserts
//     that pin their layout to the BTF's; raw bytes where C++ cannot say
//     the same thing: bitfields, packed or over-aligned layouts);
//   - one struct per data section (Rodata, Data, Bss, DataFoo for
//     .data.foo ...) laid out like the section;
//   - class Skel: a Map per map and a Program per program, Open() from the
//     object's bytes embedded in the header (or from a path), Load(),
//     LoadSelected() (LoadAndAssign with typed ids), typed access to the
//     data sections, and Attach() for the programs whose section names
//     their hook.
//
// The generated code only uses tether's public headers. Attach() is
// compiled against tether/attach.h when the tether it is built with has
// it, and says Unimplemented otherwise; which hooks it knows is the table
// kAttachKinds below.
#include <linux/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tether/btf.h"
#include "tether/collection_spec.h"
#include "tether/map.h"
#include "tether/section_names.h"

namespace {

using tether::Btf;
using tether::BtfKind;
using tether::BtfType;
using tether::CollectionSpec;
using tether::MapSpec;
using tether::ProgramSpec;
using tether::VariableSpec;

// --- identifiers -------------------------------------------------------------------

const std::set<std::string>& CxxKeywords() {
  static const std::set<std::string> k = {
      "alignas", "alignof", "and", "and_eq", "asm", "auto", "bitand", "bitor", "bool", "break",
      "case", "catch", "char", "char8_t", "char16_t", "char32_t", "class", "compl", "concept",
      "const", "consteval", "constexpr", "constinit", "const_cast", "continue", "co_await",
      "co_return", "co_yield", "decltype", "default", "delete", "do", "double", "dynamic_cast",
      "else", "enum", "explicit", "export", "extern", "false", "float", "for", "friend", "goto",
      "if", "inline", "int", "long", "mutable", "namespace", "new", "noexcept", "not", "not_eq",
      "nullptr", "operator", "or", "or_eq", "private", "protected", "public", "register",
      "reinterpret_cast", "requires", "return", "short", "signed", "sizeof", "static",
      "static_assert", "static_cast", "struct", "switch", "template", "this", "thread_local",
      "throw", "true", "try", "typedef", "typeid", "typename", "union", "unsigned", "using",
      "virtual", "void", "volatile", "wchar_t", "while", "xor", "xor_eq",
      // Names the generated code relies on in its own namespace.
      "std", "absl", "tether", "offsetof", "Skel", "kObject", "kObjectName"};
  return k;
}

std::string Sanitize(absl::string_view name) {
  std::string out;
  for (char c : name) out += absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ? c : '_';
  if (out.empty()) out = "_";
  if (absl::ascii_isdigit(static_cast<unsigned char>(out[0]))) out = "_" + out;
  if (CxxKeywords().count(out)) out += "_";
  return out;
}

// Hands out identifiers unique within one scope.
class Names {
 public:
  explicit Names(std::set<std::string> taken = {}) : taken_(std::move(taken)) {}
  std::string Take(absl::string_view wanted) {
    std::string base = Sanitize(wanted);
    std::string name = base;
    for (int i = 2; taken_.count(name); ++i) name = absl::StrCat(base, "_", i);
    taken_.insert(name);
    return name;
  }

 private:
  std::set<std::string> taken_;
};

std::string CamelCase(absl::string_view ident) {
  std::string out;
  bool upper = true;
  for (char c : ident) {
    if (c == '_') {
      upper = true;
      continue;
    }
    out += upper ? absl::ascii_toupper(static_cast<unsigned char>(c)) : c;
    upper = false;
  }
  return out.empty() ? "Section" : out;
}

// ".bss" -> "bss", ".data.counters" -> "data_counters".
std::string SectionIdent(absl::string_view section) {
  while (!section.empty() && section[0] == '.') section.remove_prefix(1);
  return Sanitize(section);
}

std::string CString(absl::string_view s) { return absl::StrCat("\"", absl::CEscape(s), "\""); }

// --- C++ types from BTF ---------------------------------------------------------------

struct CxxType {
  std::string spelling;  // empty: nothing C++ can hold (size 0, void...)
  uint64_t size = 0;
  uint32_t align = 1;
};

CxxType Bytes(uint64_t size) {
  if (size == 0) return {};
  return {absl::StrCat("::std::array<::std::uint8_t, ", size, ">"), size, 1};
}

// Lays out members at the offsets the BTF gives, with explicit padding,
// and checks that C++ would put them there too. Shared by BTF structs and
// the data-section structs.
struct Field {
  std::string name;
  CxxType type;
  uint64_t offset = 0;
  std::string comment;
};

struct Layout {
  bool ok = true;
  std::string why;  // when !ok
  std::string body;
  std::vector<std::string> asserts;
  uint32_t align = 1;
};

// `pack` > 0 caps member alignment (a #pragma pack around the struct).
Layout LayOut(const std::string& type_name, bool is_union, const std::vector<Field>& fields,
              uint64_t size, uint32_t pack) {
  Layout l;
  uint64_t cur = 0;
  int pad = 0;
  for (const Field& f : fields) {
    uint32_t a = pack ? std::min(pack, f.type.align) : f.type.align;
    if (is_union) {
      if (f.offset != 0) return {false, "a union member not at offset 0"};
    } else {
      if (f.offset < cur) return {false, absl::StrCat("member '", f.name, "' overlaps the one before")};
      if (f.offset % a != 0) {
        return {false, absl::StrCat("member '", f.name, "' at offset ", f.offset,
                                    " is not aligned as C++ would place it")};
      }
      if (f.offset > cur) absl::StrAppend(&l.body, "  ::std::uint8_t _pad", pad++, "[", f.offset - cur, "];\n");
      cur = f.offset + f.type.size;
    }
    if (is_union) cur = std::max(cur, f.type.size);
    l.align = std::max(l.align, a);
    absl::StrAppend(&l.body, "  ", f.type.spelling, " ", f.name, ";", f.comment.empty() ? "" : "  // ",
                    f.comment, "\n");
    l.asserts.push_back(
        absl::StrFormat("static_assert(offsetof(%s, %s) == %d, \"BTF offset of %s.%s\");", type_name,
                        f.name, f.offset, type_name, f.name));
  }
  if (cur > size) return {false, "members extend past the type's size"};
  if (cur < size) {
    if (is_union) {
      absl::StrAppend(&l.body, "  ::std::uint8_t _bytes[", size, "];\n");
    } else {
      absl::StrAppend(&l.body, "  ::std::uint8_t _pad", pad++, "[", size - cur, "];\n");
    }
  }
  if (size % l.align != 0) {
    return {false, absl::StrCat("size ", size, " is not a multiple of the alignment ", l.align)};
  }
  if (size == 0) return {false, "empty"};
  l.asserts.push_back(absl::StrFormat("static_assert(sizeof(%s) == %d, \"BTF size of %s\");",
                                      type_name, size, type_name));
  return l;
}

class TypeEmitter {
 public:
  // Types are spelled ::ns::name, so that a member may share its type's
  // name (C's `enum color color;`) without changing what the name means.
  TypeEmitter(const Btf& btf, Names* names, std::string ns)
      : btf_(btf), names_(names), qual_(absl::StrCat("::", ns, "::")) {}

  CxxType Get(uint32_t id, absl::string_view typedef_name = "") {
    const BtfType* t = btf_.TypeById(id);
    if (t == nullptr || id == 0) return {};
    if (t->is_modifier()) return Get(t->type(), typedef_name);
    switch (t->kind) {
      case BtfKind::kTypedef:
        return Get(t->type(), btf_.Name(*t));
      case BtfKind::kVar:
        return Get(t->type());
      case BtfKind::kInt:
        return Int(*t);
      case BtfKind::kPtr:
        // A kernel address: user space can hold it but not follow it.
        return {"::std::uint64_t", 8, 8};
      case BtfKind::kFloat:
        if (t->size() == 4) return {"float", 4, 4};
        if (t->size() == 8) return {"double", 8, 8};
        return Bytes(t->size());
      case BtfKind::kEnum:
      case BtfKind::kEnum64:
        return Enum(id, *t, typedef_name);
      case BtfKind::kArray: {
        CxxType elem = Get(t->extra);
        if (elem.spelling.empty() || t->array_nelems == 0) return {};
        return {absl::StrCat("::std::array<", elem.spelling, ", ", t->array_nelems, ">"),
                elem.size * t->array_nelems, elem.align};
      }
      case BtfKind::kStruct:
      case BtfKind::kUnion:
        return Composite(id, *t, typedef_name);
      default: {
        auto size = btf_.SizeOf(id);
        return size.ok() ? Bytes(*size) : CxxType{};
      }
    }
  }

  const std::string& definitions() const { return defs_; }

 private:
  CxxType Int(const BtfType& t) {
    uint32_t size = t.size();
    bool is_signed = t.int_encoding() & tether::kBtfIntSigned;
    if (size == 1 && (t.int_encoding() & tether::kBtfIntBool)) return {"bool", 1, 1};
    if (size == 1 && ((t.int_encoding() & tether::kBtfIntChar) || btf_.Name(t) == "char")) {
      return {"char", 1, 1};
    }
    switch (size) {
      case 1: case 2: case 4: case 8:
        return {absl::StrCat("::std::", is_signed ? "int" : "uint", size * 8, "_t"), size, size};
      case 16:
        return {is_signed ? "__int128" : "unsigned __int128", 16, 16};
      default:
        return Bytes(size);
    }
  }

  CxxType Enum(uint32_t id, const BtfType& t, absl::string_view typedef_name) {
    uint32_t size = t.size();
    if (size != 1 && size != 2 && size != 4 && size != 8) return Bytes(size);
    std::string underlying = absl::StrCat("::std::", t.is_signed_enum() ? "int" : "uint", size * 8, "_t");
    absl::string_view btf_name = btf_.Name(t);
    if (btf_name.empty()) btf_name = typedef_name;
    if (btf_name.empty()) return {underlying, size, size};
    auto it = done_.find(id);
    if (it != done_.end()) return it->second;
    std::string name = names_->Take(btf_name);
    CxxType out{qual_ + name, size, size};
    done_[id] = out;
    Names values;
    std::string body;
    for (const auto& v : btf_.EnumValues(t)) {
      absl::StrAppend(&body, "  ", values.Take(btf_.String(v.name_off)), " = static_cast<",
                      underlying, ">(", v.value, "ull),\n");
    }
    absl::StrAppend(&defs_, "// enum ", btf_name, "\nenum class ", name, " : ", underlying,
                    " {\n", body, "};\n\n");
    return out;
  }

  CxxType Composite(uint32_t id, const BtfType& t, absl::string_view typedef_name) {
    auto it = done_.find(id);
    if (it != done_.end()) return it->second;
    bool is_union = t.kind == BtfKind::kUnion;
    absl::string_view btf_name = btf_.Name(t);
    std::string c_name = absl::StrCat(is_union ? "union " : "struct ",
                                      btf_name.empty() ? absl::StrCat("<anonymous #", id, ">") : std::string(btf_name));
    if (btf_name.empty()) btf_name = typedef_name;
    std::string name = names_->Take(btf_name.empty() ? absl::StrCat("anon_", id) : std::string(btf_name));
    // Member types first: their definitions must come before this one.
    std::vector<Field> fields;
    std::string why;
    Names member_names;
    int anon = 0;
    for (const auto& m : btf_.Members(t)) {
      if (m.bitfield_size != 0 || m.bit_offset % 8 != 0) {
        why = "bitfields";
        break;
      }
      CxxType mt = Get(m.type);
      if (mt.spelling.empty()) {
        if (btf_.SizeOf(m.type).value_or(0) == 0) continue;  // flexible array: no bytes here
        why = "a member without a C++ type";
        break;
      }
      absl::string_view mname = btf_.String(m.name_off);
      fields.push_back({member_names.Take(mname.empty() ? absl::StrCat("anon", anon++) : std::string(mname)),
                        mt, m.bit_offset / 8, ""});
    }
    uint64_t size = t.size();
    Layout l;
    if (why.empty()) {
      l = LayOut(name, is_union, fields, size, 0);
      if (!l.ok) why = l.why;
    }
    CxxType out;
    if (why.empty()) {
      absl::StrAppend(&defs_, "// ", c_name, "\n", is_union ? "union " : "struct ", name, " {\n", l.body,
                      "};\n", absl::StrJoin(l.asserts, "\n"), "\n\n");
      out = {qual_ + name, size, l.align};
    } else if (size == 0) {
      out = {};
    } else {
      absl::StrAppend(&defs_, "// ", c_name, " as raw bytes: ", why, " (not expressible in C++ here)\n",
                      "struct ", name, " {\n  ::std::array<::std::uint8_t, ", size, "> bytes;\n};\n",
                      "static_assert(sizeof(", name, ") == ", size, ");\n\n");
      out = {qual_ + name, size, 1};
    }
    done_[id] = out;
    return out;
  }

  const Btf& btf_;
  Names* names_;
  std::string qual_;
  std::map<uint32_t, CxxType> done_;
  std::string defs_;
};

// --- attach ----------------------------------------------------------------------

// How Attach() hooks a program up, by the section prefix libbpf's SEC()
// names. A kind is listed only if the section alone says where it goes;
// XDP, tc, cgroup, socket and netns programs need an interface, a cgroup
// or a socket from the caller, and are left to tether/attach.h.
struct AttachKind {
  const char* prefix;  // SectionInfo::matched
  // Returns the call (an absl::StatusOr<link_type> expression), or ""
  // if this program's attach_to does not say enough.
  std::string (*call)(const tether::SectionInfo& s, const std::string& prog);
  // What the call returns, kept in Skel::links.
  const char* link_type = "::tether::Link";
};

std::string AttachTracepointCall(const tether::SectionInfo& s, const std::string& prog) {
  std::vector<std::string> parts = absl::StrSplit(s.attach_to, absl::MaxSplits('/', 1));
  if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) return "";
  return absl::StrCat("::tether::AttachTracepoint(", prog, ", ", CString(parts[0]), ", ", CString(parts[1]), ")");
}

std::string AttachKprobeCall(const tether::SectionInfo& s, const std::string& prog) {
  if (s.attach_to.empty()) return "";
  std::string sym = s.attach_to;
  uint64_t off = 0;
  if (size_t plus = sym.find('+'); plus != std::string::npos) {
    if (!absl::SimpleAtoi(sym.substr(plus + 1), &off)) return "";
    sym.resize(plus);
  }
  if (s.return_probe) return absl::StrCat("::tether::AttachKretprobe(", prog, ", ", CString(sym), ")");
  return absl::StrCat("::tether::AttachKprobe(", prog, ", ", CString(sym), ", ", off, ")");
}

std::string AttachRawTracepointCall(const tether::SectionInfo& s, const std::string& prog) {
  if (s.attach_to.empty()) return "";
  return absl::StrCat("::tether::AttachRawTracepoint(", prog, ", ", CString(s.attach_to), ")");
}

std::string AttachTracingCall(const tether::SectionInfo& s, const std::string& prog) {
  if (s.attach_to.empty()) return "";
  return absl::StrCat("::tether::AttachTracing(", prog, ", ", s.expected_attach_type, ")");
}

std::string AttachIterCall(const tether::SectionInfo&, const std::string& prog) {
  return absl::StrCat("::tether::AttachIter(", prog, ")");
}

// uprobe/<binary>:<function>[+<offset>] or uprobe/<binary>:<file offset>,
// as libbpf spells it. The binary is everything before the last ':', so
// "uprobe//proc/self/exe:fn" probes the process that attaches.
std::string AttachUprobeCall(const tether::SectionInfo& s, const std::string& prog) {
  size_t colon = s.attach_to.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.attach_to.size()) return "";
  std::string binary = s.attach_to.substr(0, colon);
  std::string where = s.attach_to.substr(colon + 1);
  std::string symbol = where;
  uint64_t offset = 0;
  if (size_t plus = where.find('+'); plus != std::string::npos) {
    if (!absl::SimpleAtoi(where.substr(plus + 1), &offset) &&
        !absl::SimpleHexAtoi(absl::StripPrefix(where.substr(plus + 1), "0x"), &offset)) {
      return "";
    }
    symbol.resize(plus);
  } else if (absl::StartsWith(where, "0x") && absl::SimpleHexAtoi(where.substr(2), &offset)) {
    symbol.clear();
  } else if (absl::SimpleAtoi(where, &offset)) {
    symbol.clear();
  }
  if (symbol.empty() && offset == 0) return "";
  return absl::StrCat(s.return_probe ? "::tether::AttachUretprobe(" : "::tether::AttachUprobe(", prog, ", ",
                      CString(binary), ", ::tether::UprobeTarget{", CString(symbol), ", ", offset, "u})");
}

// usdt/<binary>:<provider>:<name>, as libbpf spells it; the binary is
// everything before the last two ':'.
std::string AttachUsdtCall(const tether::SectionInfo& s, const std::string& prog) {
  size_t name_colon = s.attach_to.rfind(':');
  if (name_colon == std::string::npos || name_colon == 0) return "";
  size_t provider_colon = s.attach_to.rfind(':', name_colon - 1);
  if (provider_colon == std::string::npos || provider_colon == 0) return "";
  std::string binary = s.attach_to.substr(0, provider_colon);
  std::string provider = s.attach_to.substr(provider_colon + 1, name_colon - provider_colon - 1);
  std::string name = s.attach_to.substr(name_colon + 1);
  if (provider.empty() || name.empty()) return "";
  return absl::StrCat("::tether::AttachUsdt(", prog, ", ", CString(binary), ", ", CString(provider), ", ",
                      CString(name), ")");
}

constexpr AttachKind kAttachKinds[] = {
    {"tp", AttachTracepointCall},          {"tracepoint", AttachTracepointCall},
    {"kprobe", AttachKprobeCall},          {"kretprobe", AttachKprobeCall},
    {"raw_tp", AttachRawTracepointCall},   {"raw_tracepoint", AttachRawTracepointCall},
    {"raw_tp.w", AttachRawTracepointCall}, {"raw_tracepoint.w", AttachRawTracepointCall},
    {"tp_btf", AttachTracingCall},         {"fentry", AttachTracingCall},
    {"fexit", AttachTracingCall},          {"fmod_ret", AttachTracingCall},
    {"lsm", AttachTracingCall},            {"fentry.s", AttachTracingCall},
    {"fexit.s", AttachTracingCall},        {"fmod_ret.s", AttachTracingCall},
    {"lsm.s", AttachTracingCall},          {"iter", AttachIterCall},
    {"iter.s", AttachIterCall},
    {"uprobe", AttachUprobeCall},          {"uretprobe", AttachUprobeCall},
    {"uprobe.s", AttachUprobeCall},        {"uretprobe.s", AttachUprobeCall},
    {"usdt", AttachUsdtCall, "::tether::UsdtAttachment"},
    {"usdt.s", AttachUsdtCall, "::tether::UsdtAttachment"},
};

const AttachKind* FindAttachKind(const ProgramSpec& p) {
  tether::SectionInfo s = tether::ParseSectionName(p.section);
  if (!s.known) return nullptr;
  for (const AttachKind& k : kAttachKinds) {
    if (s.matched == k.prefix) return &k;
  }
  return nullptr;
}

std::string AttachCall(const ProgramSpec& p, const std::string& prog) {
  const AttachKind* k = FindAttachKind(p);
  return k == nullptr ? "" : k->call(tether::ParseSectionName(p.section), prog);
}

// --- the header ----------------------------------------------------------------------

struct DataSection {
  std::string section;   // ".bss"
  std::string ident;     // "bss": accessor and map member
  std::string type;      // "Bss"
  bool read_only = false;  // .rodata*: frozen at load
  uint32_t size = 0;
  std::vector<const VariableSpec*> vars;
};

struct Member {
  std::string name;   // spec name
  std::string ident;  // C++ member / enumerator
  std::string comment;
  std::string typed;  // maps: "::tether::TypedMap<K, V>" when BTF gives K and V, else empty
};

// Writes the skeleton header in the order a reader meets it: the types of
// the globals, the embedded object, then class Skel member by member. Each
// Emit* appends one part of the class to `o`.
class Generator {
 public:
  Generator(const CollectionSpec& spec, std::string object_name, std::string ns,
            std::vector<uint8_t> bytes)
      : spec(spec),
        object_name(std::move(object_name)),
        ns(std::move(ns)),
        bytes(std::move(bytes)),
        btf(spec.btf ? *spec.btf : empty_btf),
        types(btf, &type_names, this->ns) {}

  std::string Generate();

 private:
  void CollectDataSections();
  void DefineDataSections();
  void CollectMembers();
  void EmitPreamble();
  void EmitObjectBytes();
  void EmitClassHead();
  void EmitLoad();
  void EmitLoadSelected();
  void EmitAttach();
  void EmitDataAccessors();
  void EmitTypedMaps();
  std::string TypedView(const MapSpec& m);
  void EmitLookupHelpers();
  void EmitShapeCheck();
  void EmitFromSpecAndLoaded();
  std::string map_ident(const std::string& name) const {
    for (const Member& m : maps)
      if (m.name == name) return m.ident;
    return std::string();
  }

  const CollectionSpec& spec;
  std::string object_name;  // file name, for messages
  std::string ns;
  std::vector<uint8_t> bytes;
  std::string guard = absl::AsciiStrToUpper(absl::StrCat("TETHER_SKEL_", ns, "_HPP_"));
  Names type_names;
  Btf empty_btf;
  const Btf& btf;
  TypeEmitter types;
  std::vector<DataSection> sections;
  std::string section_defs;
  std::vector<Member> maps, progs;
  std::string o;  // the header so far
};

std::string Generator::Generate() {
  // Data sections with variables get a struct each; their names go first
  // so that BTF types yield to them.
  CollectDataSections();
  DefineDataSections();
  CollectMembers();
  EmitPreamble();
  EmitObjectBytes();
  EmitClassHead();
  EmitLoad();
  EmitLoadSelected();
  EmitAttach();
  EmitDataAccessors();
  EmitTypedMaps();
  EmitLookupHelpers();
  EmitShapeCheck();
  EmitFromSpecAndLoaded();
  return o;
}

// The data sections that hold variables, each with its struct type name.
void Generator::CollectDataSections() {
  for (const auto& [name, m] : spec.maps) {
    if (!m.is_data_section() || m.section == ".kconfig" || m.type != BPF_MAP_TYPE_ARRAY) continue;
    DataSection d;
    d.section = name;
    d.ident = SectionIdent(name);
    d.read_only = absl::StartsWith(name, ".rodata");
    d.size = m.value_size;
    for (const auto& [vname, v] : spec.variables) {
      if (v.section == name) d.vars.push_back(&v);
    }
    if (d.vars.empty()) continue;
    std::sort(d.vars.begin(), d.vars.end(), [](const VariableSpec* a, const VariableSpec* b) {
      return a->offset != b->offset ? a->offset < b->offset : a->name < b->name;
    });
    d.type = type_names.Take(CamelCase(d.ident));
    sections.push_back(std::move(d));
  }
}

// One packed struct per data section, laid out where the compiler put each variable.
void Generator::DefineDataSections() {
  for (DataSection& d : sections) {
    std::vector<Field> fields;
    Names field_names;
    uint64_t end = 0;
    for (const VariableSpec* v : d.vars) {
      if (v->offset < end || uint64_t{v->offset} + v->size > d.size) {
        absl::StrAppend(&section_defs, "// ", v->name, " (", d.section, "+", v->offset,
                        ") overlaps another variable: not in the struct\n");
        continue;
      }
      CxxType t = v->btf_type_id ? types.Get(v->btf_type_id) : CxxType{};
      std::string note;
      if (t.spelling.empty() || t.size != v->size || v->offset % t.align != 0) {
        if (!t.spelling.empty()) note = absl::StrCat("as bytes: BTF says ", t.spelling, " of ", t.size, " bytes");
        t = Bytes(v->size);
      }
      if (t.spelling.empty()) continue;
      fields.push_back({field_names.Take(v->name), t, v->offset, note});
      end = v->offset + v->size;
    }
    // Sections are sized by the compiler, not to a multiple of their
    // strictest member; the kernel and MmapArray want sizeof == value_size,
    // so alignment is capped at what the size allows (members stay where
    // the compiler put them, which is aligned, and so are the map values).
    uint32_t pack = 8;
    while (pack > 1 && d.size % pack != 0) pack /= 2;
    Layout l = LayOut(d.type, false, fields, d.size, pack);
    if (!l.ok) {
      fields = {{"bytes", Bytes(d.size), 0, absl::StrCat("raw: ", l.why)}};
      l = LayOut(d.type, false, fields, d.size, 1);
    }
    absl::StrAppend(&section_defs, "// ", d.section, ": ", d.vars.size(), " variable(s), ", d.size,
                    " bytes", d.read_only ? "; constant once loaded" : "", ".\n");
    absl::StrAppend(&section_defs, "#pragma pack(push, ", pack, ")\nstruct ", d.type, " {\n", l.body,
                    "};\n#pragma pack(pop)\n", absl::StrJoin(l.asserts, "\n"), "\n\n");
  }
}

// Maps and programs, named after them.
void Generator::CollectMembers() {
  {
    Names n;
    for (const auto& [name, m] : spec.maps) {
      std::string c = absl::StrCat(m.section.empty() ? "" : absl::StrCat("SEC(\"", m.section, "\") "),
                       tether::MapTypeName(m.type), ", ", m.max_entries, m.max_entries == 1 ? " entry" : " entries",
                       m.pinning == tether::PinType::kByName ? ", pinned by name" : "");
      maps.push_back({name, n.Take(m.is_data_section() ? SectionIdent(name) : name), c, TypedView(m)});
    }
  }
  {
    Names n;
    for (const auto& [name, p] : spec.programs) {
      progs.push_back({name, n.Take(name), absl::StrCat("SEC(\"", p.section, "\")")});
    }
  }
}

// The header comment, guard, includes, and the types of the globals.
void Generator::EmitPreamble() {
  absl::StrAppend(&o, "// Generated by tether-skel from ", object_name,
                  ". Do not edit: regenerate it when the object changes.\n"
                  "//\n"
                  "//   auto skel = ", ns, "::Skel::Open();        // the object embedded below\n"
                  "//   skel->mutable_rodata()->x = 1;   // constants, before Load\n"
                  "//   skel->Load();                    // or LoadSelected({...})\n"
                  "//   skel->progs.<program>.Run(...); skel->bss()->counter ...\n"
                  "#ifndef ", guard, "\n#define ", guard, "\n\n");
  absl::StrAppend(&o,
                  "#include <linux/bpf.h>\n\n"
                  "#include <array>\n#include <cstddef>\n#include <cstdint>\n#include <string>\n"
                  "#include <utility>\n#include <vector>\n\n"
                  "#include \"absl/status/status.h\"\n#include \"absl/status/statusor.h\"\n"
                  "#include \"absl/strings/str_cat.h\"\n#include \"absl/types/span.h\"\n"
                  "#include \"tether/collection.h\"\n#include \"tether/collection_spec.h\"\n"
                  "#include \"tether/map.h\"\n#include \"tether/mmap_array.h\"\n"
                  "#include \"tether/percpu.h\"\n#include \"tether/program.h\"\n"
                  "#include \"tether/typed_map.h\"\n"
                  "// Attach() needs the attach API; without it, it says Unimplemented.\n"
                  "#if __has_include(\"tether/attach.h\")\n#include \"tether/attach.h\"\n#include \"tether/usdt.h\"\n"
                  "#define TETHER_SKEL_HAVE_ATTACH 1\n#endif\n\n");
  absl::StrAppend(&o, "namespace ", ns, " {\n\n");
  if (!types.definitions().empty()) {
    absl::StrAppend(&o, "// --- types of the global variables and map keys and values, from BTF ---\n\n",
                    types.definitions());
  }
  if (!section_defs.empty()) absl::StrAppend(&o, "// --- global data ---\n\n", section_defs);
}

// The object itself, embedded.
void Generator::EmitObjectBytes() {
  // The bytes, as a string literal: compilers read those far faster than
  // an initializer list of numbers.
  absl::StrAppend(&o, "// The object itself (", bytes.size(), " bytes), so that Open() needs no file.\n",
                  "inline constexpr char kObjectName[] = ", CString(object_name), ";\n",
                  "inline constexpr ::std::size_t kObjectSize = ", bytes.size(), ";\n",
                  "inline constexpr char kObject[kObjectSize + 1] =\n");
  for (size_t i = 0; i < bytes.size(); i += 32) {
    std::string line = "    \"";
    for (size_t j = i; j < std::min(bytes.size(), i + 32); ++j) absl::StrAppend(&line, absl::StrFormat("\\%03o", bytes[j]));
    absl::StrAppend(&o, line, "\"\n");
  }
  if (bytes.empty()) absl::StrAppend(&o, "    \"\"");
  absl::StrAppend(&o, "    ;\n\n");
}

// class Skel's ids, member structs, Open() and the spec accessors.
void Generator::EmitClassHead() {
  absl::StrAppend(&o, "class Skel {\n public:\n");
  absl::StrAppend(&o, "  enum class ProgramId {");
  for (size_t i = 0; i < progs.size(); ++i) absl::StrAppend(&o, i ? ", " : " ", progs[i].ident);
  absl::StrAppend(&o, " };\n  enum class MapId {");
  for (size_t i = 0; i < maps.size(); ++i) absl::StrAppend(&o, i ? ", " : " ", maps[i].ident);
  absl::StrAppend(&o, " };\n\n");

  absl::StrAppend(&o, "  // Empty until Load(); LoadSelected() fills what it loaded.\n  struct Maps {\n");
  for (const Member& m : maps) absl::StrAppend(&o, "    ::tether::Map ", m.ident, ";  // ", m.name, ": ", m.comment, "\n");
  absl::StrAppend(&o, "  };\n  struct Programs {\n");
  for (const Member& p : progs) absl::StrAppend(&o, "    ::tether::Program ", p.ident, ";  // ", p.comment, "\n");
  absl::StrAppend(&o, "  };\n\n");

  // Open.
  absl::StrAppend(&o,
                  "  // Parses the embedded object.\n"
                  "  static ::absl::StatusOr<Skel> Open() {\n"
                  "    auto spec = ::tether::CollectionSpec::FromMemory(\n"
                  "        ::absl::MakeConstSpan(reinterpret_cast<const ::std::uint8_t*>(kObject), kObjectSize),\n"
                  "        kObjectName);\n"
                  "    if (!spec.ok()) return spec.status();\n"
                  "    return FromSpec(*::std::move(spec), kObjectName);\n"
                  "  }\n"
                  "  // Parses `path`, a build of the same object: it must have every map,\n"
                  "  // program and variable this header names, with the same layout.\n"
                  "  static ::absl::StatusOr<Skel> Open(const ::std::string& path) {\n"
                  "    auto spec = ::tether::CollectionSpec::FromFile(path);\n"
                  "    if (!spec.ok()) return spec.status();\n"
                  "    return FromSpec(*::std::move(spec), path);\n"
                  "  }\n\n");

  absl::StrAppend(&o,
                  "  // The parsed object: change map sizes, program types or constants\n"
                  "  // here before loading. Ignored after.\n"
                  "  ::tether::CollectionSpec& spec() { return spec_; }\n"
                  "  const ::tether::CollectionSpec& spec() const { return spec_; }\n"
                  "  bool loaded() const { return loaded_; }\n"
                  "  // Pins the load made (maps pinned by name, new there).\n"
                  "  const ::std::vector<::std::string>& created_pins() const { return created_pins_; }\n\n");
}

// Load(): everything, all or nothing.
void Generator::EmitLoad() {
  absl::StrAppend(&o,
                  "  // Loads everything, all or nothing (tether::Collection::Load).\n"
                  "  ::absl::Status Load(const ::tether::CollectionOptions& options = {}) {\n"
                  "    if (loaded_) return AlreadyLoaded();\n"
                  "    auto coll = ::tether::Collection::Load(spec_, options);\n"
                  "    if (!coll.ok()) return coll.status();\n");
  for (const Member& m : maps) absl::StrAppend(&o, "    maps.", m.ident, " = coll->map(", CString(m.name), ");\n");
  for (const Member& p : progs) absl::StrAppend(&o, "    progs.", p.ident, " = coll->program(", CString(p.name), ");\n");
  absl::StrAppend(&o,
                  "    created_pins_ = coll->created_pins();\n"
                  "    return Loaded();\n"
                  "  }\n\n");
}

// LoadSelected(): some programs and maps, with what they need.
void Generator::EmitLoadSelected() {
  absl::StrAppend(&o,
                  "  // What LoadSelected() loads: these, and what they need.\n"
                  "  struct Selection {\n"
                  "    ::std::vector<ProgramId> programs;\n"
                  "    ::std::vector<MapId> maps;\n"
                  "  };\n"
                  "  // Loads only the programs and maps selected, with their dependencies\n"
                  "  // (tether::LoadAndAssign); only the selected ones, and the global\n"
                  "  // data maps, get handles here. Refused, with nothing made, if a program\n"
                  "  // array with static entries would be left without a handle: select\n"
                  "  // it, pin it or replace it.\n"
                  "  ::absl::Status LoadSelected(const Selection& selection,\n"
                  "                              const ::tether::CollectionOptions& options = {}) {\n"
                  "    if (loaded_) return AlreadyLoaded();\n"
                  "    Maps m;\n"
                  "    Programs p;\n"
                  "    ::tether::Assignment a;\n"
                  "    for (ProgramId id : selection.programs) {\n"
                  "      ::tether::Program* slot = Slot(p, id);\n"
                  "      bool dup = false;\n"
                  "      for (const auto& [n, s] : a.programs) dup |= s == slot;\n"
                  "      if (!dup) a.programs.emplace_back(Name(id), slot);\n"
                  "    }\n"
                  "    auto bind = [&](MapId id) {\n"
                  "      ::tether::Map* slot = Slot(m, id);\n"
                  "      for (const auto& [n, s] : a.maps) if (s == slot) return;\n"
                  "      a.maps.emplace_back(Name(id), slot);\n"
                  "    };\n"
                  "    for (MapId id : selection.maps) bind(id);\n");
  if (!sections.empty()) {
    absl::StrAppend(&o, "    // The typed data accessors read these maps.\n");
    for (const DataSection& d : sections) absl::StrAppend(&o, "    bind(MapId::", map_ident(d.section), ");\n");
  }
  absl::StrAppend(&o,
                  "    ::absl::Status st = ::tether::LoadAndAssign(spec_, a, options);\n"
                  "    if (!st.ok()) return st;\n"
                  "    maps = ::std::move(m);\n"
                  "    progs = ::std::move(p);\n"
                  "    return Loaded();\n"
                  "  }\n\n");
}

// Attach(): every program whose section names its hook.
void Generator::EmitAttach() {
  std::vector<std::string> auto_attach, manual;
  std::vector<const char*> link_types;
  std::string attach_body;
  for (const Member& p : progs) {
    const ProgramSpec& ps = spec.programs.at(p.name);
    std::string call = AttachCall(ps, "progs." + p.ident);
    if (call.empty()) {
      manual.push_back(absl::StrCat(p.name, " (", ps.section, ")"));
      continue;
    }
    auto_attach.push_back(p.ident);
    link_types.push_back(FindAttachKind(ps)->link_type);
    absl::StrAppend(&attach_body,
                    "    if (progs.", p.ident, " && !links.", p.ident, ") {  // SEC(\"", ps.section, "\")\n"
                    "      auto link = ", call, ";\n"
                    "      if (!link.ok()) return AttachError(", CString(p.name), ", ", CString(ps.section),
                    ", link.status());\n"
                    "      links.", p.ident, " = *::std::move(link);\n"
                    "    }\n");
  }
  std::string manual_note = manual.empty() ? "" : absl::StrCat("  // Left to the caller (their section does not name the hook):\n  //   ",
                                                           absl::StrJoin(manual, "\n  //   "), "\n");
  absl::StrAppend(&o,
                  "  // Attaches every loaded program whose section names its hook\n"
                  "  // (tracepoints, kprobes, uprobes, USDT, raw tracepoints, BTF tracing,\n"
                  "  // iterators), keeping the links in `links`. Programs attached already\n"
                  "  // are skipped.\n",
                  manual_note, "#ifdef TETHER_SKEL_HAVE_ATTACH\n  struct Links {\n");
  for (size_t i = 0; i < auto_attach.size(); ++i) {
    absl::StrAppend(&o, "    ", link_types[i], " ", auto_attach[i], ";\n");
  }
  absl::StrAppend(&o,
                  "  };\n"
                  "  ::absl::Status Attach() {\n"
                  "    if (!loaded_) return ::absl::FailedPreconditionError(::absl::StrCat(kObjectName, \": attach: not loaded\"));\n",
                  attach_body,
                  "    return ::absl::OkStatus();\n"
                  "  }\n"
                  "#else\n"
                  "  ::absl::Status Attach() {\n");
  if (auto_attach.empty()) {
    absl::StrAppend(&o, "    return ::absl::OkStatus();  // nothing here attaches by its section alone\n");
  } else {
    absl::StrAppend(&o,
                    "    return ::absl::UnimplementedError(::absl::StrCat(kObjectName,\n"
                    "        \": attach: this tether has no tether/attach.h; attach ",
                    absl::CEscape(absl::StrJoin(auto_attach, ", ")), " by hand\"));\n");
  }
  absl::StrAppend(&o, "  }\n#endif\n\n");
}

// Typed accessors of the data sections.
void Generator::EmitDataAccessors() {
  for (const DataSection& d : sections) {
    std::string mi = map_ident(d.section);
    absl::StrAppend(&o, "  // ", d.section, "\n");
    if (d.read_only) {
      absl::StrAppend(&o,
                      "  // Writable until Load() (the spec's copy); nullptr after, when the\n"
                      "  // kernel has the section frozen.\n"
                      "  ", d.type, "* mutable_", d.ident, "() {\n"
                      "    return loaded_ ? nullptr : reinterpret_cast<", d.type, "*>(SpecBytes(", CString(d.section), "));\n"
                      "  }\n"
                      "  // Before Load, the spec's copy; after, the frozen map (mapped read-only).\n"
                      "  const ", d.type, "& ", d.ident, "() const {\n"
                      "    if (", d.ident, "_mmap_.size() != 0) return ", d.ident, "_mmap_[0];\n"
                      "    return *reinterpret_cast<const ", d.type, "*>(const_cast<Skel*>(this)->SpecBytes(", CString(d.section), "));\n"
                      "  }\n");
    } else {
      absl::StrAppend(&o,
                      "  // Before Load, the spec's copy (the initial value); after, the map's\n"
                      "  // value mapped into this process, shared with the programs (nullptr\n"
                      "  // if the map cannot be mapped: use Read/Write).\n"
                      "  ", d.type, "* ", d.ident, "() {\n"
                      "    if (!loaded_) return reinterpret_cast<", d.type, "*>(SpecBytes(", CString(d.section), "));\n"
                      "    return ", d.ident, "_mmap_.size() != 0 ? &", d.ident, "_mmap_[0] : nullptr;\n"
                      "  }\n");
    }
    absl::StrAppend(&o,
                    "  // After Load: a copy through the map (BPF_MAP_LOOKUP_ELEM).\n"
                    "  ::absl::StatusOr<", d.type, "> Read", d.type, "() const {\n"
                    "    if (!maps.", mi, ") return NotLoaded(", CString(d.section), ");\n"
                    "    ", d.type, " value;\n"
                    "    ::absl::Status st = maps.", mi, ".Lookup(::std::uint32_t{0}, &value);\n"
                    "    if (!st.ok()) return st;\n"
                    "    return value;\n"
                    "  }\n");
    if (!d.read_only) {
      absl::StrAppend(&o,
                      "  ::absl::Status Write", d.type, "(const ", d.type, "& value) const {\n"
                      "    if (!maps.", mi, ") return NotLoaded(", CString(d.section), ");\n"
                      "    return maps.", mi, ".Update(::std::uint32_t{0}, value);\n"
                      "  }\n");
    }
    absl::StrAppend(&o, "\n");
  }
}

// The typed view a map gets when BTF spells its key and value in C++ at
// the sizes the map has: TypedMap, or PerCpuMap for per-CPU types.
std::string Generator::TypedView(const MapSpec& m) {
  if (m.is_data_section() || m.btf_key_type_id == 0 || m.btf_value_type_id == 0) return "";
  const char* view = nullptr;
  switch (m.type) {
    case BPF_MAP_TYPE_HASH:
    case BPF_MAP_TYPE_ARRAY:
    case BPF_MAP_TYPE_LRU_HASH:
    case BPF_MAP_TYPE_LPM_TRIE:
      view = "::tether::TypedMap";
      break;
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
      view = "::tether::PerCpuMap";
      break;
    default:
      return "";
  }
  CxxType k = types.Get(m.btf_key_type_id);
  CxxType v = types.Get(m.btf_value_type_id);
  if (k.spelling.empty() || v.spelling.empty() || k.size != m.key_size || v.size != m.value_size) return "";
  return absl::StrCat(view, "<", k.spelling, ", ", v.spelling, ">");
}

// typed_<map>(): the map bound to its BTF key and value types, so that a
// key of the wrong type is a compile-time error (or converts to K) rather
// than a size mismatch found at run time.
void Generator::EmitTypedMaps() {
  bool any = false;
  for (const Member& m : maps) {
    if (m.typed.empty()) continue;
    if (!any) {
      absl::StrAppend(&o,
                      "  // Typed views of the maps whose key and value types BTF gives, after\n"
                      "  // Load: keys convert to the key type, and one that would narrow does\n"
                      "  // not compile (tether/typed_map.h).\n");
      any = true;
    }
    absl::StrAppend(&o,
                    "  ::absl::StatusOr<", m.typed, "> typed_", m.ident, "() const {\n"
                    "    if (!maps.", m.ident, ") return NotLoaded(", CString(m.name), ");\n"
                    "    return ", m.typed, "::Bind(maps.", m.ident, ");\n"
                    "  }\n");
  }
  if (any) absl::StrAppend(&o, "\n");
}

// Id to name and id to member slot.
void Generator::EmitLookupHelpers() {
  absl::StrAppend(&o, " private:\n  Skel() = default;\n\n");
  absl::StrAppend(&o, "  static const char* Name(ProgramId id) {\n    switch (id) {\n");
  for (const Member& p : progs) absl::StrAppend(&o, "      case ProgramId::", p.ident, ": return ", CString(p.name), ";\n");
  absl::StrAppend(&o, "    }\n    return \"\";\n  }\n");
  absl::StrAppend(&o, "  static const char* Name(MapId id) {\n    switch (id) {\n");
  for (const Member& m : maps) absl::StrAppend(&o, "      case MapId::", m.ident, ": return ", CString(m.name), ";\n");
  absl::StrAppend(&o, "    }\n    return \"\";\n  }\n");
  absl::StrAppend(&o, "  static ::tether::Program* Slot([[maybe_unused]] Programs& p, ProgramId id) {\n    switch (id) {\n");
  for (const Member& p : progs) absl::StrAppend(&o, "      case ProgramId::", p.ident, ": return &p.", p.ident, ";\n");
  absl::StrAppend(&o, "    }\n    return nullptr;\n  }\n");
  absl::StrAppend(&o, "  static ::tether::Map* Slot([[maybe_unused]] Maps& m, MapId id) {\n    switch (id) {\n");
  for (const Member& m : maps) absl::StrAppend(&o, "      case MapId::", m.ident, ": return &m.", m.ident, ";\n");
  absl::StrAppend(&o, "    }\n    return nullptr;\n  }\n\n");
}

// CheckShape(): the object opened must have the layout the header was made from.
void Generator::EmitShapeCheck() {
  absl::StrAppend(&o,
                  "  // The header's types are only right for an object of the same shape.\n"
                  "  static ::absl::Status CheckShape(const ::tether::CollectionSpec& spec, const ::std::string& what) {\n"
                  "    auto missing = [&](const char* kind, const char* name) {\n"
                  "      return ::absl::FailedPreconditionError(::absl::StrCat(what, \": \", kind, \" '\", name,\n"
                  "          \"' of the ", ns, " skeleton is not in the object; regenerate the skeleton\"));\n"
                  "    };\n");
  for (const Member& m : maps) {
    absl::StrAppend(&o, "    if (!spec.maps.count(", CString(m.name), ")) return missing(\"map\", ", CString(m.name), ");\n");
  }
  for (const Member& p : progs) {
    absl::StrAppend(&o, "    if (!spec.programs.count(", CString(p.name), ")) return missing(\"program\", ", CString(p.name), ");\n");
  }
  for (const DataSection& d : sections) {
    absl::StrAppend(&o, "    if (spec.maps.at(", CString(d.section), ").value_size != sizeof(", d.type, "))\n"
                        "      return ::absl::FailedPreconditionError(::absl::StrCat(what, \": ", absl::CEscape(d.section),
                    " is \", spec.maps.at(", CString(d.section), ").value_size, \" bytes, the skeleton's ", d.type,
                    " \", sizeof(", d.type, ")));\n");
    for (const VariableSpec* v : d.vars) {
      absl::StrAppend(&o,
                      "    {\n"
                      "      auto it = spec.variables.find(", CString(v->name), ");\n"
                      "      if (it == spec.variables.end()) return missing(\"variable\", ", CString(v->name), ");\n"
                      "      if (it->second.section != ", CString(d.section), " || it->second.offset != ", v->offset,
                      " || it->second.size != ", v->size, ")\n"
                      "        return ::absl::FailedPreconditionError(::absl::StrCat(what, \": variable ",
                      absl::CEscape(v->name), " moved (\", it->second.section, \"+\", it->second.offset, \", \",\n"
                      "            it->second.size, \" bytes; the skeleton has ", absl::CEscape(d.section), "+", v->offset,
                      ", ", v->size, ")\"));\n"
                      "    }\n");
    }
  }
  absl::StrAppend(&o, "    return ::absl::OkStatus();\n  }\n\n");
}

// FromSpec(), the small error helpers, Loaded() and the data members.
void Generator::EmitFromSpecAndLoaded() {
  absl::StrAppend(&o, "  static ::absl::StatusOr<Skel> FromSpec(::tether::CollectionSpec spec, const ::std::string& what) {\n"
                      "    ::absl::Status st = CheckShape(spec, what);\n"
                      "    if (!st.ok()) return st;\n");
  if (!sections.empty()) {
    absl::StrAppend(&o, "    // Mapped into this process after load, as libbpf does, so that\n"
                        "    // globals are read and written in place, without a syscall.\n");
    for (const DataSection& d : sections)
      absl::StrAppend(&o, "    spec.maps.at(", CString(d.section), ").flags |= BPF_F_MMAPABLE;\n");
  }
  absl::StrAppend(&o, "    Skel skel;\n    skel.spec_ = ::std::move(spec);\n    return skel;\n  }\n\n");

  absl::StrAppend(&o, "  ::std::uint8_t* SpecBytes(const char* section) {\n"
                      "    return spec_.maps.at(section).contents.data();\n"
                      "  }\n"
                      "  static ::absl::Status AlreadyLoaded() {\n"
                      "    return ::absl::FailedPreconditionError(::absl::StrCat(kObjectName, \": load: already loaded\"));\n"
                      "  }\n"
                      "  static ::absl::Status NotLoaded(const char* section) {\n"
                      "    return ::absl::FailedPreconditionError(::absl::StrCat(kObjectName, \": \", section, \": not loaded\"));\n"
                      "  }\n"
                      "  [[maybe_unused]] static ::absl::Status AttachError(const char* prog, const char* section, const ::absl::Status& st) {\n"
                      "    return ::absl::Status(st.code(), ::absl::StrCat(kObjectName, \": attach program '\", prog,\n"
                      "        \"' (SEC(\\\"\", section, \"\\\")): \", st.message()));\n"
                      "  }\n");
  absl::StrAppend(&o, "  // Maps the data sections that can be; the others are read through the map.\n"
                      "  ::absl::Status Loaded() {\n");
  for (const DataSection& d : sections) {
    std::string mi = map_ident(d.section);
    absl::StrAppend(&o, "    if (maps.", mi, " && (maps.", mi, ".flags() & BPF_F_MMAPABLE)) {\n"
                        "      auto mm = ::tether::MmapArray<", d.type, ">::Create(maps.", mi, ", /*writable=*/", d.read_only ? "false" : "true", ");\n"
                        "      if (!mm.ok()) {\n        maps = {};\n        progs = {};\n        return mm.status();\n      }\n"
                        "      ", d.ident, "_mmap_ = *::std::move(mm);\n"
                        "    }\n");
  }
  absl::StrAppend(&o, "    loaded_ = true;\n    return ::absl::OkStatus();\n  }\n\n");

  // Members, in destruction order reversed: links go first, then
  // programs, mappings, maps; a program array thus never loses its last
  // handle while the programs that tail-call through it live.
  absl::StrAppend(&o, "  ::tether::CollectionSpec spec_;\n  bool loaded_ = false;\n"
                      "  ::std::vector<::std::string> created_pins_;\n\n public:\n  Maps maps;\n\n private:\n");
  for (const DataSection& d : sections) absl::StrAppend(&o, "  ::tether::MmapArray<", d.type, "> ", d.ident, "_mmap_;\n");
  absl::StrAppend(&o, "\n public:\n  Programs progs;\n#ifdef TETHER_SKEL_HAVE_ATTACH\n  Links links;\n#endif\n};\n\n");
  absl::StrAppend(&o, "}  // namespace ", ns, "\n\n#endif  // ", guard, "\n");
}

int Usage() {
  fprintf(stderr,
          "usage: tether-skel FILE.o [--name NAME] [-o OUT]\n"
          "  Writes a C++ skeleton header for the BPF object FILE.o (to OUT, or stdout).\n"
          "  NAME: the namespace (default: FILE without .bpf.o/.o).\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string path, name, out;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--name" || a == "-n") && i + 1 < argc) {
      name = argv[++i];
    } else if (absl::StartsWith(a, "--name=")) {
      name = a.substr(7);
    } else if (a == "-o" && i + 1 < argc) {
      out = argv[++i];
    } else if (a == "-h" || a == "--help") {
      Usage();
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      return Usage();
    } else if (path.empty()) {
      path = a;
    } else {
      return Usage();
    }
  }
  if (path.empty()) return Usage();

  std::ifstream in(path, std::ios::binary);
  if (!in) {
    fprintf(stderr, "tether-skel: %s: cannot open: %s\n", path.c_str(), strerror(errno));
    return 1;
  }
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto spec = CollectionSpec::FromMemory(bytes, path);
  if (!spec.ok()) {
    fprintf(stderr, "tether-skel: %s\n", spec.status().ToString().c_str());
    return 1;
  }
  std::string base = path.substr(path.find_last_of('/') + 1);
  if (name.empty()) {
    name = base;
    for (absl::string_view suffix : {".bpf.o", ".o", ".elf"}) {
      if (absl::EndsWith(name, suffix)) {
        name.resize(name.size() - suffix.size());
        break;
      }
    }
  }
  Generator g(*spec, base, Sanitize(name), std::move(bytes));
  std::string header = g.Generate();
  if (out.empty()) {
    fwrite(header.data(), 1, header.size(), stdout);
    return ferror(stdout) ? 1 : 0;
  }
  // Written whole or not at all: a build must not see half a header.
  std::string tmp = out + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << header;
    if (!f) {
      fprintf(stderr, "tether-skel: %s: write failed\n", tmp.c_str());
      return 1;
    }
  }
  if (rename(tmp.c_str(), out.c_str()) != 0) {
    fprintf(stderr, "tether-skel: %s: rename: %s\n", out.c_str(), strerror(errno));
    return 1;
  }
  return 0;
}
