// Tail-call miss counters: the rewrite that puts a counter after every
// bpf_tail_call of a linked program, the counter map with its site table,
// and the reader that finds the table again from a program alone.
// docs/lifecycle.md ("Tail-call miss counters") describes the design.
#ifndef TETHER_LIB_LOAD_MISS_COUNTERS_H_
#define TETHER_LIB_LOAD_MISS_COUNTERS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tether/btf.h"
#include "tether/collection_spec.h"
#include "tether/map.h"
#include "tether/tail_call_site.h"

namespace tether::detail {

// The counter map's kernel name, and the name of its BTF value type.
inline constexpr char kMissCounterMapName[] = "tether_misses";
inline constexpr char kMissCounterTypeName[] = "tether_tail_call_misses";
// Key of the counter map in the loader's map table while a load runs (no
// ELF map can be called so: symbol names have no leading '.').
inline constexpr char kMissCounterKey[] = ".tether_misses";
// Instructions the rewrite adds after each tail call.
inline constexpr uint32_t kCounterInsns = 4;
// At most this many sites per collection (the BTF struct's vlen is 16 bits).
inline constexpr uint32_t kMaxMissSites = 4096;

// Finds every bpf_tail_call in `lp`, inserts after each an increment of
// counter slot `sites->size()` (then the next ones), and shifts every
// offset the insertion moves: jumps, bpf-to-bpf calls and callbacks,
// func_info, line_info, CO-RE relocations, fixups and the layout. The new
// ld_imm64 get kMapValue fixups on kMissCounterKey. `btf` (may be null)
// gives each site its source line. Appends one TailCallSite per call.
absl::Status InsertMissCounters(const std::string& program, LinkedProgram& lp, const Btf* btf,
                                std::vector<TailCallSite>* sites);

// The counter map for `sites`: an ARRAY with one value of sites.size()
// u64, described by BTF whose member names encode the site table.
absl::StatusOr<Map> CreateMissCounterMap(const std::vector<TailCallSite>& sites,
                                         LifetimePolicy policy);

// The BTF member name that encodes `site`, and back (nullopt-like error
// when the name is not one of ours). Exposed for tests.
std::string EncodeSiteName(const TailCallSite& site);
absl::StatusOr<TailCallSite> DecodeSiteName(absl::string_view name);

// Reads the counter map `map_fd` (already known to be named
// kMissCounterMapName): decodes its site table from its BTF and fills the
// counts. Every site of the map, for every program of its collection.
absl::StatusOr<std::vector<TailCallSite>> ReadMissCounterMap(int map_fd);

// The sites of the program `prog_fd` with their counts, found from its
// used maps alone. Empty when the program has no counter map.
absl::StatusOr<std::vector<TailCallSite>> ReadProgramMisses(int prog_fd);

}  // namespace tether::detail

#endif  // TETHER_LIB_LOAD_MISS_COUNTERS_H_
