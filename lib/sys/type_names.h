// The kernel's names for its map and program types ("prog_array",
// "socket_filter"). Internal: the public MapTypeName and ProgramTypeName
// forward here, so that layers below the handles (the graph's writers) can
// name types without knowing a handle.
#ifndef TETHER_LIB_SYS_TYPE_NAMES_H_
#define TETHER_LIB_SYS_TYPE_NAMES_H_

#include <cstdint>

namespace tether::sys {

const char* MapTypeName(uint32_t type);
const char* ProgramTypeName(uint32_t type);

}  // namespace tether::sys

#endif  // TETHER_LIB_SYS_TYPE_NAMES_H_
