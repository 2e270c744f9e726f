// Symbol lookup in user-space ELF binaries, for uprobes. Internal.
#ifndef TETHER_LIB_ELF_SYMBOLS_INTERNAL_H_
#define TETHER_LIB_ELF_SYMBOLS_INTERNAL_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace tether::detail {

// The file offset of function `symbol` in the ELF file at `path`, which is
// what a uprobe is placed at. Looks in .symtab, then .dynsym.
absl::StatusOr<uint64_t> ElfSymbolFileOffset(const std::string& path, const std::string& symbol);

}  // namespace tether::detail

#endif  // TETHER_LIB_ELF_SYMBOLS_INTERNAL_H_
