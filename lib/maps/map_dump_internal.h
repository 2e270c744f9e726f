// DumpMap's cache of iterator programs, for tests. Internal.
#ifndef TETHER_LIB_MAPS_MAP_DUMP_INTERNAL_H_
#define TETHER_LIB_MAPS_MAP_DUMP_INTERNAL_H_

#include <cstddef>

namespace tether::detail {

// How many iterator programs (one per key size, value size) are cached.
size_t CachedDumpPrograms();
// Closes them; the next iterator dump loads its program again. The test
// suite checks every case for leaked fds, and the cache is meant to live
// as long as the process.
void ForgetDumpPrograms();

}  // namespace tether::detail

#endif  // TETHER_LIB_MAPS_MAP_DUMP_INTERNAL_H_
