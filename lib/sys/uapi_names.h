// The names of the UAPI's map and program types, for messages, probe names
// and the graph. They live with the syscall layer so that every layer above
// it, the feature probes included, can name a type without the handles.
#ifndef TETHER_LIB_SYS_UAPI_NAMES_H_
#define TETHER_LIB_SYS_UAPI_NAMES_H_

#include <cstdint>

namespace tether::sys {

// "hash", "ringbuf", ...; "unknown" for a number no release tether knows has.
const char* MapTypeName(uint32_t type);
// "socket_filter", "tracing", ...; "unknown" likewise.
const char* ProgramTypeName(uint32_t type);

}  // namespace tether::sys

#endif  // TETHER_LIB_SYS_UAPI_NAMES_H_
