#include "elf/elf_symbols_internal.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "sys/bpf.h"

namespace tether::detail {
namespace {

// Closes the ELF handle and the fd together.
struct ElfFile {
  int fd = -1;
  Elf* elf = nullptr;
  ~ElfFile() {
    if (elf) elf_end(elf);
    if (fd >= 0) close(fd);
  }
};

// The address of `symbol` if section `scn` (a symbol table) defines it.
bool FindInTable(Elf* elf, Elf_Scn* scn, const GElf_Shdr& shdr, const std::string& symbol,
                 GElf_Addr* addr) {
  Elf_Data* data = elf_getdata(scn, nullptr);
  if (!data || shdr.sh_entsize == 0) return false;
  size_t count = shdr.sh_size / shdr.sh_entsize;
  for (size_t i = 0; i < count; ++i) {
    GElf_Sym sym;
    if (!gelf_getsym(data, static_cast<int>(i), &sym)) continue;
    if (GELF_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_shndx == SHN_UNDEF) continue;
    const char* name = elf_strptr(elf, shdr.sh_link, sym.st_name);
    if (name && symbol == name) {
      *addr = sym.st_value;
      return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<uint64_t> ElfSymbolFileOffset(const std::string& path, const std::string& symbol) {
  std::string what = absl::StrCat("symbol '", symbol, "' in ", path);
  elf_version(EV_CURRENT);
  ElfFile f;
  f.fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) return sys::ErrnoStatus(errno, what, "open");
  f.elf = elf_begin(f.fd, ELF_C_READ, nullptr);
  if (!f.elf || elf_kind(f.elf) != ELF_K_ELF) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": not an ELF file"));
  }
  GElf_Addr addr = 0;
  bool found = false;
  for (Elf64_Word wanted : {SHT_SYMTAB, SHT_DYNSYM}) {
    for (Elf_Scn* scn = nullptr; !found && (scn = elf_nextscn(f.elf, scn));) {
      GElf_Shdr shdr;
      if (gelf_getshdr(scn, &shdr) && shdr.sh_type == wanted)
        found = FindInTable(f.elf, scn, shdr, symbol, &addr);
    }
    if (found) break;
  }
  if (!found) return absl::NotFoundError(absl::StrCat(what, ": no such function symbol"));
  // uprobes take file offsets: map the address through the loadable
  // segment that contains it.
  size_t phnum = 0;
  if (elf_getphdrnum(f.elf, &phnum) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": no program headers"));
  }
  for (size_t i = 0; i < phnum; ++i) {
    GElf_Phdr ph;
    if (!gelf_getphdr(f.elf, static_cast<int>(i), &ph) || ph.p_type != PT_LOAD) continue;
    if (!(ph.p_flags & PF_X)) continue;
    if (addr >= ph.p_vaddr && addr < ph.p_vaddr + ph.p_memsz) {
      return addr - ph.p_vaddr + ph.p_offset;
    }
  }
  return absl::NotFoundError(
      absl::StrCat(what, ": address 0x", absl::Hex(addr), " is in no executable segment"));
}

}  // namespace tether::detail
