// Reads a BPF ELF relocatable object into a CollectionSpec.
//
// The image is checked by hand: section headers, symbol and string tables
// must lie inside the file, string tables must end in NUL and every
// relocation must name an existing symbol and land on an instruction.
// After that, nothing reads outside the caller's image, which is read in
// place (every multi-byte field through memcpy, so its alignment does not
// matter) and never copied: a BPF object is a 64-bit little-endian ELF
// file whose section headers are all the reader needs, so libelf (which
// would copy and convert them again) is not used here.
#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <list>
#include <cerrno>
#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "sys/bpf.h"
#include "tether/collection_spec.h"
#include "tether/section_names.h"
#include "base/status_macros.h"

#ifndef EM_BPF
#define EM_BPF 247
#endif

namespace tether {
namespace {

constexpr uint8_t kLdImm64 = BPF_LD | BPF_IMM | BPF_DW;
constexpr uint8_t kCall = BPF_JMP | BPF_CALL;
constexpr uint32_t kBpfFLink = 1u << 13;  // BPF_F_LINK, for .struct_ops.link maps

struct Section {
  uint32_t index = 0;
  absl::string_view name;  // into the section name table of the caller's image
  Elf64_Shdr hdr{};
  absl::Span<const uint8_t> data;  // empty for NOBITS
  bool exec() const { return hdr.sh_type == SHT_PROGBITS && (hdr.sh_flags & SHF_EXECINSTR); }
};

struct Symbol {
  uint32_t index = 0;
  absl::string_view name;  // into the caller's string table, or a section name
  uint64_t value = 0;
  uint64_t size = 0;
  uint8_t type = 0;
  uint8_t bind = 0;
  uint8_t visibility = 0;
  uint16_t shndx = 0;
};

struct Reloc {
  uint64_t offset = 0;
  uint32_t sym = 0;
  uint32_t type = 0;
  size_t entry = 0;
};

// A function symbol inside an exec section, with its extent.
struct FuncRange {
  const Symbol* sym = nullptr;
  uint32_t start = 0;  // in instructions, within the section
  uint32_t end = 0;
  // The unique name in the spec: the symbol's own name (a view into the
  // image) unless another function took it, then one of renamed_keys_.
  absl::string_view key;
  bool is_program = false;
};

// Built in place: a reference pushed as a temporary moved its name twice.
void AddReference(std::vector<InsnReference>* refs, uint32_t insn, ReferenceKind kind,
                  absl::string_view name, uint32_t offset) {
  InsnReference& r = refs->emplace_back();
  r.insn = insn;
  r.kind = kind;
  r.name.assign(name.data(), name.size());
  r.offset = offset;
}

bool IsLegacyMapSection(const Section& sec) {
  return (sec.name == "maps" || absl::StartsWith(sec.name, "maps/")) && sec.hdr.sh_type != SHT_NULL;
}

bool IsDataSectionName(absl::string_view n) {
  return n == ".data" || n == ".rodata" || n == ".bss" || absl::StartsWith(n, ".data.") ||
         absl::StartsWith(n, ".rodata.") || absl::StartsWith(n, ".bss.");
}

bool AllZero(absl::Span<const uint8_t> b) {
  return std::all_of(b.begin(), b.end(), [](uint8_t c) { return c == 0; });
}

uint32_t Load32(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

// Map types for which key_size 0 is what the kernel wants.
bool KeylessMapType(uint32_t type) {
  return type == BPF_MAP_TYPE_QUEUE || type == BPF_MAP_TYPE_STACK ||
         type == BPF_MAP_TYPE_BLOOM_FILTER || type == BPF_MAP_TYPE_RINGBUF ||
         type == BPF_MAP_TYPE_USER_RINGBUF || type == sys::uapi::kMapTypeArena;
}

// The kernel fixes these sizes; objects often leave them out.
void DefaultMapSizes(MapSpec* m) {
  switch (m->type) {
    case BPF_MAP_TYPE_PERF_EVENT_ARRAY:
    case BPF_MAP_TYPE_CGROUP_ARRAY:
    case BPF_MAP_TYPE_PROG_ARRAY:
    case BPF_MAP_TYPE_ARRAY_OF_MAPS:
    case BPF_MAP_TYPE_HASH_OF_MAPS:
      if (m->key_size == 0 && m->type != BPF_MAP_TYPE_HASH_OF_MAPS) m->key_size = 4;
      if (m->value_size == 0) m->value_size = 4;
      break;
    default:
      break;
  }
}

class ElfReader {
 public:
  ElfReader(absl::Span<const uint8_t> image, absl::string_view what)
      : image_(image), what_(what) {}

  absl::StatusOr<CollectionSpec> Read();

 private:
  template <typename... Args>
  absl::Status Err(const Args&... args) const {
    return absl::InvalidArgumentError(absl::StrCat(what_, ": ", args...));
  }
  std::string SecName(uint32_t idx) const {
    return idx < sections_.size() && !sections_[idx].name.empty()
               ? absl::StrCat("section ", sections_[idx].name)
               : absl::StrCat("section #", idx);
  }

  absl::Status ReadHeaders();
  absl::Status ReadSymbols();
  absl::Status ReadBtf();
  absl::Status ReadLegacyMaps(const Section& sec, std::vector<std::string>* in_order);
  absl::Status ResolveLegacyInnerMaps(const std::vector<std::string>& in_order);
  absl::Status ReadBtfMaps(const Section& sec);
  absl::Status ReadBtfMapValues(absl::string_view name, const BtfMember& values, bool key_set,
                                bool value_set, const Section& sec, uint64_t def_off,
                                uint64_t def_size, int depth, MapSpec* m);
  absl::StatusOr<MapSpec> ReadBtfMapDef(absl::string_view name, uint32_t type_id,
                                         const Section& sec, uint64_t def_off,
                                         uint64_t def_size, int depth);
  absl::Status ReadDataSection(const Section& sec);
  absl::Status ReadStructOps(const Section& sec);
  absl::Status ReadExterns();
  absl::Status FindFunctions();
  absl::Status ReadFunctionCode();
  absl::Status ReadPrograms();
  absl::Status ReadRelocations(const Section& rel, std::vector<Reloc>* out);
  // The relocations applying to section `target` (none without a REL
  // section), read once: every prog array of .maps looks at .rel.maps.
  absl::StatusOr<absl::Span<const Reloc>> RelocationsFor(uint32_t target);
  absl::StatusOr<std::vector<const Reloc*>> RelocationsByInsn(
      uint32_t shndx, absl::Span<const Reloc> relocs) const;
  absl::Status ReadCode(const Section& sec, const FuncRange& f,
                        absl::Span<const Reloc* const> relocs, std::vector<InsnReference>* refs,
                        FunctionCode* code);
  absl::Status ResolveReference(const Section& sec, const FuncRange& fn, uint32_t idx,
                                const Reloc* reloc, FunctionCode* code,
                                std::vector<InsnReference>* refs);
  const FuncRange* FuncAt(uint32_t shndx, uint32_t insn) const;
  // The DATASEC called `name` in the object's BTF. One scan of the types
  // (in ReadBtf) answers every section: the object's name index, which
  // hashes every name, is left for whoever needs it.
  absl::optional<uint32_t> Datasec(absl::string_view name);
  const Section* FindSection(absl::string_view name) const;
  const Section* RelSectionFor(uint32_t target) const;
  // Calls fn(symbol) for each symbol named `name` in section `shndx`, in
  // symbol-table order, until fn returns false. One index built with the
  // symbol table replaces a scan of every symbol per BTF variable (an
  // object with N maps scanned N x symbols).
  template <typename Fn>
  void ForEachNamed(uint32_t shndx, absl::string_view name, Fn&& fn) const {
    if (!names_indexed_) IndexSymbolNames();
    if (shndx + 1 >= section_start_.size()) return;
    auto first = by_section_.begin() + section_start_[shndx];
    auto last = by_section_.begin() + section_start_[shndx + 1];
    first = std::lower_bound(first, last, name, [&](uint32_t i, absl::string_view n) {
      return symbols_[i].name < n;
    });
    for (; first != last && symbols_[*first].name == name; ++first) {
      if (!fn(symbols_[*first])) return;
    }
  }
  void IndexSymbolNames() const;

  absl::Span<const uint8_t> image_;  // the caller's, alive for the whole Read()
  std::string what_;
  std::vector<Section> sections_;
  std::vector<Symbol> symbols_;
  // Symbol indices grouped by section (a counting sort, built on first
  // use): symbols of section i are by_section_[section_start_[i] ..
  // section_start_[i + 1]), ordered by name and, within a name, in
  // symbol-table order, so that a lookup is a binary search (a scan per
  // name made N maps cost N x N string compares). Symbols in code
  // sections are left out: they are never looked up by name this way.
  mutable bool names_indexed_ = false;
  mutable std::vector<uint32_t> section_start_;
  mutable std::vector<uint32_t> by_section_;
  // Symbols the file lacks but old toolchains implied: a code section
  // without a function symbol is one program, a maps/<name> section without
  // an object symbol is one map. A list, so FuncRange and map_syms_ can
  // point at them (a deque could too, but libstdc++'s allocates even when
  // empty, and these lists stay empty for most objects).
  std::list<Symbol> implied_symbols_;
  std::list<std::string> renamed_keys_;  // FuncRange keys that are not symbol names
  // By target section index: its REL section, or null. A vector: sections
  // are numbered densely, so there is nothing to hash.
  std::vector<const Section*> rel_for_;
  absl::flat_hash_map<uint32_t, std::vector<Reloc>> relocs_;  // target index -> its relocations
  absl::flat_hash_map<uint32_t, std::vector<FuncRange>> funcs_;  // by exec section
  // Legacy and BTF map sections: offset of each definition -> map name.
  // Keyed by (section index, offset); map_sections_ says which sections
  // hold map definitions (a reference into one must hit a definition).
  absl::flat_hash_map<std::pair<uint32_t, uint64_t>, const Symbol*> map_syms_;
  std::vector<bool> map_sections_;
  void AddMapSymbol(uint32_t shndx, const Symbol* sym) {
    map_syms_[{shndx, sym->value}] = sym;
    if (map_sections_.size() <= shndx) map_sections_.resize(sections_.size());
    map_sections_[shndx] = true;
  }
  CollectionSpec spec_;
  // The DATASECs of the object's BTF (ReadBtf lists them): an object has a
  // handful, so a list of views into the BTF string section beats a hash
  // map of copied names.
  std::vector<std::pair<absl::string_view, uint32_t>> datasecs_;
  absl::optional<BtfExt> ext_;
};

absl::Status ElfReader::ReadHeaders() {
  if (image_.empty()) return Err("empty file");
  if (image_.size() < sizeof(Elf64_Ehdr)) {
    return Err("truncated ELF header: ", image_.size(), " bytes, need ", sizeof(Elf64_Ehdr));
  }
  Elf64_Ehdr eh;
  memcpy(&eh, image_.data(), sizeof(eh));
  if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return Err("not an ELF file (bad magic)");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64) return Err("not a 64-bit ELF file");
  if (eh.e_ident[EI_DATA] != ELFDATA2LSB) {
    return Err("big-endian ELF is not supported (this host is little-endian)");
  }
  if (eh.e_type != ET_REL) return Err("ELF type ", eh.e_type, " is not a relocatable object");
  if (eh.e_machine != EM_BPF && eh.e_machine != EM_NONE) {
    return Err("ELF machine ", eh.e_machine, " is not BPF (247)");
  }
  if (eh.e_shnum == 0) {
    if (eh.e_shoff != 0) return Err("extended section numbering is not supported");
    return Err("no section header table");
  }
  if (eh.e_shentsize != sizeof(Elf64_Shdr)) {
    return Err("section header size ", eh.e_shentsize, " is not ", sizeof(Elf64_Shdr));
  }
  uint64_t table_end = eh.e_shoff + uint64_t{eh.e_shnum} * sizeof(Elf64_Shdr);
  if (eh.e_shoff > image_.size() || table_end > image_.size()) {
    return Err("section header table at offset ", eh.e_shoff, " (", eh.e_shnum,
               " entries) extends past the end of the ", image_.size(), "-byte file");
  }
  if (eh.e_shstrndx == SHN_UNDEF || eh.e_shstrndx >= eh.e_shnum) {
    return Err("section name table index ", eh.e_shstrndx, " is out of range (", eh.e_shnum,
               " sections)");
  }
  // Check every section's extent and the name table before libelf reads.
  // One element at a time: resize() zero-filled the whole table first.
  sections_.reserve(eh.e_shnum);
  for (uint32_t i = 0; i < eh.e_shnum; ++i) {
    Section& sec = sections_.emplace_back();
    memcpy(&sec.hdr, image_.data() + eh.e_shoff + uint64_t{i} * sizeof(Elf64_Shdr), sizeof(Elf64_Shdr));
  }
  for (uint32_t i = 0; i < eh.e_shnum; ++i) {
    const Elf64_Shdr& s = sections_[i].hdr;
    if (s.sh_type == SHT_NOBITS || s.sh_type == SHT_NULL) continue;
    if (s.sh_offset > image_.size() || s.sh_size > image_.size() - s.sh_offset) {
      return Err("section #", i, ": data [", s.sh_offset, ", +", s.sh_size,
                 ") extends past the end of the ", image_.size(), "-byte file");
    }
  }
  const Elf64_Shdr& strh = sections_[eh.e_shstrndx].hdr;
  if (strh.sh_type != SHT_STRTAB) return Err("section name table #", eh.e_shstrndx, " is not SHT_STRTAB");
  absl::Span<const uint8_t> shstr(image_.data() + strh.sh_offset, strh.sh_size);
  if (shstr.empty() || shstr.back() != 0) {
    return Err("section name table #", eh.e_shstrndx, " is not NUL-terminated");
  }

  for (uint32_t i = 0; i < eh.e_shnum; ++i) {
    Section& sec = sections_[i];
    sec.index = i;
    if (sec.hdr.sh_name >= shstr.size()) {
      return Err("section #", i, ": name offset ", sec.hdr.sh_name,
                 " is outside the section name table");
    }
    sec.name = reinterpret_cast<const char*>(shstr.data() + sec.hdr.sh_name);
    if (sec.hdr.sh_type != SHT_NOBITS && sec.hdr.sh_type != SHT_NULL) {
      sec.data = absl::MakeConstSpan(image_.data() + sec.hdr.sh_offset, sec.hdr.sh_size);
    }
  }
  return absl::OkStatus();
}

absl::Status ElfReader::ReadSymbols() {
  const Section* symtab = nullptr;
  for (const Section& s : sections_) {
    if (s.hdr.sh_type != SHT_SYMTAB) continue;
    if (symtab != nullptr) return Err("more than one symbol table (", SecName(s.index), ")");
    symtab = &s;
  }
  if (symtab == nullptr) return Err("no symbol table");
  if (symtab->hdr.sh_link >= sections_.size() ||
      sections_[symtab->hdr.sh_link].hdr.sh_type != SHT_STRTAB) {
    return Err(SecName(symtab->index), ": string table link ", symtab->hdr.sh_link,
               " is not a string table");
  }
  const Section& strtab = sections_[symtab->hdr.sh_link];
  if (strtab.data.empty() || strtab.data.back() != 0) {
    return Err(SecName(strtab.index), ": string table is not NUL-terminated");
  }
  if (symtab->data.size() % sizeof(Elf64_Sym) != 0) {
    return Err(SecName(symtab->index), ": size ", symtab->data.size(),
               " is not a multiple of the symbol size");
  }
  size_t n = symtab->data.size() / sizeof(Elf64_Sym);
  symbols_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    Elf64_Sym raw;
    memcpy(&raw, symtab->data.data() + i * sizeof(Elf64_Sym), sizeof(raw));
    Symbol& sym = symbols_[i];
    sym.index = static_cast<uint32_t>(i);
    if (raw.st_name >= strtab.data.size()) {
      return Err("symbol #", i, ": name offset ", raw.st_name, " is outside ",
                 SecName(strtab.index));
    }
    sym.name = reinterpret_cast<const char*>(strtab.data.data() + raw.st_name);
    sym.value = raw.st_value;
    sym.size = raw.st_size;
    sym.type = ELF64_ST_TYPE(raw.st_info);
    sym.bind = ELF64_ST_BIND(raw.st_info);
    sym.visibility = ELF64_ST_VISIBILITY(raw.st_other);
    sym.shndx = raw.st_shndx;
    if (sym.type == STT_SECTION && sym.shndx < sections_.size()) {
      sym.name = sections_[sym.shndx].name;
    }
    if (sym.shndx != SHN_UNDEF && sym.shndx < SHN_LORESERVE && sym.shndx >= sections_.size()) {
      return Err("symbol '", sym.name, "' refers to section #", sym.shndx, ", which does not exist");
    }
  }
  for (const Section& s : sections_) {
    if (s.hdr.sh_type == SHT_RELA) {
      if (s.hdr.sh_info < sections_.size() && sections_[s.hdr.sh_info].exec()) {
        return Err(SecName(s.index), ": RELA relocations are not used by BPF and not supported");
      }
      continue;
    }
    if (s.hdr.sh_type != SHT_REL) continue;
    if (s.hdr.sh_info >= sections_.size()) {
      return Err(SecName(s.index), ": applies to section #", s.hdr.sh_info, ", which does not exist");
    }
    if (rel_for_.empty()) rel_for_.resize(sections_.size(), nullptr);
    rel_for_[s.hdr.sh_info] = &s;
  }
  return absl::OkStatus();
}

void ElfReader::IndexSymbolNames() const {
  names_indexed_ = true;
  auto wanted = [&](const Symbol& sym) {
    return sym.shndx < sections_.size() && sym.type != STT_SECTION && sym.type != STT_FILE &&
           (sym.shndx == SHN_UNDEF || !sections_[sym.shndx].exec());
  };
  section_start_.assign(sections_.size() + 1, 0);
  for (const Symbol& sym : symbols_)
    if (wanted(sym)) ++section_start_[sym.shndx + 1];
  for (size_t i = 1; i < section_start_.size(); ++i) section_start_[i] += section_start_[i - 1];
  by_section_.resize(section_start_.back());
  std::vector<uint32_t> fill(section_start_.begin(), section_start_.end() - 1);
  for (const Symbol& sym : symbols_)
    if (wanted(sym)) by_section_[fill[sym.shndx]++] = sym.index;
  for (size_t i = 0; i + 1 < section_start_.size(); ++i) {
    // Equal names keep their symbol-table order.
    std::sort(by_section_.begin() + section_start_[i], by_section_.begin() + section_start_[i + 1],
              [&](uint32_t a, uint32_t b) {
                int c = symbols_[a].name.compare(symbols_[b].name);
                return c < 0 || (c == 0 && a < b);
              });
  }
}

const Section* ElfReader::FindSection(absl::string_view name) const {
  for (const Section& s : sections_) {
    if (s.name == name && s.hdr.sh_type != SHT_NULL) return &s;
  }
  return nullptr;
}

const Section* ElfReader::RelSectionFor(uint32_t target) const {
  return target < rel_for_.size() ? rel_for_[target] : nullptr;
}

absl::Status ElfReader::ReadRelocations(const Section& rel, std::vector<Reloc>* out) {
  if (rel.data.size() % sizeof(Elf64_Rel) != 0) {
    return Err(SecName(rel.index), ": size ", rel.data.size(), " is not a multiple of ",
               sizeof(Elf64_Rel));
  }
  size_t n = rel.data.size() / sizeof(Elf64_Rel);
  const Section& target = sections_[rel.hdr.sh_info];
  uint64_t target_size = target.hdr.sh_size;
  out->reserve(out->size() + n);
  for (size_t i = 0; i < n; ++i) {
    Elf64_Rel r;
    memcpy(&r, rel.data.data() + i * sizeof(r), sizeof(r));
    Reloc out_r{r.r_offset, static_cast<uint32_t>(ELF64_R_SYM(r.r_info)),
                static_cast<uint32_t>(ELF64_R_TYPE(r.r_info)), i};
    if (out_r.sym >= symbols_.size()) {
      return Err(SecName(rel.index), " entry ", i, " at offset ", r.r_offset,
                 ": symbol index ", out_r.sym, " is out of range (", symbols_.size(), " symbols)");
    }
    if (r.r_offset >= target_size) {
      return Err(SecName(rel.index), " entry ", i, ": offset ", r.r_offset, " is outside ",
                 SecName(target.index), " (", target_size, " bytes)");
    }
    out->push_back(out_r);
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::Span<const Reloc>> ElfReader::RelocationsFor(uint32_t target) {
  const Section* rel = RelSectionFor(target);
  if (rel == nullptr) return absl::Span<const Reloc>();
  auto it = relocs_.find(target);
  if (it == relocs_.end()) {
    std::vector<Reloc> read;
    TETHER_RETURN_IF_ERROR(ReadRelocations(*rel, &read));
    it = relocs_.emplace(target, std::move(read)).first;
  }
  return absl::MakeConstSpan(it->second);
}

absl::Status ElfReader::ReadBtf() {
  const Section* btf_sec = FindSection(".BTF");
  if (btf_sec == nullptr) return absl::OkStatus();
  auto btf = Btf::Parse(btf_sec->data, absl::StrCat(what_, ": section .BTF"));
  if (!btf.ok()) return btf.status();
  spec_.btf = std::move(*btf);
  if (const Section* ext_sec = FindSection(".BTF.ext")) {
    auto ext = ParseBtfExt(ext_sec->data, *spec_.btf);
    if (!ext.ok()) return Err("section .BTF.ext: ", ext.status().message());
    ext_ = std::move(*ext);
  }
  // clang leaves DATASEC sizes and VAR offsets at 0 for the linker to fill
  // in; the kernel wants them, and the ELF symbols have them.
  Btf& b = *spec_.btf;
  for (uint32_t id = b.FirstOwnId(); id < b.NumTypes(); ++id) {
    const BtfType* t = b.TypeById(id);
    if (t->kind == BtfKind::kDatasec) datasecs_.emplace_back(b.Name(*t), id);
  }
  for (const auto& [sname, id] : datasecs_) {
    const Section* sec = FindSection(sname);
    if (sec == nullptr) continue;  // .kconfig/.ksyms: laid out in ReadExterns
    BtfType* t = b.MutableTypeById(id);
    t->size_or_type = static_cast<uint32_t>(sec->hdr.sh_size);
    for (BtfVarSecinfo& vsi : b.MutableSecinfos(*t)) {
      const BtfType* var = b.TypeById(vsi.type);
      if (var == nullptr || var->kind != BtfKind::kVar) continue;
      absl::string_view vname = b.Name(*var);
      ForEachNamed(sec->index, vname, [&](const Symbol& sym) {
        if (sym.type != STT_OBJECT) return true;
        vsi.offset = static_cast<uint32_t>(sym.value);
        return false;
      });
    }
  }
  return absl::OkStatus();
}

// A legacy map section: "maps" with every definition, or "maps/<name>"
// with one (older loaders, gobpf among them). Definitions are appended to
// `in_order` in file order: legacy inner-map references are indices into
// that list.
absl::Status ElfReader::ReadLegacyMaps(const Section& sec, std::vector<std::string>* in_order) {
  const std::string where = absl::StrCat("section ", sec.name);
  std::vector<const Symbol*> syms;
  for (const Symbol& s : symbols_) {
    if (s.shndx == sec.index && (s.type == STT_OBJECT || s.type == STT_NOTYPE) && !s.name.empty()) {
      syms.push_back(&s);
    }
  }
  if (syms.empty() && absl::StartsWith(sec.name, "maps/") && sec.hdr.sh_size > 0) {
    Symbol& implied = implied_symbols_.emplace_back();
    implied.name = sec.name.substr(strlen("maps/"));
    implied.size = sec.hdr.sh_size;
    implied.type = STT_OBJECT;
    implied.bind = STB_GLOBAL;
    implied.shndx = static_cast<uint16_t>(sec.index);
    syms.push_back(&implied);
  }
  std::sort(syms.begin(), syms.end(),
            [](const Symbol* a, const Symbol* b) { return a->value < b->value; });
  const Symbol* prev = nullptr;
  uint64_t prev_end = 0;
  for (const Symbol* s : syms) {
    uint64_t size = s->size;
    // Old compilers emitted no symbol sizes; then all definitions share
    // the section equally.
    if (size == 0) size = sec.hdr.sh_size / syms.size();
    if (s->value > sec.hdr.sh_size || size > sec.hdr.sh_size - s->value) {
      return Err(where, ": map '", s->name, "' at offset ", s->value, " size ", size,
                 " extends past the section (", sec.hdr.sh_size, " bytes)");
    }
    if (prev != nullptr && s->value < prev_end) {
      return Err(where, ": map '", s->name, "' at offset ", s->value, " overlaps map '",
                 prev->name, "' at offsets ", prev->value, "..", prev_end - 1);
    }
    prev = s;
    prev_end = s->value + size;
    if (size < 16) {
      return Err(where, ": map '", s->name, "' at offset ", s->value, " is ", size,
                 " bytes, too small for a map definition (16)");
    }
    if (sec.data.empty()) return Err(where, ": has no data");
    const uint8_t* p = sec.data.data() + s->value;
    MapSpec m;
    m.name = std::string(s->name);
    m.section = std::string(sec.name);
    m.type = Load32(p);
    m.key_size = Load32(p + 4);
    m.value_size = Load32(p + 8);
    m.max_entries = Load32(p + 12);
    if (size >= 20) m.flags = Load32(p + 16);
    if (size == 28) {
      // samples/bpf's struct bpf_map_def: inner_map_idx, numa_node.
      m.legacy_inner_idx = Load32(p + 20);
      // Used by the kernel only with BPF_F_NUMA_NODE in the flags, as
      // with the samples loader.
      m.numa_node = Load32(p + 24);
    } else if (size == 36) {
      // iproute2's struct bpf_elf_map.
      m.iproute2_id = Load32(p + 20);
      uint32_t pin = Load32(p + 24);
      m.iproute2_inner_id = Load32(p + 28);
      m.iproute2_inner_idx = Load32(p + 32);
      if (pin == 1) {
        m.pinning = PinType::kObjectNs;
      } else if (pin == 2) {
        m.pinning = PinType::kByName;
      } else if (pin != 0) {
        m.extra.assign(p + 24, p + 28);
        spec_.warnings.push_back(absl::StrCat("map '", m.name, "': unknown iproute2 pinning ", pin));
      }
    } else if (size > 20) {
      m.extra.assign(p + 20, p + size);
      if (!AllZero(m.extra)) {
        spec_.warnings.push_back(absl::StrCat("map '", m.name, "': ", size - 20,
                                              " trailing bytes at section maps offset ",
                                              s->value + 20, " are not understood"));
      }
    }
    DefaultMapSizes(&m);
    if (m.key_size == 0 && !KeylessMapType(m.type)) {
      spec_.warnings.push_back(absl::StrCat("map '", m.name, "' has key_size 0"));
    }
    AddMapSymbol(sec.index, s);
    if (spec_.maps.count(m.name)) return Err(where, ": duplicate map '", m.name, "'");
    in_order->push_back(m.name);
    spec_.maps.emplace(m.name, std::move(m));
  }
  return absl::OkStatus();
}

// Map-in-map in legacy sections. samples/bpf's layout names the inner
// map's template by its index among the definitions. iproute2's turns it
// around: the inner map carries the outer map's id in inner_id and its slot
// in inner_idx; it is the outer map's template and its entry at that slot.
absl::Status ElfReader::ResolveLegacyInnerMaps(const std::vector<std::string>& in_order) {
  auto is_outer = [](uint32_t type) {
    return type == BPF_MAP_TYPE_ARRAY_OF_MAPS || type == BPF_MAP_TYPE_HASH_OF_MAPS;
  };
  for (const std::string& name : in_order) {
    MapSpec& m = spec_.maps.at(name);
    if (!is_outer(m.type) || m.inner) continue;
    if (m.legacy_inner_idx.has_value()) {
      uint32_t idx = *m.legacy_inner_idx;
      if (idx >= in_order.size() || in_order[idx] == name) {
        return Err("section maps: map '", name, "': inner_map_idx ", idx,
                   " does not name another map (", in_order.size(), " definitions)");
      }
      const MapSpec& inner = spec_.maps.at(in_order[idx]);
      m.inner = std::make_unique<MapSpec>(inner);
      continue;
    }
    if (m.iproute2_id == 0) continue;
    for (const std::string& other : in_order) {
      const MapSpec& inner = spec_.maps.at(other);
      if (other == name || inner.iproute2_inner_id != m.iproute2_id) continue;
      if (!m.inner) m.inner = std::make_unique<MapSpec>(inner);
      m.init.push_back(MapInitEntry{inner.iproute2_inner_idx, other});
    }
    if (!m.inner) {
      return Err("section maps: map '", name, "' (iproute2 id ", m.iproute2_id,
                 ") is a map-in-map, but no map names it in inner_id");
    }
  }
  return absl::OkStatus();
}

// The `values` field of a BTF map definition: the inner map template of a
// map-in-map, or a prog array's static slots, which come from relocations
// against the definition's array of pointers.
absl::Status ElfReader::ReadBtfMapValues(absl::string_view name, const BtfMember& values,
                                         bool key_set, bool value_set, const Section& sec,
                                         uint64_t def_off, uint64_t def_size, int depth,
                                         MapSpec* m) {
  const Btf& b = *spec_.btf;
  auto err = [&](auto&&... args) -> absl::Status {
    return Err("section .maps: map '", name, "': ", args...);
  };
  const BtfType* arr = b.TypeById(b.SkipQualifiers(values.type));
  if (arr == nullptr || arr->kind != BtfKind::kArray) return err("field 'values' is not an array");
  const BtfType* ptr = b.TypeById(b.SkipQualifiers(arr->extra));
  if (ptr == nullptr || ptr->kind != BtfKind::kPtr) {
    return err("field 'values' is not an array of pointers");
  }
  uint32_t target = b.SkipQualifiers(ptr->type());
  const BtfType* tt = b.TypeById(target);
  bool map_in_map = m->type == BPF_MAP_TYPE_ARRAY_OF_MAPS || m->type == BPF_MAP_TYPE_HASH_OF_MAPS;
  if (map_in_map) {
    if (depth > 0) return err("map-in-map nesting deeper than one level");
    if (tt == nullptr || tt->kind != BtfKind::kStruct) {
      return err("field 'values' of a map-in-map must point to a map definition struct");
    }
    auto inner = ReadBtfMapDef(absl::StrCat(name, ".inner"), target, sec, def_off, def_size,
                               depth + 1);
    if (!inner.ok()) return inner.status();
    m->inner = std::make_unique<MapSpec>(std::move(*inner));
  } else if (m->type == BPF_MAP_TYPE_PROG_ARRAY) {
    if (tt == nullptr || tt->kind != BtfKind::kFuncProto) {
      return err("field 'values' of a prog array must point to a function prototype");
    }
  } else {
    return err("field 'values' is only supported for prog arrays and map-in-map types (type ",
               m->type, ")");
  }
  if (value_set && m->value_size != 4) {
    return err("value_size ", m->value_size, " conflicts with 'values' (must be 4)");
  }
  m->value_size = 4;
  if (!key_set) m->key_size = 4;
  if (m->max_entries == 0 && arr->array_nelems != 0) m->max_entries = arr->array_nelems;
  // Slots come from relocations against this definition's values array.
  if (depth == 0) {
    if (RelSectionFor(sec.index) != nullptr) {
      TETHER_ASSIGN_OR_RETURN(absl::Span<const Reloc> relocs, RelocationsFor(sec.index));
      uint64_t base = def_off + values.bit_offset / 8;
      // A flexible `values[]` grows the symbol, not the BTF array.
      uint64_t limit = arr->array_nelems != 0 ? base + uint64_t{arr->array_nelems} * 8
                                              : def_off + def_size;
      auto in_values = [&](const Reloc& r) { return r.offset >= base && r.offset < limit; };
      // The spec keeps the slots: stored at their count, not grown by doubling.
      m->init.reserve(std::count_if(relocs.begin(), relocs.end(), in_values));
      for (const Reloc& r : relocs) {
        if (!in_values(r)) continue;
        if ((r.offset - base) % 8 != 0) {
          return err("relocation at .maps offset ", r.offset, " is not aligned to a slot");
        }
        const Symbol& sym = symbols_[r.sym];
        uint32_t key = static_cast<uint32_t>((r.offset - base) / 8);
        if (m->max_entries != 0 && key >= m->max_entries) {
          return err("'values' slot ", key, " (symbol '", sym.name, "') is past max_entries ",
                     m->max_entries);
        }
        m->init.push_back({key, std::string(sym.name)});
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<MapSpec> ElfReader::ReadBtfMapDef(absl::string_view name, uint32_t type_id,
                                                  const Section& sec, uint64_t def_off,
                                                  uint64_t def_size, int depth) {
  const Btf& b = *spec_.btf;
  auto err = [&](auto&&... args) -> absl::Status {
    return Err("section .maps: map '", name, "': ", args...);
  };
  uint32_t sid = b.SkipQualifiers(type_id);
  const BtfType* st = b.TypeById(sid);
  if (st == nullptr || st->kind != BtfKind::kStruct) {
    return err("definition is a ", st ? BtfKindName(st->kind) : "missing type", ", not a struct");
  }
  MapSpec m;
  m.name = std::string(name);
  m.section = std::string(sec.name);
  bool key_set = false, value_set = false;
  // __uint(name, N) is `int (*name)[N]`; __ulong is an enum with one value.
  auto uint_of = [&](const BtfMember& mem) -> absl::StatusOr<uint64_t> {
    const BtfType* t = b.TypeById(b.SkipQualifiers(mem.type));
    if (t != nullptr && t->kind == BtfKind::kPtr) {
      const BtfType* arr = b.TypeById(t->type());
      if (arr != nullptr && arr->kind == BtfKind::kArray) return uint64_t{arr->array_nelems};
    }
    if (t != nullptr && (t->kind == BtfKind::kEnum || t->kind == BtfKind::kEnum64) && t->vlen == 1) {
      return b.EnumValues(*t)[0].value;
    }
    return err("field '", b.String(mem.name_off), "' is not an integer encoding (",
               t ? BtfKindName(t->kind) : "?", ")");
  };
  auto u32_of = [&](const BtfMember& mem) -> absl::StatusOr<uint32_t> {
    auto v = uint_of(mem);
    if (!v.ok()) return v.status();
    if (*v > 0xffffffffu) return err("field '", b.String(mem.name_off), "' value ", *v, " exceeds 32 bits");
    return static_cast<uint32_t>(*v);
  };
  auto pointee = [&](const BtfMember& mem) -> absl::StatusOr<uint32_t> {
    const BtfType* t = b.TypeById(b.SkipQualifiers(mem.type));
    if (t == nullptr || t->kind != BtfKind::kPtr) {
      return err("field '", b.String(mem.name_off), "' is not a pointer");
    }
    return t->type();
  };
  const BtfMember* values_member = nullptr;
  for (const BtfMember& mem : b.Members(*st)) {
    absl::string_view f = b.String(mem.name_off);
    absl::Status st_err;
    auto set32 = [&](uint32_t* dst) {
      auto v = u32_of(mem);
      if (!v.ok()) {
        st_err = v.status();
      } else {
        *dst = *v;
      }
    };
    if (f == "type") {
      set32(&m.type);
    } else if (f == "max_entries") {
      set32(&m.max_entries);
    } else if (f == "map_flags") {
      set32(&m.flags);
    } else if (f == "numa_node") {
      set32(&m.numa_node);
    } else if (f == "key_size") {
      set32(&m.key_size);
      key_set = true;
    } else if (f == "value_size") {
      set32(&m.value_size);
      value_set = true;
    } else if (f == "pinning") {
      uint32_t pin = 0;
      set32(&pin);
      if (st_err.ok() && pin > 1) return err("unsupported pinning ", pin);
      m.pinning = pin == 1 ? PinType::kByName : PinType::kNone;
    } else if (f == "map_extra") {
      auto v = uint_of(mem);
      if (!v.ok()) return v.status();
      m.map_extra = *v;
    } else if (f == "key" || f == "value") {
      auto t = pointee(mem);
      if (!t.ok()) return t.status();
      auto size = b.SizeOf(*t);
      if (!size.ok()) return err("field '", f, "': ", size.status().message());
      if (*size > 0xffffffffu) return err("field '", f, "' type is too large");
      if (f == "key") {
        m.key_size = static_cast<uint32_t>(*size);
        m.btf_key_type_id = *t;
        key_set = true;
      } else {
        m.value_size = static_cast<uint32_t>(*size);
        m.btf_value_type_id = *t;
        value_set = true;
      }
    } else if (f == "values") {
      values_member = &mem;
    } else {
      return err("unknown field '", f, "' in the map definition");
    }
    if (!st_err.ok()) return st_err;
  }
  if (values_member != nullptr) {
    absl::Status values = ReadBtfMapValues(name, *values_member, key_set, value_set, sec, def_off,
                                           def_size, depth, &m);
    if (!values.ok()) return values;
  }
  if (m.type == BPF_MAP_TYPE_PERF_EVENT_ARRAY && m.btf_value_type_id != 0) {
    // Its values are perf event fds whatever type the object names; the
    // kernel accepts only 4-byte values and no BTF for this map type.
    m.key_size = 4;
    m.value_size = 4;
    m.btf_key_type_id = 0;
    m.btf_value_type_id = 0;
  }
  DefaultMapSizes(&m);
  if (m.key_size == 0 && !KeylessMapType(m.type)) {
    spec_.warnings.push_back(absl::StrCat("map '", m.name, "' has key_size 0"));
  }
  return m;
}

absl::Status ElfReader::ReadBtfMaps(const Section& sec) {
  if (!spec_.btf) return Err("section .maps: BTF-defined maps need a .BTF section");
  const Btf& b = *spec_.btf;
  auto ds = Datasec(".maps");
  if (!ds) return Err("section .maps: no DATASEC '.maps' in BTF");
  map_syms_.reserve(map_syms_.size() + b.Secinfos(*b.TypeById(*ds)).size());
  for (const BtfVarSecinfo& vsi : b.Secinfos(*b.TypeById(*ds))) {
    const BtfType* var = b.TypeById(vsi.type);
    if (var == nullptr || var->kind != BtfKind::kVar) {
      return Err("section .maps: DATASEC entry type ", vsi.type, " is not a VAR");
    }
    absl::string_view name = b.Name(*var);
    const Symbol* sym = nullptr;
    ForEachNamed(sec.index, name, [&](const Symbol& s) {
      if (s.type == STT_OBJECT) sym = &s;
      return true;
    });
    if (sym == nullptr) return Err("section .maps: map '", name, "' has no ELF symbol");
    uint64_t size = sym->size ? sym->size : vsi.size;
    if (sym->value > sec.hdr.sh_size || size > sec.hdr.sh_size - sym->value) {
      return Err("section .maps: map '", name, "' at offset ", sym->value, " size ", size,
                 " extends past the section");
    }
    if (!sec.data.empty()) {
      auto bytes = sec.data.subspan(sym->value, size);
      for (size_t i = 0; i < bytes.size(); ++i) {
        if (bytes[i] != 0) {
          return Err("section .maps: map '", name, "': non-zero initialiser at offset ",
                     sym->value + i, " is not supported (only .values may be initialised)");
        }
      }
    }
    auto m = ReadBtfMapDef(name, var->type(), sec, sym->value, size, 0);
    if (!m.ok()) return m.status();
    AddMapSymbol(sec.index, sym);
    if (!spec_.maps.try_emplace(std::string(name), std::move(*m)).second) {
      return Err("section .maps: duplicate map '", name, "'");
    }
  }
  return absl::OkStatus();
}

absl::Status ElfReader::ReadDataSection(const Section& sec) {
  if (sec.hdr.sh_size == 0) return absl::OkStatus();
  // The kernel refuses array values over KMALLOC_MAX_SIZE (4 MiB with
  // 4 KiB pages, 64 MiB at most on common configs), so a larger section can
  // never load; refusing it here also keeps a hostile sh_size of a .bss
  // from making us allocate gigabytes of zeros.
  constexpr uint64_t kMaxMapValue = uint64_t{64} << 20;
  if (sec.hdr.sh_size > kMaxMapValue) {
    return Err(SecName(sec.index), absl::StrFormat(": %u bytes is too large for a map value "
                                                   "(the kernel takes at most KMALLOC_MAX_SIZE, "
                                                   "64 MiB on any common configuration)",
                                                   sec.hdr.sh_size));
  }
  MapSpec m;
  m.name = std::string(sec.name);
  m.section = std::string(sec.name);
  m.type = BPF_MAP_TYPE_ARRAY;
  m.key_size = 4;
  m.value_size = static_cast<uint32_t>(sec.hdr.sh_size);
  m.max_entries = 1;
  if (sec.hdr.sh_type == SHT_NOBITS) {
    m.contents.assign(sec.hdr.sh_size, 0);
  } else {
    m.contents.assign(sec.data.begin(), sec.data.end());
  }
  bool rodata = absl::StartsWith(sec.name, ".rodata");
  if (rodata) {
    m.flags |= BPF_F_RDONLY_PROG;
    m.freeze = true;
  }
  if (spec_.btf) {
    const Btf& b = *spec_.btf;
    if (auto ds = Datasec(sec.name)) {
      m.btf_value_type_id = *ds;
      for (const BtfVarSecinfo& vsi : b.Secinfos(*b.TypeById(*ds))) {
        const BtfType* var = b.TypeById(vsi.type);
        if (var == nullptr || var->kind != BtfKind::kVar) continue;
        // Static and hidden variables are private to the object, as in
        // libbpf skeletons.
        if (var->var_linkage() == BtfLinkage::kStatic) continue;
        bool hidden = false;
        ForEachNamed(sec.index, b.Name(*var), [&](const Symbol& sym) {
          hidden = sym.visibility == STV_HIDDEN || sym.bind == STB_LOCAL;
          return true;
        });
        if (hidden) continue;
        if (uint64_t{vsi.offset} + vsi.size > m.value_size) {
          return Err(SecName(sec.index), ": variable '", b.Name(*var), "' at offset ", vsi.offset,
                     " size ", vsi.size, " is outside the section");
        }
        VariableSpec v{std::string(b.Name(*var)), std::string(sec.name), vsi.offset, vsi.size, var->type(),
                       rodata};
        spec_.variables[v.name] = std::move(v);
      }
    }
  } else {
    for (const Symbol& s : symbols_) {
      if (s.shndx != sec.index || s.type != STT_OBJECT || s.bind == STB_LOCAL ||
          s.visibility == STV_HIDDEN) {
        continue;
      }
      if (s.value > m.value_size || s.size > m.value_size - s.value) continue;
      spec_.variables[std::string(s.name)] = VariableSpec{std::string(s.name), std::string(sec.name), static_cast<uint32_t>(s.value),
                                             static_cast<uint32_t>(s.size), 0, rodata};
    }
  }
  spec_.maps.emplace(m.name, std::move(m));
  return absl::OkStatus();
}

absl::Status ElfReader::ReadStructOps(const Section& sec) {
  // Each variable is one struct_ops map; its function pointers are filled
  // by relocations, recorded as init entries keyed by byte offset.
  if (!spec_.btf) return Err(SecName(sec.index), ": struct_ops maps need BTF");
  const Btf& b = *spec_.btf;
  auto ds = Datasec(sec.name);
  if (!ds) return Err(SecName(sec.index), ": no DATASEC in BTF");
  TETHER_ASSIGN_OR_RETURN(absl::Span<const Reloc> relocs, RelocationsFor(sec.index));
  for (const BtfVarSecinfo& vsi : b.Secinfos(*b.TypeById(*ds))) {
    const BtfType* var = b.TypeById(vsi.type);
    if (var == nullptr || var->kind != BtfKind::kVar) continue;
    if (uint64_t{vsi.offset} + vsi.size > sec.hdr.sh_size) {
      return Err(SecName(sec.index), ": variable '", b.Name(*var), "' is outside the section");
    }
    MapSpec m;
    m.name = std::string(b.Name(*var));
    m.section = std::string(sec.name);
    m.type = BPF_MAP_TYPE_STRUCT_OPS;
    m.key_size = 4;
    m.value_size = vsi.size;
    m.max_entries = 1;
    m.btf_value_type_id = b.SkipQualifiers(var->type());
    if (absl::EndsWith(sec.name, ".link")) m.flags |= kBpfFLink;
    if (!sec.data.empty()) {
      auto bytes = sec.data.subspan(vsi.offset, vsi.size);
      m.contents.assign(bytes.begin(), bytes.end());
    } else {
      m.contents.assign(vsi.size, 0);
    }
    for (const Reloc& r : relocs) {
      if (r.offset >= vsi.offset && r.offset < uint64_t{vsi.offset} + vsi.size) {
        m.init.push_back({static_cast<uint32_t>(r.offset - vsi.offset), std::string(symbols_[r.sym].name)});
      }
    }
    spec_.maps.emplace(m.name, std::move(m));
  }
  return absl::OkStatus();
}

absl::Status ElfReader::ReadExterns() {
  if (!spec_.btf) return absl::OkStatus();
  Btf& b = *spec_.btf;
  auto weak = [&](absl::string_view name) {
    bool is_weak = false;
    ForEachNamed(SHN_UNDEF, name, [&](const Symbol& s) {
      is_weak = s.bind == STB_WEAK;
      return false;
    });
    return is_weak;
  };
  if (auto ks = Datasec(".ksyms")) {
    for (const BtfVarSecinfo& vsi : b.Secinfos(*b.TypeById(*ks))) {
      const BtfType* t = b.TypeById(vsi.type);
      if (t == nullptr) continue;
      ExternSpec e;
      e.name = std::string(b.Name(*t));
      e.kind = ExternSpec::Kind::kKsym;
      e.is_func = t->kind == BtfKind::kFunc;
      e.btf_id = vsi.type;
      e.type_id = t->kind == BtfKind::kVar ? b.SkipQualifiers(t->type()) : t->type();
      e.weak = weak(e.name);
      spec_.externs[e.name] = std::move(e);
    }
  }
  if (auto kc = Datasec(".kconfig")) {
    BtfType* ds = b.MutableTypeById(*kc);
    uint32_t off = 0;
    for (BtfVarSecinfo& vsi : b.MutableSecinfos(*ds)) {
      const BtfType* t = b.TypeById(vsi.type);
      if (t == nullptr || t->kind != BtfKind::kVar) continue;
      std::string name(b.Name(*t));
      auto size = b.SizeOf(t->type());
      auto align = b.AlignOf(t->type());
      if (!size.ok() || !align.ok() || *size == 0 || *size > 4096) {
        return Err(".kconfig: extern '", name, "' has no usable type");
      }
      off = (off + *align - 1) / *align * *align;
      vsi.offset = off;
      vsi.size = static_cast<uint32_t>(*size);
      ExternSpec e;
      e.name = name;
      e.kind = ExternSpec::Kind::kKconfig;
      e.btf_id = vsi.type;
      e.type_id = t->type();
      e.offset = off;
      e.size = vsi.size;
      e.weak = weak(name);
      spec_.externs[name] = std::move(e);
      off += vsi.size;
    }
    uint32_t total = (off + 7) / 8 * 8;
    ds->size_or_type = total;
    if (total > 0) {
      MapSpec m;
      m.name = ".kconfig";
      m.section = ".kconfig";
      m.type = BPF_MAP_TYPE_ARRAY;
      m.key_size = 4;
      m.value_size = total;
      m.max_entries = 1;
      m.flags = BPF_F_RDONLY_PROG;
      m.freeze = true;
      m.contents.assign(total, 0);
      m.btf_value_type_id = *kc;
      spec_.maps.emplace(m.name, std::move(m));
    }
  }
  return absl::OkStatus();
}

absl::optional<uint32_t> ElfReader::Datasec(absl::string_view name) {
  for (const auto& [n, id] : datasecs_) {
    if (n == name) return id;  // the first of a name wins
  }
  return absl::nullopt;
}

const FuncRange* ElfReader::FuncAt(uint32_t shndx, uint32_t insn) const {
  auto it = funcs_.find(shndx);
  if (it == funcs_.end()) return nullptr;
  for (const FuncRange& f : it->second) {
    if (f.start == insn) return &f;
  }
  return nullptr;
}

absl::Status ElfReader::ResolveReference(const Section& sec, const FuncRange& fn, uint32_t idx,
                                         const Reloc* reloc, FunctionCode* code,
                                         std::vector<InsnReference>* refs) {
  bpf_insn& insn = code->insns[idx];
  uint64_t byte_off = (uint64_t{fn.start} + idx) * 8;
  auto where = [&]() {
    return absl::StrCat("section ", sec.name, " offset ", byte_off, " (function ", fn.sym->name,
                        ", insn ", idx, ")");
  };
  bool ld64 = insn.code == kLdImm64;
  bool call = insn.code == kCall;
  if (ld64 && idx + 1 >= code->insns.size()) {
    return Err(where(), ": ld_imm64 is missing its second half");
  }
  auto target_func = [&](uint32_t shndx, int64_t target, absl::string_view what)
      -> absl::StatusOr<const FuncRange*> {
    const FuncRange* f = target >= 0 ? FuncAt(shndx, static_cast<uint32_t>(target)) : nullptr;
    if (f == nullptr) {
      return Err(where(), ": ", what, " targets instruction ", target, " of ", SecName(shndx),
                 ", where no function starts");
    }
    return f;
  };
  if (reloc == nullptr) {
    // Calls within a section need no relocation: imm is already relative.
    if (call && insn.src_reg == BPF_PSEUDO_CALL) {
      auto f = target_func(sec.index, int64_t{fn.start} + idx + insn.imm + 1, "call");
      if (!f.ok()) return f.status();
      AddReference(refs, idx, ReferenceKind::kCall, (*f)->key, 0);
    } else if (ld64 && insn.src_reg == BPF_PSEUDO_FUNC) {
      auto f = target_func(sec.index, int64_t{fn.start} + idx + insn.imm + 1, "callback");
      if (!f.ok()) return f.status();
      AddReference(refs, idx, ReferenceKind::kFuncAddr, (*f)->key, 0);
    }
    return absl::OkStatus();
  }
  const Symbol& sym = symbols_[reloc->sym];
  if (reloc->type != R_BPF_64_64 && reloc->type != R_BPF_64_32) {
    return Err(where(), ": relocation type ", reloc->type, " against '", sym.name,
               "' is not supported in code");
  }
  if (!ld64 && !call) {
    return Err(where(), ": relocation against '", sym.name, "' applies to opcode ",
               absl::StrFormat("0x%02x", insn.code), ", which is neither ld_imm64 nor call");
  }
  if (sym.shndx == SHN_UNDEF) {
    auto ext = spec_.externs.find(std::string(sym.name));
    if (ext == spec_.externs.end()) {
      if (call) {
        AddReference(refs, idx, ReferenceKind::kUnresolved, sym.name, 0);
      } else {
        // An ld_imm64 of a symbol nobody defines (inline asm constants):
        // the immediate the compiler wrote, usually 0, stays.
        spec_.warnings.push_back(absl::StrCat(where(), ": undefined symbol '", sym.name,
                                              "' left as its immediate ", insn.imm));
      }
      return absl::OkStatus();
    }
    const ExternSpec& e = ext->second;
    if (call) {
      if (!e.is_func) return Err(where(), ": call of extern '", sym.name, "', which is not a function");
      insn.src_reg = BPF_PSEUDO_KFUNC_CALL;
      insn.imm = 0;
      AddReference(refs, idx, ReferenceKind::kKfunc, sym.name, 0);
    } else if (e.kind == ExternSpec::Kind::kKconfig) {
      int64_t off = int64_t{e.offset} + insn.imm;
      insn.src_reg = BPF_PSEUDO_MAP_VALUE;
      insn.imm = 0;
      code->insns[idx + 1].imm = static_cast<int32_t>(off);
      AddReference(refs, idx, ReferenceKind::kKconfig, sym.name, static_cast<uint32_t>(off));
    } else {
      // Also for a kfunc whose address is taken: the loader resolves both
      // through kernel BTF or kallsyms.
      AddReference(refs, idx, ReferenceKind::kKsym, sym.name, 0);
    }
    return absl::OkStatus();
  }
  if (sym.shndx >= sections_.size()) {
    return Err(where(), ": symbol '", sym.name, "' is in special section ", sym.shndx);
  }
  const Section& tsec = sections_[sym.shndx];
  if (tsec.exec()) {
    if (sym.type != STT_FUNC && sym.type != STT_SECTION && sym.type != STT_NOTYPE) {
      return Err(where(), ": code reference to '", sym.name, "', which is not a function");
    }
    if (call) {
      if (insn.src_reg != BPF_PSEUDO_CALL) {
        return Err(where(), ": relocation against function '", sym.name,
                   "' on a helper call (src_reg ", int{insn.src_reg}, ")");
      }
      if (sym.value % 8 != 0) return Err(where(), ": function '", sym.name, "' is misaligned");
      auto f = target_func(sym.shndx, int64_t(sym.value / 8) + insn.imm + 1, "call");
      if (!f.ok()) return f.status();
      AddReference(refs, idx, ReferenceKind::kCall, (*f)->key, 0);
    } else {
      int64_t target = int64_t(sym.value) + insn.imm;
      if (target % 8 != 0) return Err(where(), ": callback address ", target, " is misaligned");
      auto f = target_func(sym.shndx, target / 8, "callback");
      if (!f.ok()) return f.status();
      insn.src_reg = BPF_PSEUDO_FUNC;
      AddReference(refs, idx, ReferenceKind::kFuncAddr, (*f)->key, 0);
    }
    return absl::OkStatus();
  }
  if (call) {
    return Err(where(), ": call relocation against '", sym.name, "' in ", SecName(sym.shndx),
               ", which is not code");
  }
  if (sym.shndx < map_sections_.size() && map_sections_[sym.shndx]) {
    uint64_t off = sym.value + (sym.type == STT_SECTION ? static_cast<uint32_t>(insn.imm) : 0);
    auto it = map_syms_.find(std::make_pair(uint32_t{sym.shndx}, off));
    if (it == map_syms_.end()) {
      return Err(where(), ": reference to ", SecName(sym.shndx), " offset ", off,
                 ", where no map is defined");
    }
    const Symbol* ms = it->second;
    if (ms->bind == STB_LOCAL && IsLegacyMapSection(tsec)) {
      return Err(where(), ": reference to static map '", ms->name, "' in section maps; "
                 "legacy maps must be global (possible erroneous static qualifier)");
    }
    insn.src_reg = BPF_PSEUDO_MAP_FD;
    insn.imm = 0;
    AddReference(refs, idx, ReferenceKind::kMap, ms->name, 0);
    return absl::OkStatus();
  }
  auto data_map = spec_.maps.find(std::string(tsec.name));
  if (data_map != spec_.maps.end() && data_map->second.is_data_section()) {
    int64_t off = int64_t(sym.value) + insn.imm;
    if (off < 0 || uint64_t(off) > tsec.hdr.sh_size) {
      return Err(where(), ": reference to ", SecName(sym.shndx), " offset ", off,
                 " is outside the section (", tsec.hdr.sh_size, " bytes)");
    }
    insn.src_reg = BPF_PSEUDO_MAP_VALUE;
    insn.imm = 0;
    code->insns[idx + 1].imm = static_cast<int32_t>(off);
    AddReference(refs, idx, ReferenceKind::kMapValue, tsec.name, static_cast<uint32_t>(off));
    return absl::OkStatus();
  }
  return Err(where(), ": reference to '", sym.name, "' in ", SecName(sym.shndx),
             ", which is neither a map, a data section nor code");
}

absl::Status ElfReader::ReadPrograms() {
  TETHER_RETURN_IF_ERROR(FindFunctions());
  return ReadFunctionCode();
}

// Pass 1: the functions of every exec section, each with a key unique in
// the object and its range of instructions.
absl::Status ElfReader::FindFunctions() {
  // Function symbols by section, in symbol order: an object with a section
  // per program would otherwise rescan every symbol for every section.
  std::vector<const Symbol*> funcs_in;
  for (const Symbol& s : symbols_) {
    if (s.type == STT_FUNC) funcs_in.push_back(&s);
  }
  auto by_section = [](const Symbol* a, const Symbol* b) { return a->shndx < b->shndx; };
  if (!std::is_sorted(funcs_in.begin(), funcs_in.end(), by_section)) {
    std::stable_sort(funcs_in.begin(), funcs_in.end(), by_section);
  }
  // Sized once: growing it rehashed every name several times.
  absl::flat_hash_set<absl::string_view> used;
  used.reserve(funcs_in.size() + sections_.size());
  for (const Section& sec : sections_) {
    if (!sec.exec() || sec.hdr.sh_size == 0) continue;
    if (sec.hdr.sh_size % 8 != 0) {
      return Err(SecName(sec.index), ": size ", sec.hdr.sh_size, " is not a multiple of 8");
    }
    uint32_t n = static_cast<uint32_t>(sec.hdr.sh_size / 8);
    std::vector<FuncRange> fs;
    Symbol probe;
    probe.shndx = static_cast<uint16_t>(sec.index);
    auto [first, last] = std::equal_range(funcs_in.begin(), funcs_in.end(), &probe, by_section);
    fs.reserve(last - first);
    for (auto it = first; it != last; ++it) {
      const Symbol& s = **it;
      if (s.value % 8 != 0 || s.value / 8 >= n) {
        return Err(SecName(sec.index), ": function '", s.name, "' at offset ", s.value,
                   " is misaligned or outside the section");
      }
      FuncRange f;
      f.sym = &s;
      f.start = static_cast<uint32_t>(s.value / 8);
      fs.push_back(f);
    }
    std::sort(fs.begin(), fs.end(), [](const FuncRange& a, const FuncRange& b) {
      return a.start < b.start || (a.start == b.start && a.sym->bind > b.sym->bind);
    });
    // Aliases at the same address: keep the strongest binding only.
    fs.erase(std::unique(fs.begin(), fs.end(),
                         [](const FuncRange& a, const FuncRange& b) { return a.start == b.start; }),
             fs.end());
    if (fs.empty()) {
      if (sec.name == ".text") return Err(SecName(sec.index), ": code without any function symbol");
      // Older compilers left program sections without a function symbol:
      // the section is one program, named after it, as their loaders did.
      Symbol& implied = implied_symbols_.emplace_back();
      implied.name = sec.name;
      implied.size = sec.hdr.sh_size;
      implied.type = STT_FUNC;
      implied.bind = STB_GLOBAL;
      implied.shndx = static_cast<uint16_t>(sec.index);
      fs.push_back(FuncRange{&implied, 0, 0, "", false});
    }
    if (fs[0].start != 0) {
      return Err(SecName(sec.index), ": instructions before the first function '",
                 fs[0].sym->name, "'");
    }
    bool program_section = sec.name != ".text";
    for (size_t i = 0; i < fs.size(); ++i) {
      fs[i].end = i + 1 < fs.size() ? fs[i + 1].start : n;
      // The static linker leaves the code of dropped weak definitions in
      // place, without a symbol: a sized symbol ends where its size says.
      uint64_t sized_end = fs[i].start + fs[i].sym->size / 8;
      if (fs[i].sym->size > 0 && sized_end < fs[i].end) fs[i].end = static_cast<uint32_t>(sized_end);
      fs[i].is_program = program_section && fs[i].sym->bind != STB_LOCAL;
      absl::string_view key = fs[i].sym->name;
      if (used.contains(key)) {
        std::string renamed = absl::StrCat(key, "@", sec.name);
        while (used.contains(renamed)) renamed = absl::StrCat(renamed, "+", fs[i].start);
        key = renamed_keys_.emplace_back(std::move(renamed));
      }
      used.insert(key);
      fs[i].key = key;
    }
    funcs_[sec.index] = std::move(fs);
  }
  return absl::OkStatus();
}

// The instructions of function `f`, with every reference resolved.
// References are gathered in `refs` (the caller's, reused for every
// function) and stored at their exact count: a vector grown one push at a
// time would hold up to twice that for as long as the spec lives.
absl::Status ElfReader::ReadCode(const Section& sec, const FuncRange& f,
                                 absl::Span<const Reloc* const> relocs,
                                 std::vector<InsnReference>* refs, FunctionCode* code) {
  const uint32_t n = f.end - f.start;
  const uint8_t* bytes = sec.data.data() + uint64_t{f.start} * 8;
  if (reinterpret_cast<uintptr_t>(bytes) % alignof(bpf_insn) == 0) {
    // One copy, without zero-filling the vector first.
    const auto* first = reinterpret_cast<const bpf_insn*>(bytes);
    code->insns.assign(first, first + n);
  } else {
    code->insns.resize(n);
    if (n != 0) memcpy(code->insns.data(), bytes, uint64_t{n} * 8);
  }
  refs->clear();
  // `relocs` are this function's, in instruction order, one per
  // instruction: `next_reloc` is the instruction of the next one (n: none).
  size_t next = 0;
  auto insn_of_next = [&]() {
    return next < relocs.size() ? static_cast<uint32_t>(relocs[next]->offset / 8 - f.start) : n;
  };
  uint32_t next_reloc = insn_of_next();
  for (uint32_t i = 0; i < n; ++i) {
    const bpf_insn& insn = code->insns[i];
    const Reloc* reloc = nullptr;
    if (i == next_reloc) {
      reloc = relocs[next++];
      next_reloc = insn_of_next();
    }
    const bool ld64 = insn.code == kLdImm64;
    // Most instructions reference nothing: only a relocation, a bpf-to-bpf
    // call, a callback address or a truncated ld_imm64 needs a look.
    if (reloc != nullptr || (insn.code == kCall && insn.src_reg == BPF_PSEUDO_CALL) ||
        (ld64 && (insn.src_reg == BPF_PSEUDO_FUNC || i + 1 >= n))) {
      TETHER_RETURN_IF_ERROR(ResolveReference(sec, f, i, reloc, code, refs));
    }
    if (ld64) {
      ++i;  // ResolveReference refused an ld_imm64 without its second half
      if (i == next_reloc) {
        return Err(SecName(sec.index), " offset ", (uint64_t{f.start} + i) * 8,
                   ": relocation on the second half of an ld_imm64");
      }
    }
  }
  code->references.assign(std::make_move_iterator(refs->begin()),
                          std::make_move_iterator(refs->end()));
  return absl::OkStatus();
}

// Where the next function's BTF.ext records start, per list, when the
// records are in instruction order and functions are taken in order.
struct ExtCursor {
  size_t func_info = 0, line_info = 0, core_relos = 0;
};

// The BTF.ext records of [f.start, f.end), rebased to the function, each
// list at its exact size. With a cursor, the records are in instruction
// order and the functions come in order of their start: the function's
// records are the run that follows the previous function's. Without,
// they are filtered in file order.
void TakeExtRecords(const BtfExtSection& ext, ExtCursor* sorted, const FuncRange& f,
                    FunctionCode* code) {
  auto take = [&](const auto& all, size_t* next, auto* out) {
    auto in_range = [&](const auto& r) { return r.insn_off >= f.start && r.insn_off < f.end; };
    if (sorted != nullptr) {
      size_t lo = *next, hi;
      while (lo < all.size() && all[lo].insn_off < f.start) ++lo;
      for (hi = lo; hi < all.size() && all[hi].insn_off < f.end; ++hi) {
      }
      out->assign(all.begin() + lo, all.begin() + hi);
      *next = hi;
    } else {
      out->reserve(std::count_if(all.begin(), all.end(), in_range));
      for (const auto& r : all) {
        if (in_range(r)) out->push_back(r);
      }
    }
    for (auto& r : *out) r.insn_off -= f.start;
  };
  ExtCursor unused;
  ExtCursor* c = sorted != nullptr ? sorted : &unused;
  take(ext.func_info, &c->func_info, &code->func_info);
  take(ext.line_info, &c->line_info, &code->line_info);
  take(ext.core_relos, &c->core_relos, &code->core_relos);
}

// The relocations of exec section `shndx` in instruction order, one per
// instruction: the last listed wins, as when each overwrote the last.
absl::StatusOr<std::vector<const Reloc*>> ElfReader::RelocationsByInsn(
    uint32_t shndx, absl::Span<const Reloc> relocs) const {
  std::vector<const Reloc*> by_insn;
  by_insn.reserve(relocs.size());
  for (const Reloc& r : relocs) {
    if (r.offset % 8 != 0) {
      return Err(SecName(rel_for_[shndx]->index), " entry ", r.entry, ": offset ", r.offset,
                 " in ", SecName(shndx), " is not on an instruction boundary");
    }
    by_insn.push_back(&r);
  }
  auto earlier = [](const Reloc* a, const Reloc* b) { return a->offset < b->offset; };
  // Compilers emit them in order; stable, so that duplicates stay in file order.
  if (!std::is_sorted(by_insn.begin(), by_insn.end(), earlier)) {
    std::stable_sort(by_insn.begin(), by_insn.end(), earlier);
  }
  size_t kept = 0;
  for (size_t i = 0; i < by_insn.size(); ++i) {
    if (i + 1 < by_insn.size() && by_insn[i + 1]->offset == by_insn[i]->offset) continue;
    by_insn[kept++] = by_insn[i];
  }
  by_insn.resize(kept);
  return by_insn;
}

// Pass 2: the code, references and BTF.ext records of each function, as a
// program or a sub-program of the spec, each built in place in the spec.
absl::Status ElfReader::ReadFunctionCode() {
  std::vector<InsnReference> refs;
  for (auto& [shndx, fs] : funcs_) {
    const Section& sec = sections_[shndx];
    TETHER_ASSIGN_OR_RETURN(absl::Span<const Reloc> relocs, RelocationsFor(shndx));
    TETHER_ASSIGN_OR_RETURN(std::vector<const Reloc*> by_insn, RelocationsByInsn(shndx, relocs));
    const BtfExtSection* ext = nullptr;
    if (ext_) {
      auto it = ext_->sections.find(sec.name);
      if (it != ext_->sections.end()) ext = &it->second;
    }
    // A section holding many functions (clang puts every SEC("socket")
    // program in one) would otherwise rescan all its records per function.
    const auto earlier = [](const auto& a, const auto& b) { return a.insn_off < b.insn_off; };
    // Records out of order (which the kernel would refuse anyway) are
    // filtered linearly, so that each function keeps them in file order.
    bool searchable = ext && fs.size() > 1 &&
                      std::is_sorted(ext->func_info.begin(), ext->func_info.end(), earlier) &&
                      std::is_sorted(ext->line_info.begin(), ext->line_info.end(), earlier) &&
                      std::is_sorted(ext->core_relos.begin(), ext->core_relos.end(), earlier);
    SectionInfo info = ParseSectionName(sec.name);
    ExtCursor ext_cursor;
    size_t next_reloc = 0;  // by_insn: functions come in order of their start
    for (const FuncRange& f : fs) {
      // Keys are unique among programs and functions (FindFunctions).
      FunctionCode* code;
      if (f.is_program) {
        auto [it, inserted] = spec_.programs.try_emplace(std::string(f.key));
        ProgramSpec& p = it->second;
        p.name = it->first;
        p.section = std::string(sec.name);
        p.section_offset = f.start;
        p.type = info.prog_type;
        p.expected_attach_type = info.expected_attach_type;
        p.attach_to = info.attach_to;
        p.flags = info.prog_flags;
        p.return_probe = info.return_probe;
        p.license = spec_.license;
        p.kernel_version = spec_.kernel_version;
        code = &p.code;
      } else {
        auto [it, inserted] = spec_.functions.try_emplace(std::string(f.key));
        FunctionSpec& fn = it->second;
        fn.name = it->first;
        fn.section = std::string(sec.name);
        fn.section_offset = f.start;
        fn.global = f.sym->bind != STB_LOCAL;
        code = &fn.code;
      }
      // Relocations between functions (in code a sized symbol leaves out)
      // belong to none and are skipped.
      size_t lo = next_reloc;
      while (lo < by_insn.size() && by_insn[lo]->offset < uint64_t{f.start} * 8) ++lo;
      next_reloc = lo;
      while (next_reloc < by_insn.size() && by_insn[next_reloc]->offset < uint64_t{f.end} * 8) {
        ++next_reloc;
      }
      absl::Span<const Reloc* const> in_fn(by_insn.data() + lo, next_reloc - lo);
      TETHER_RETURN_IF_ERROR(ReadCode(sec, f, in_fn, &refs, code));
      if (ext) TakeExtRecords(*ext, searchable ? &ext_cursor : nullptr, f, code);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<CollectionSpec> ElfReader::Read() {
  TETHER_RETURN_IF_ERROR(ReadHeaders());
  TETHER_RETURN_IF_ERROR(ReadSymbols());
  if (const Section* lic = FindSection("license")) {
    auto d = lic->data;
    auto nul = std::find(d.begin(), d.end(), 0);
    spec_.license.assign(d.begin(), nul);
  }
  if (const Section* ver = FindSection("version")) {
    if (ver->data.size() != 4) {
      return Err("section version: ", ver->data.size(), " bytes, want 4");
    }
    spec_.kernel_version = Load32(ver->data.data());
  }
  TETHER_RETURN_IF_ERROR(ReadBtf());
  std::vector<std::string> legacy_in_order;
  for (const Section& sec : sections_) {
    absl::Status s;
    if (IsLegacyMapSection(sec)) {
      s = ReadLegacyMaps(sec, &legacy_in_order);
    } else if (sec.name == ".maps") {
      s = ReadBtfMaps(sec);
    } else if (IsDataSectionName(sec.name) &&
               (sec.hdr.sh_type == SHT_PROGBITS || sec.hdr.sh_type == SHT_NOBITS) &&
               !(sec.hdr.sh_flags & SHF_EXECINSTR)) {
      s = ReadDataSection(sec);
    } else if (sec.name == ".struct_ops" || sec.name == ".struct_ops.link") {
      s = ReadStructOps(sec);
    }
    if (!s.ok()) return s;
  }
  TETHER_RETURN_IF_ERROR(ResolveLegacyInnerMaps(legacy_in_order));
  TETHER_RETURN_IF_ERROR(ReadExterns());
  TETHER_RETURN_IF_ERROR(ReadPrograms());
  return std::move(spec_);
}

}  // namespace

absl::StatusOr<CollectionSpec> CollectionSpec::FromMemory(absl::Span<const uint8_t> elf,
                                                          absl::string_view what) {
  ElfReader reader(elf, what);
  auto spec = reader.Read();
  if (spec.ok()) spec->source = std::string(what);
  return spec;
}

absl::StatusOr<CollectionSpec> CollectionSpec::FromFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return sys::ErrnoStatus(errno, path, "open");
  std::vector<uint8_t> buf;
  uint8_t chunk[1 << 16];
  for (;;) {
    ssize_t r = read(fd, chunk, sizeof(chunk));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      close(fd);
      return sys::ErrnoStatus(e, path, "read");
    }
    if (r == 0) break;
    buf.insert(buf.end(), chunk, chunk + r);
  }
  close(fd);
  return FromMemory(buf, path);
}

}  // namespace tether
