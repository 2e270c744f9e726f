#include <elf.h>
#include <linux/bpf.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "test_support.h"
#include "tether/collection_spec.h"

namespace tether {
namespace {

using ::tether::testing::BpfObjectPath;
using ::tether::testing::ReadFileBytes;

CollectionSpec Load(const std::string& name) {
  auto spec = CollectionSpec::FromFile(BpfObjectPath(name));
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  return std::move(*spec);
}

bool HasWarning(const CollectionSpec& spec, const std::string& part) {
  for (const auto& w : spec.warnings) {
    if (w.find(part) != std::string::npos) return true;
  }
  return false;
}

TEST_CASE("legacy maps section", "[elf]") {
  CollectionSpec spec = Load("elf_maps");
  const MapSpec& h = spec.maps.at("legacy_hash");
  CHECK(h.section == "maps");
  CHECK(h.type == BPF_MAP_TYPE_HASH);
  CHECK(h.key_size == 4);
  CHECK(h.value_size == 8);
  CHECK(h.max_entries == 16);
  CHECK(h.flags == 1);
  CHECK(h.extra.empty());
  const MapSpec& a = spec.maps.at("legacy_array");
  CHECK(a.type == BPF_MAP_TYPE_ARRAY);
  CHECK(a.max_entries == 2);
  // key_size 0 is the kernel's business, not a parse error; it is noted.
  CHECK(spec.maps.at("legacy_nokey").key_size == 0);
  CHECK(HasWarning(spec, "'legacy_nokey' has key_size 0"));
  CHECK(spec.license == "Dual MIT/GPL");
  CHECK(spec.kernel_version == 0x060100);
}

TEST_CASE("BTF-defined maps", "[elf]") {
  CollectionSpec spec = Load("elf_maps");
  REQUIRE(spec.btf.has_value());
  const MapSpec& h = spec.maps.at("btf_hash");
  CHECK(h.section == ".maps");
  CHECK(h.type == BPF_MAP_TYPE_HASH);
  CHECK(h.key_size == 4);
  CHECK(h.value_size == 16);
  CHECK(h.max_entries == 64);
  CHECK(h.flags == BPF_F_NO_PREALLOC);
  CHECK(h.pinning == PinType::kByName);
  CHECK(spec.btf->NameOf(h.btf_value_type_id) == "value_t");
  CHECK(spec.btf->TypeById(h.btf_key_type_id)->kind == BtfKind::kInt);

  const MapSpec& bloom = spec.maps.at("bloom");
  CHECK(bloom.type == BPF_MAP_TYPE_BLOOM_FILTER);
  CHECK(bloom.key_size == 0);
  CHECK(bloom.value_size == 4);
  CHECK(bloom.map_extra == 3);
  CHECK_FALSE(HasWarning(spec, "'bloom'"));
}

TEST_CASE("inner maps and .values initialisers", "[elf]") {
  CollectionSpec spec = Load("elf_maps");
  const MapSpec& outer = spec.maps.at("outer");
  CHECK(outer.type == BPF_MAP_TYPE_ARRAY_OF_MAPS);
  CHECK(outer.key_size == 4);
  CHECK(outer.value_size == 4);
  CHECK(outer.max_entries == 3);
  REQUIRE(outer.inner != nullptr);
  CHECK(outer.inner->type == BPF_MAP_TYPE_ARRAY);
  CHECK(outer.inner->key_size == 4);
  CHECK(outer.inner->value_size == 4);
  CHECK(outer.inner->max_entries == 4);
  REQUIRE(outer.init.size() == 2);
  CHECK(outer.init[0].key == 0);
  CHECK(outer.init[0].name == "inner_a");
  CHECK(outer.init[1].key == 2);
  CHECK(outer.init[1].name == "inner_b");

  const MapSpec& jump = spec.maps.at("jump");
  CHECK(jump.type == BPF_MAP_TYPE_PROG_ARRAY);
  CHECK(jump.value_size == 4);
  REQUIRE(jump.init.size() == 1);
  CHECK(jump.init[0].key == 1);
  CHECK(jump.init[0].name == "tail_a");
  CHECK(spec.programs.count("tail_a") == 1);
}

TEST_CASE("map references become fixups", "[elf][link]") {
  CollectionSpec spec = Load("elf_maps");
  const ProgramSpec& p = spec.programs.at("use_maps");
  CHECK(p.type == BPF_PROG_TYPE_SOCKET_FILTER);
  CHECK(p.license == "Dual MIT/GPL");
  auto linked = LinkProgram(spec, "use_maps");
  REQUIRE(linked.ok());
  std::vector<std::string> names;
  for (const Fixup& f : linked->fixups) {
    CHECK(f.kind == Fixup::Kind::kMapFd);
    CHECK(linked->insns[f.insn].code == (BPF_LD | BPF_IMM | BPF_DW));
    CHECK(linked->insns[f.insn].src_reg == BPF_PSEUDO_MAP_FD);
    names.push_back(f.name);
  }
  CHECK(names == std::vector<std::string>{"legacy_hash", "btf_hash", "outer", "jump"});
  CHECK(linked->func_info.size() == 1);
  CHECK(linked->func_info[0].insn_off == 0);
}

TEST_CASE("global data sections and variables", "[elf]") {
  CollectionSpec spec = Load("elf_code");
  const MapSpec& data = spec.maps.at(".data");
  CHECK(data.type == BPF_MAP_TYPE_ARRAY);
  CHECK(data.key_size == 4);
  CHECK(data.value_size == 4);  // counter; clang folds the unwritten static away
  CHECK(data.max_entries == 1);
  CHECK_FALSE(data.freeze);
  const MapSpec& ro = spec.maps.at(".rodata");
  CHECK(ro.freeze);
  CHECK(ro.flags == BPF_F_RDONLY_PROG);
  CHECK(ro.value_size == 4);
  CHECK(spec.maps.at(".bss").contents == std::vector<uint8_t>(4, 0));
  CHECK(spec.maps.at(".data.custom").value_size == 4);

  const VariableSpec& ret = spec.variables.at("ret");
  CHECK(ret.section == ".rodata");
  CHECK(ret.offset == 0);
  CHECK(ret.size == 4);
  CHECK(ret.constant);
  CHECK(spec.variables.at("counter").section == ".data");
  CHECK(spec.variables.at("custom").section == ".data.custom");
  CHECK(spec.variables.count("hidden_static") == 0);

  auto before = spec.GetVariable("ret");
  REQUIRE(before.ok());
  int32_t v;
  memcpy(&v, before->data(), 4);
  CHECK(v == 7);
  CollectionSpec copy = spec.Copy();
  REQUIRE(spec.SetVariable("ret", int32_t{11}).ok());
  memcpy(&v, spec.GetVariable("ret")->data(), 4);
  CHECK(v == 11);
  memcpy(&v, copy.GetVariable("ret")->data(), 4);
  CHECK(v == 7);  // the copy is deep
  CHECK_FALSE(spec.SetVariable("ret", int64_t{1}).ok());
  CHECK(spec.SetVariable("nope", 1).code() == absl::StatusCode::kNotFound);
}

TEST_CASE("sub-programs, callbacks and several programs per section", "[elf][link]") {
  CollectionSpec spec = Load("elf_code");
  REQUIRE(spec.programs.count("first"));
  REQUIRE(spec.programs.count("second"));
  CHECK(spec.programs.at("first").section == "xdp");
  CHECK(spec.programs.at("second").section == "xdp");
  CHECK(spec.programs.at("second").section_offset > 0);
  CHECK(spec.programs.at("first").type == BPF_PROG_TYPE_XDP);
  CHECK(spec.programs.at("probe").type == BPF_PROG_TYPE_KPROBE);
  CHECK(spec.programs.at("probe").attach_to == "do_sys_open");
  CHECK(spec.programs.at("sleepy").flags == BPF_F_SLEEPABLE);
  CHECK(spec.functions.count("global_helper"));
  CHECK(spec.functions.at("global_helper").global);
  CHECK(spec.functions.count("count_cb"));
  REQUIRE(spec.functions.count("in_section_static"));
  CHECK(spec.functions.at("in_section_static").section == "xdp");
  CHECK(spec.programs.count("in_section_static") == 0);

  auto first = LinkProgram(spec, "first");
  REQUIRE(first.ok());
  // Sub-programs are appended once each, after the program.
  REQUIRE(first->layout.size() == 3);
  CHECK(first->layout[0].first == "first");
  CHECK(first->layout[0].second == 0);
  size_t program_len = spec.programs.at("first").code.insns.size();
  bool saw_callback = false, saw_call = false;
  for (size_t i = 0; i < program_len; ++i) {
    const bpf_insn& insn = first->insns[i];
    int64_t target = int64_t(i) + insn.imm + 1;
    if (insn.code == (BPF_LD | BPF_IMM | BPF_DW) && insn.src_reg == BPF_PSEUDO_FUNC) {
      saw_callback = true;
      for (auto& [name, base] : first->layout) {
        if (name == "count_cb") CHECK(target == base);
      }
    }
    if (insn.code == (BPF_JMP | BPF_CALL) && insn.src_reg == BPF_PSEUDO_CALL) {
      saw_call = true;
      for (auto& [name, base] : first->layout) {
        if (name == "global_helper") CHECK(target == base);
      }
    }
  }
  CHECK(saw_callback);
  CHECK(saw_call);
  // One func_info per function, each at its function's start.
  REQUIRE(first->func_info.size() == 3);
  for (size_t i = 0; i < 3; ++i) CHECK(first->func_info[i].insn_off == first->layout[i].second);
  for (const LineInfo& li : first->line_info) CHECK(li.insn_off < first->insns.size());
  // global_helper reads .data: the fixup is in the appended copy.
  bool data_fixup = false;
  for (const Fixup& f : first->fixups) {
    if (f.kind == Fixup::Kind::kMapValue && f.name == ".data") {
      data_fixup = true;
      CHECK(f.insn >= program_len);
      CHECK(first->insns[f.insn].src_reg == BPF_PSEUDO_MAP_VALUE);
      CHECK(first->insns[f.insn + 1].imm == int32_t(f.offset));
    }
  }
  CHECK(data_fixup);
}

TEST_CASE("kconfig externs", "[elf][kconfig]") {
  CollectionSpec spec = Load("elf_code");
  const ExternSpec& kv = spec.externs.at("LINUX_KERNEL_VERSION");
  CHECK(kv.kind == ExternSpec::Kind::kKconfig);
  CHECK_FALSE(kv.weak);
  CHECK(kv.offset == 0);
  CHECK(kv.size == 4);
  const ExternSpec& hz = spec.externs.at("CONFIG_HZ");
  CHECK(hz.weak);
  CHECK(hz.offset == 4);
  const MapSpec& kc = spec.maps.at(".kconfig");
  CHECK(kc.value_size == 8);
  CHECK(kc.freeze);

  auto second = LinkProgram(spec, "second");
  REQUIRE(second.ok());
  int kconfig_fixups = 0;
  for (const Fixup& f : second->fixups) {
    if (f.kind != Fixup::Kind::kKconfig) continue;
    ++kconfig_fixups;
    CHECK(f.name == ".kconfig");
    CHECK((f.extern_name == "LINUX_KERNEL_VERSION" || f.extern_name == "CONFIG_HZ"));
  }
  CHECK(kconfig_fixups == 2);

  auto cfg = KernelConfig::Parse("CONFIG_HZ=250\n# CONFIG_FOO is not set\n", 0x060112);
  REQUIRE(cfg.ok());
  auto value = ResolveKconfig(spec, *cfg);
  REQUIRE(value.ok());
  REQUIRE(value->size() == 8);
  uint32_t ver, hzv;
  memcpy(&ver, value->data(), 4);
  memcpy(&hzv, value->data() + 4, 4);
  CHECK(ver == 0x060112);
  CHECK(hzv == 250);
  // A weak extern missing from the config reads as 0.
  auto empty = ResolveKconfig(spec, *KernelConfig::Parse("", 1));
  REQUIRE(empty.ok());
  memcpy(&hzv, empty->data() + 4, 4);
  CHECK(hzv == 0);
  auto live = KernelConfig::Load();
  if (live.ok()) CHECK(live->linux_kernel_version > 0);
}

TEST_CASE("unknown .maps field is refused", "[elf][bad]") {
  auto spec = CollectionSpec::FromFile(BpfObjectPath("elf_bad_maps_field"));
  REQUIRE_FALSE(spec.ok());
  CHECK_THAT(std::string(spec.status().message()),
             Catch::Contains("section .maps: map 'odd': unknown field 'frobnicate'"));
}

// Byte surgery on a good object for the bad-input table.
struct Image {
  std::vector<uint8_t> bytes;
  Elf64_Ehdr eh() const {
    Elf64_Ehdr h;
    memcpy(&h, bytes.data(), sizeof(h));
    return h;
  }
  Elf64_Shdr shdr(size_t i) const {
    Elf64_Shdr s;
    memcpy(&s, bytes.data() + eh().e_shoff + i * sizeof(s), sizeof(s));
    return s;
  }
  std::string name(size_t i) const {
    Elf64_Shdr str = shdr(eh().e_shstrndx);
    return reinterpret_cast<const char*>(bytes.data() + str.sh_offset + shdr(i).sh_name);
  }
  size_t find(const std::string& n) const {
    for (size_t i = 0; i < eh().e_shnum; ++i) {
      if (name(i) == n) return i;
    }
    FAIL("no section " << n);
    return 0;
  }
  // Offset in bytes of the symbol table entry named n.
  size_t symbol(const std::string& n) const {
    Elf64_Shdr symtab = shdr(find(".symtab"));
    Elf64_Shdr strtab = shdr(symtab.sh_link);
    for (uint64_t off = 0; off + sizeof(Elf64_Sym) <= symtab.sh_size; off += sizeof(Elf64_Sym)) {
      Elf64_Sym sym;
      memcpy(&sym, bytes.data() + symtab.sh_offset + off, sizeof(sym));
      if (n == reinterpret_cast<const char*>(bytes.data() + strtab.sh_offset + sym.st_name)) {
        return symtab.sh_offset + off;
      }
    }
    FAIL("no symbol " << n);
    return 0;
  }
};

std::string ParseError(const std::vector<uint8_t>& bytes) {
  auto spec = CollectionSpec::FromMemory(bytes, "bad.o");
  if (spec.ok()) return "(parsed)";
  return std::string(spec.status().message());
}

TEST_CASE("bad inputs give one precise error each", "[elf][bad]") {
  Image good{ReadFileBytes(BpfObjectPath("elf_code"))};
  REQUIRE(CollectionSpec::FromMemory(good.bytes).ok());

  CHECK_THAT(ParseError({}), Catch::Contains("bad.o: empty file"));
  {
    Image img = good;
    Elf64_Ehdr h = img.eh();
    h.e_machine = EM_X86_64;
    memcpy(img.bytes.data(), &h, sizeof(h));
    CHECK_THAT(ParseError(img.bytes), Catch::Contains("ELF machine 62 is not BPF (247)"));
  }
  {
    Image img = good;
    img.bytes[EI_DATA] = ELFDATA2MSB;
    CHECK_THAT(ParseError(img.bytes), Catch::Contains("big-endian"));
  }
  {
    // Two legacy map definitions sharing bytes.
    Image legacy{ReadFileBytes(BpfObjectPath("elf_maps"))};
    size_t hash = legacy.symbol("legacy_hash");
    size_t array = legacy.symbol("legacy_array");
    Elf64_Sym h, a;
    memcpy(&h, legacy.bytes.data() + hash, sizeof(h));
    memcpy(&a, legacy.bytes.data() + array, sizeof(a));
    a.st_value = h.st_value + 4;
    memcpy(legacy.bytes.data() + array, &a, sizeof(a));
    CHECK_THAT(ParseError(legacy.bytes),
               Catch::Contains("section maps: map 'legacy_array' at offset " +
                               std::to_string(h.st_value + 4) + " overlaps map 'legacy_hash'"));
  }
  CHECK_THAT(ParseError({good.bytes.begin(), good.bytes.begin() + 20}),
             Catch::Contains("truncated ELF header: 20 bytes"));
  {
    Image img = good;
    Elf64_Ehdr h = img.eh();
    h.e_shoff = img.bytes.size() - 10;
    memcpy(img.bytes.data(), &h, sizeof(h));
    CHECK_THAT(ParseError(img.bytes), Catch::Contains("section header table at offset"));
  }
  {
    Image img = good;
    // clang shares one table for section and symbol names.
    size_t strtab = img.find(".strtab");
    Elf64_Shdr s = img.shdr(strtab);
    img.bytes[s.sh_offset + s.sh_size - 1] = 'x';
    CHECK_THAT(ParseError(img.bytes),
               Catch::Contains("section name table #" + std::to_string(strtab) +
                               " is not NUL-terminated"));
  }
  {
    Image img = good;
    Elf64_Shdr s = img.shdr(img.find(".relxdp"));
    Elf64_Rel r;
    memcpy(&r, img.bytes.data() + s.sh_offset, sizeof(r));
    r.r_info = ELF64_R_INFO(9999, ELF64_R_TYPE(r.r_info));
    memcpy(img.bytes.data() + s.sh_offset, &r, sizeof(r));
    CHECK_THAT(ParseError(img.bytes),
               Catch::Contains("section .relxdp entry 0 at offset") &&
                   Catch::Contains("symbol index 9999 is out of range"));
  }
  {
    Image img = good;
    Elf64_Shdr s = img.shdr(img.find(".relxdp"));
    Elf64_Rel r;
    memcpy(&r, img.bytes.data() + s.sh_offset, sizeof(r));
    r.r_offset = 1u << 20;
    memcpy(img.bytes.data() + s.sh_offset, &r, sizeof(r));
    CHECK_THAT(ParseError(img.bytes), Catch::Contains("offset 1048576 is outside section xdp"));
  }
  {
    Image img = good;
    Elf64_Shdr s = img.shdr(img.find(".BTF"));
    img.bytes[s.sh_offset] = 0;
    CHECK_THAT(ParseError(img.bytes), Catch::Contains("section .BTF: bad magic"));
  }
  {
    Image img = good;
    Elf64_Shdr s = img.shdr(img.find(".BTF"));
    // The first type's info word: make its kind 31.
    uint32_t hdr_len;
    memcpy(&hdr_len, img.bytes.data() + s.sh_offset + 4, 4);
    img.bytes[s.sh_offset + hdr_len + 7] = 31;
    CHECK_THAT(ParseError(img.bytes), Catch::Contains("section .BTF: type [1] at type offset 0: unknown kind 31"));
  }
  {
    Image img = good;
    Elf64_Shdr s = img.shdr(img.find(".relxdp"));
    // Point the first relocation at an instruction that is not ld_imm64/call.
    Elf64_Rel r;
    memcpy(&r, img.bytes.data() + s.sh_offset, sizeof(r));
    Elf64_Shdr code = img.shdr(img.find("xdp"));
    for (uint64_t off = 0; off < code.sh_size; off += 8) {
      uint8_t op = img.bytes[code.sh_offset + off];
      if (op == (BPF_ALU64 | BPF_MOV | BPF_K) || op == (BPF_JMP | BPF_EXIT)) {
        r.r_offset = off;
        break;
      }
    }
    memcpy(img.bytes.data() + s.sh_offset, &r, sizeof(r));
    CHECK_THAT(ParseError(img.bytes), Catch::Contains("which is neither ld_imm64 nor call"));
  }
}

// The relocations of a section in any order mean the same; where two name
// one instruction, the one listed last wins.
TEST_CASE("relocation order in a REL section", "[elf]") {
  Image good{ReadFileBytes(BpfObjectPath("elf_code"))};
  auto base = CollectionSpec::FromMemory(good.bytes, "elf_code.o");
  REQUIRE(base.ok());
  const Elf64_Shdr rel = good.shdr(good.find(".relxdp"));
  const size_t n = rel.sh_size / sizeof(Elf64_Rel);
  REQUIRE(n >= 4);
  auto entry = [&](const Image& img, size_t i) {
    Elf64_Rel r;
    memcpy(&r, img.bytes.data() + rel.sh_offset + i * sizeof(r), sizeof(r));
    return r;
  };
  auto set_entry = [&](Image* img, size_t i, const Elf64_Rel& r) {
    memcpy(img->bytes.data() + rel.sh_offset + i * sizeof(r), &r, sizeof(r));
  };
  auto refs_of = [](const CollectionSpec& spec) {
    std::vector<std::string> out;
    for (const auto& [name, prog] : spec.programs) {
      for (const InsnReference& r : prog.code.references) {
        // "@" the instruction's index in its section
        out.push_back(absl::StrCat(name, " @", prog.section + ":", prog.section_offset + r.insn,
                                   " ", ReferenceKindName(r.kind), " ", r.name, " ", r.offset));
      }
    }
    return out;
  };
  SECTION("reversed") {
    Image img = good;
    for (size_t i = 0; i < n; ++i) set_entry(&img, i, entry(good, n - 1 - i));
    auto spec = CollectionSpec::FromMemory(img.bytes, "reversed.o");
    INFO(spec.status().ToString());
    REQUIRE(spec.ok());
    CHECK(refs_of(*spec) == refs_of(*base));
    for (const auto& [name, prog] : base->programs) {
      REQUIRE(spec->programs.count(name) == 1);
      CHECK(memcmp(spec->programs.at(name).code.insns.data(), prog.code.insns.data(),
                   prog.code.insns.size() * sizeof(bpf_insn)) == 0);
    }
  }
  SECTION("two on one instruction") {
    // Find two ld_imm64 relocations: move the first onto the second's
    // instruction. The second, listed later, wins; the first's
    // instruction keeps its immediate and references nothing.
    Elf64_Shdr code = good.shdr(good.find("xdp"));
    std::vector<size_t> ld64;
    for (size_t i = 0; i < n; ++i) {
      if (good.bytes[code.sh_offset + entry(good, i).r_offset] == (BPF_LD | BPF_IMM | BPF_DW)) {
        ld64.push_back(i);
      }
    }
    REQUIRE(ld64.size() >= 2);
    Image img = good;
    Elf64_Rel moved = entry(good, ld64[0]);
    const uint64_t vacated = moved.r_offset;
    moved.r_offset = entry(good, ld64[1]).r_offset;
    set_entry(&img, ld64[0], moved);
    auto spec = CollectionSpec::FromMemory(img.bytes, "twice.o");
    INFO(spec.status().ToString());
    REQUIRE(spec.ok());
    std::vector<std::string> want;
    for (const std::string& r : refs_of(*base)) {
      if (r.find(absl::StrCat(" @xdp:", vacated / 8, " ")) == std::string::npos) want.push_back(r);
    }
    CHECK(refs_of(*spec).size() == refs_of(*base).size() - 1);
    CHECK(refs_of(*spec) == want);
  }
}

// --- conformance corpus ---------------------------------------------------------

std::string CorpusDir() {
  for (std::string dir : {std::string(TETHER_SOURCE_DIR) + "/test/corpus",
                          std::string(TETHER_SOURCE_DIR) + "/../shared/corpus"}) {
    struct stat st;
    if (stat((dir + "/EXPECTED.tsv").c_str(), &st) == 0) return dir;
  }
  return "";
}

TEST_CASE("conformance corpus parses as expected", "[elf][corpus]") {
  std::string dir = CorpusDir();
  if (dir.empty()) TETHER_SKIP_OR_FAIL("corpus directory not found");
  std::ifstream tsv(dir + "/EXPECTED.tsv");
  std::string line;
  std::getline(tsv, line);  // header
  int ok = 0, refused = 0;
  // Programs whose link must fail: they call functions nobody defines.
  const std::vector<std::string> unsatisfied = {"fwd_decl-el.elf", "linked1-el.elf",
                                                "linked2-el.elf", "tags-el.elf"};
  while (std::getline(tsv, line)) {
    std::vector<std::string> cols = absl::StrSplit(line, '\t');
    if (cols.size() < 2) continue;
    const std::string& file = cols[0];
    INFO("corpus file " << file);
    auto spec = CollectionSpec::FromFile(dir + "/" + file);
    if (cols[1] == "fail") {
      REQUIRE_FALSE(spec.ok());
      std::string msg(spec.status().message());
      if (file == "invalid_btf_map_init-el.elf") {
        CHECK_THAT(msg, Catch::Contains("map 'hash_map': non-zero initialiser"));
      } else if (file == "invalid_map_static-el.elf") {
        CHECK_THAT(msg, Catch::Contains("static map 'hash_map'"));
      }
      ++refused;
      continue;
    }
    INFO(spec.status().ToString());
    REQUIRE(spec.ok());
    ++ok;
    bool expect_unsatisfied =
        std::find(unsatisfied.begin(), unsatisfied.end(), file) != unsatisfied.end();
    int link_failures = 0;
    for (const auto& [name, prog] : spec->programs) {
      auto linked = LinkProgram(*spec, name);
      if (!linked.ok()) {
        INFO("program " << name << ": " << linked.status().ToString());
        CHECK(expect_unsatisfied);
        CHECK_THAT(std::string(linked.status().message()), Catch::Contains("unsatisfied"));
        ++link_failures;
        continue;
      }
      for (const Fixup& f : linked->fixups) {
        if (f.kind == Fixup::Kind::kMapFd || f.kind == Fixup::Kind::kMapValue) {
          CHECK(spec->maps.count(f.name) == 1);
        }
      }
    }
    if (expect_unsatisfied) CHECK(link_failures > 0);
    // Deep copies are equal in content.
    CollectionSpec copy = spec->Copy();
    CHECK(copy.maps.size() == spec->maps.size());
  }
  CHECK(ok == 34);
  CHECK(refused == 2);
}

TEST_CASE("corpus details", "[elf][corpus]") {
  std::string dir = CorpusDir();
  if (dir.empty()) TETHER_SKIP_OR_FAIL("corpus directory not found");
  {
    auto spec = CollectionSpec::FromFile(dir + "/arena-el.elf");
    REQUIRE(spec.ok());
    const MapSpec& m = spec->maps.at("arena");
    CHECK(m.map_extra == (uint64_t{1} << 44));
    CHECK(m.flags == BPF_F_MMAPABLE);
    CHECK(m.max_entries == 100);
  }
  {
    auto spec = CollectionSpec::FromFile(dir + "/iproute2_map_compat-el.elf");
    REQUIRE(spec.ok());
    const MapSpec& m = spec->maps.at("hash_map");
    CHECK(m.pinning == PinType::kByName);
    CHECK(CheckCreatable(m).ok());
  }
  {
    auto spec = CollectionSpec::FromFile(dir + "/invalid_map-el.elf");
    REQUIRE(spec.ok());
    auto st = CheckCreatable(spec->maps.at("invalid_map"));
    CHECK_THAT(std::string(st.message()), Catch::Contains("trailing bytes"));
  }
  {
    auto spec = CollectionSpec::FromFile(dir + "/btf_map_init-el.elf");
    REQUIRE(spec.ok());
    REQUIRE(spec->maps.at("prog_array_init").init.size() == 1);
    CHECK(spec->maps.at("prog_array_init").init[0].name == "tail_1");
    REQUIRE(spec->maps.at("outer_map_init").init.size() == 1);
    CHECK(spec->maps.at("outer_map_init").init[0].name == "inner_map");
  }
  {
    auto spec = CollectionSpec::FromFile(dir + "/variables-el.elf");
    REQUIRE(spec.ok());
    CHECK(spec->variables.count("hidden") == 0);
    CHECK(spec->variables.count("weak") == 1);
  }
  {
    auto spec = CollectionSpec::FromFile(dir + "/strings-el.elf");
    REQUIRE(spec.ok());
    CHECK(spec->maps.at(".rodata.str1.1").flags == BPF_F_RDONLY_PROG);
  }
  {
    auto spec = CollectionSpec::FromFile(dir + "/loader-clang-14-el.elf");
    REQUIRE(spec.ok());
    CHECK(spec->maps.at("perf_event_array").key_size == 4);
    CHECK(spec->maps.at("perf_event_array").value_size == 4);
    auto linked = LinkProgram(*spec, "xdp_prog");
    REQUIRE(linked.ok());
    CHECK(linked->layout.size() > 1);
  }
  {
    auto spec = CollectionSpec::FromFile(dir + "/manyprogs-el.elf");
    REQUIRE(spec.ok());
    CHECK(spec->programs.size() == 30);
    size_t relos = 0;
    for (auto& [n, p] : spec->programs) relos += p.code.core_relos.size();
    CHECK(relos > 0);
  }
}

}  // namespace
}  // namespace tether
