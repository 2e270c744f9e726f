// A counting allocator for the benchmarks: the global operator new is
// replaced in alloc_counter.cc, and every call counted on its thread, so a
// benchmark can report heap allocations per operation.
#ifndef TETHER_BENCH_ALLOC_COUNTER_H_
#define TETHER_BENCH_ALLOC_COUNTER_H_

#include <cstdint>

namespace bench_alloc {

// operator new calls (every form) made by this thread so far.
uint64_t ThreadAllocations();

}  // namespace bench_alloc

#endif  // TETHER_BENCH_ALLOC_COUNTER_H_
