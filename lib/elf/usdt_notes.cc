// .note.stapsdt parsing: where each USDT site is, its semaphore, and how
// to read its arguments. The note layout is systemtap's (sys/sdt.h): type
// 3, owner "stapsdt", a descriptor of three target-sized addresses (site,
// .stapsdt.base at link time, semaphore) followed by the provider, the
// name and the argument spec as NUL-terminated strings.
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "sys/bpf.h"
#include "tether/usdt.h"

namespace tether {
namespace {

constexpr uint32_t kNtStapsdt = 3;

struct ElfHandle {
  int fd = -1;
  Elf* elf = nullptr;
  ~ElfHandle() {
    if (elf) elf_end(elf);
    if (fd >= 0) close(fd);
  }
};

// x86-64 register names (every width) and their offset in struct pt_regs.
struct RegisterName {
  const char* names[4];
  int16_t offset;
};
constexpr RegisterName kRegisters[] = {
    {{"r15", "r15d", "r15w", "r15b"}, 0},  {{"r14", "r14d", "r14w", "r14b"}, 8},
    {{"r13", "r13d", "r13w", "r13b"}, 16}, {{"r12", "r12d", "r12w", "r12b"}, 24},
    {{"rbp", "ebp", "bp", "bpl"}, 32},     {{"rbx", "ebx", "bx", "bl"}, 40},
    {{"r11", "r11d", "r11w", "r11b"}, 48}, {{"r10", "r10d", "r10w", "r10b"}, 56},
    {{"r9", "r9d", "r9w", "r9b"}, 64},     {{"r8", "r8d", "r8w", "r8b"}, 72},
    {{"rax", "eax", "ax", "al"}, 80},      {{"rcx", "ecx", "cx", "cl"}, 88},
    {{"rdx", "edx", "dx", "dl"}, 96},      {{"rsi", "esi", "si", "sil"}, 104},
    {{"rdi", "edi", "di", "dil"}, 112},    {{"rip", "eip", "ip", nullptr}, 128},
    {{"rsp", "esp", "sp", "spl"}, 152},
};

bool RegisterOffset(absl::string_view reg, int16_t* offset) {
  for (const RegisterName& r : kRegisters) {
    for (const char* n : r.names) {
      if (n != nullptr && reg == n) {
        *offset = r.offset;
        return true;
      }
    }
  }
  return false;
}

// "%reg" -> reg, with its pt_regs offset.
absl::Status ParseRegister(absl::string_view text, UsdtArg* arg) {
  if (!absl::ConsumePrefix(&text, "%")) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a register"));
  }
  if (!RegisterOffset(text, &arg->pt_regs_offset)) {
    return absl::InvalidArgumentError(absl::StrCat("register %", text, " is not an x86-64 register tether reads"));
  }
  arg->reg = std::string(text);
  return absl::OkStatus();
}

// One argument: "[-]size@location", location "$imm", "%reg" or
// "[offset](%reg)".
absl::Status ParseArg(absl::string_view spec, UsdtArg* arg) {
  size_t at = spec.find('@');
  int size = 0;
  if (at == absl::string_view::npos || !absl::SimpleAtoi(spec.substr(0, at), &size)) {
    return absl::InvalidArgumentError(absl::StrCat("argument '", spec, "' has no size@ prefix"));
  }
  arg->is_signed = size < 0;
  arg->size = size < 0 ? -size : size;
  if (arg->size != 1 && arg->size != 2 && arg->size != 4 && arg->size != 8) {
    return absl::InvalidArgumentError(absl::StrCat("argument '", spec, "': size ", size,
                                                   " is not 1, 2, 4 or 8 bytes"));
  }
  absl::string_view loc = spec.substr(at + 1);
  if (absl::ConsumePrefix(&loc, "$")) {
    arg->kind = UsdtArg::Kind::kConstant;
    if (!absl::SimpleAtoi(loc, &arg->value)) {
      return absl::InvalidArgumentError(absl::StrCat("argument '", spec, "': '", loc,
                                                     "' is not an integer constant"));
    }
    return absl::OkStatus();
  }
  if (absl::StartsWith(loc, "%")) {
    arg->kind = UsdtArg::Kind::kRegister;
    absl::Status st = ParseRegister(loc, arg);
    if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat("argument '", spec, "': ", st.message()));
    return absl::OkStatus();
  }
  size_t open = loc.find('(');
  if (open == absl::string_view::npos || !absl::EndsWith(loc, ")")) {
    return absl::InvalidArgumentError(absl::StrCat("argument '", spec, "': location '", loc,
                                                   "' is not $constant, %register or offset(%register)"));
  }
  arg->kind = UsdtArg::Kind::kMemory;
  absl::string_view offset = loc.substr(0, open);
  // A symbol base ("counter(%rip)") needs the binary's load address,
  // which the spec map cannot carry; libbpf refuses it too.
  if (!offset.empty() && !absl::SimpleAtoi(offset, &arg->value)) {
    return absl::InvalidArgumentError(absl::StrCat("argument '", spec, "': offset '", offset,
                                                   "' is not an integer"));
  }
  absl::Status st = ParseRegister(loc.substr(open + 1, loc.size() - open - 2), arg);
  if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat("argument '", spec, "': ", st.message()));
  return absl::OkStatus();
}

absl::Status ParseArgs(UsdtNote* note) {
  for (absl::string_view piece : absl::StrSplit(note->args, ' ', absl::SkipWhitespace())) {
    UsdtArg arg;
    absl::Status st = ParseArg(piece, &arg);
    if (!st.ok()) return st;
    note->parsed_args.push_back(std::move(arg));
  }
  return absl::OkStatus();
}

// File offset of `addr` through the executable PT_LOAD segment holding it.
bool CodeFileOffset(Elf* elf, uint64_t addr, uint64_t* offset) {
  size_t phnum = 0;
  if (elf_getphdrnum(elf, &phnum) != 0) return false;
  for (size_t i = 0; i < phnum; ++i) {
    GElf_Phdr ph;
    if (!gelf_getphdr(elf, static_cast<int>(i), &ph) || ph.p_type != PT_LOAD) continue;
    if (!(ph.p_flags & PF_X)) continue;
    if (addr >= ph.p_vaddr && addr < ph.p_vaddr + ph.p_filesz) {
      *offset = addr - ph.p_vaddr + ph.p_offset;
      return true;
    }
  }
  return false;
}

// File offset of a semaphore through the section holding it (.probes).
bool DataFileOffset(Elf* elf, uint64_t addr, uint64_t* offset) {
  for (Elf_Scn* scn = nullptr; (scn = elf_nextscn(elf, scn));) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh) || sh.sh_type == SHT_NOBITS || !(sh.sh_flags & SHF_ALLOC)) continue;
    if (addr >= sh.sh_addr && addr < sh.sh_addr + sh.sh_size) {
      *offset = addr - sh.sh_addr + sh.sh_offset;
      return true;
    }
  }
  return false;
}

struct NoteSections {
  Elf_Scn* notes = nullptr;
  bool has_base = false;
  uint64_t base_addr = 0;  // .stapsdt.base where the binary is now
};

NoteSections FindNoteSections(Elf* elf) {
  NoteSections out;
  size_t shstrndx = 0;
  if (elf_getshdrstrndx(elf, &shstrndx) != 0) return out;
  for (Elf_Scn* scn = nullptr; (scn = elf_nextscn(elf, scn));) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh)) continue;
    const char* name = elf_strptr(elf, shstrndx, sh.sh_name);
    if (name == nullptr) continue;
    if (sh.sh_type == SHT_NOTE && strcmp(name, ".note.stapsdt") == 0) out.notes = scn;
    if (strcmp(name, ".stapsdt.base") == 0) {
      out.has_base = true;
      out.base_addr = sh.sh_addr;
    }
  }
  return out;
}

// Decodes one note's descriptor into `note`; the error says what is wrong.
absl::Status DecodeNote(Elf* elf, const NoteSections& secs, const uint8_t* desc, size_t size,
                        UsdtNote* note) {
  size_t word = gelf_getclass(elf) == ELFCLASS32 ? 4 : 8;
  if (size < 3 * word) return absl::InvalidArgumentError("descriptor shorter than three addresses");
  uint64_t addrs[3] = {0, 0, 0};
  for (int i = 0; i < 3; ++i) memcpy(&addrs[i], desc + i * word, word);  // little-endian host
  const char* p = reinterpret_cast<const char*>(desc) + 3 * word;
  const char* end = reinterpret_cast<const char*>(desc) + size;
  std::string* fields[3] = {&note->provider, &note->name, &note->args};
  for (std::string* f : fields) {
    const void* nul = memchr(p, '\0', static_cast<size_t>(end - p));
    if (p >= end || nul == nullptr) return absl::InvalidArgumentError("strings are not NUL-terminated");
    *f = std::string(p, static_cast<const char*>(nul));
    p = static_cast<const char*>(nul) + 1;
  }
  if (note->provider.empty() || note->name.empty()) {
    return absl::InvalidArgumentError("empty provider or name");
  }
  note->address = addrs[0];
  // A prelinked binary moved .stapsdt.base; the site moved with it.
  if (secs.has_base && addrs[1] != 0) note->address += secs.base_addr - addrs[1];
  if (!CodeFileOffset(elf, note->address, &note->file_offset)) {
    return absl::InvalidArgumentError(
        absl::StrCat("address 0x", absl::Hex(note->address), " is in no executable segment"));
  }
  note->semaphore_address = addrs[2];
  if (addrs[2] != 0 && !DataFileOffset(elf, addrs[2], &note->semaphore_offset)) {
    return absl::InvalidArgumentError(
        absl::StrCat("semaphore 0x", absl::Hex(addrs[2]), " is in no section with file contents"));
  }
  absl::Status args = ParseArgs(note);
  if (!args.ok()) {
    note->args_error = std::string(args.message());
    note->parsed_args.clear();
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<UsdtNote>> ReadUsdtNotes(const std::string& path) {
  std::string what = absl::StrCat("USDT notes of ", path);
  elf_version(EV_CURRENT);
  ElfHandle f;
  f.fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) return sys::ErrnoStatus(errno, what, "open");
  f.elf = elf_begin(f.fd, ELF_C_READ, nullptr);
  if (!f.elf || elf_kind(f.elf) != ELF_K_ELF) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": not an ELF file"));
  }
  GElf_Ehdr eh;
  if (!gelf_getehdr(f.elf, &eh) || eh.e_machine != EM_X86_64) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": not an x86-64 binary (tether parses x86-64 argument specs only)"));
  }
  NoteSections secs = FindNoteSections(f.elf);
  if (secs.notes == nullptr) {
    return absl::NotFoundError(absl::StrCat(what, ": no .note.stapsdt section (built without sys/sdt.h probes?)"));
  }
  Elf_Data* data = elf_getdata(secs.notes, nullptr);
  std::vector<UsdtNote> out;
  if (data == nullptr) return out;
  GElf_Nhdr nh;
  size_t name_off = 0, desc_off = 0;
  size_t index = 0;
  size_t pos = 0;
  for (size_t next; (next = gelf_getnote(data, pos, &nh, &name_off, &desc_off)) > 0; ++index, pos = next) {
    const char* owner = static_cast<const char*>(data->d_buf) + name_off;
    if (nh.n_type != kNtStapsdt || nh.n_namesz != sizeof("stapsdt") || strcmp(owner, "stapsdt") != 0) {
      continue;
    }
    UsdtNote note;
    note.index = index;
    absl::Status st = DecodeNote(f.elf, secs, static_cast<const uint8_t*>(data->d_buf) + desc_off,
                                 nh.n_descsz, &note);
    if (!st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": note ", index, " (", note.provider, ":",
                                                     note.name, "): ", st.message()));
    }
    out.push_back(std::move(note));
  }
  // gelf_getnote stops at a note whose sizes run past the section.
  if (pos < data->d_size) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": note ", index, " at byte ", pos,
                                                   " of .note.stapsdt runs past the section's ",
                                                   data->d_size, " bytes"));
  }
  return out;
}

}  // namespace tether
