// Reading a whole map at once, by the fastest path this kernel offers:
//
//   kIterator  a BPF map-element iterator (iter/bpf_map_elem, 5.9): a tiny
//              program per map shape (key size, value size), loaded once per
//              process and cached, writes every key and value into a seq_file
//              that is read() in large chunks;
//   kBatch     BPF_MAP_LOOKUP_BATCH (5.6), chunk by chunk;
//   kPerKey    GET_NEXT_KEY + LOOKUP_ELEM per entry, where neither exists.
//
// The probe probe::HaveIterator("bpf_map_elem") decides whether the
// iterator may be used; a kernel that refuses tracing programs (EPERM under
// a lockdown or an LSM) gets the batch path. The result says which path ran
// and why, so that a caller or a benchmark can report it.
#ifndef TETHER_MAP_DUMP_H_
#define TETHER_MAP_DUMP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tether/map.h"

namespace tether {

enum class DumpPath { kIterator, kBatch, kPerKey };
const char* DumpPathName(DumpPath path);

struct DumpOptions {
  enum class Prefer {
    kFastest,   // the iterator where the probe allows it, else batch
    kIterator,  // the iterator or an error (Unimplemented/PermissionDenied)
    kBatch,     // batch (per key where the kernel has no batch for the type)
  };
  Prefer prefer = Prefer::kFastest;
  // Entries per BPF_MAP_LOOKUP_BATCH call.
  uint32_t batch_size = 1024;
};

struct MapDump {
  // count entries: keys count * key_size bytes, values count *
  // value_buffer_size bytes (per-CPU values in the batch layout: each CPU's
  // value rounded up to 8 bytes). The order is the kernel's walk order.
  std::vector<uint8_t> keys;
  std::vector<uint8_t> values;
  uint32_t count = 0;
  DumpPath path = DumpPath::kBatch;
  // Why this path ran, e.g. "iterator refused by probe: ...".
  std::string why;
};

// Every entry of `map`. Hash, LRU hash and array maps (and their per-CPU
// forms) can take the iterator; other types go by batch or per key.
absl::StatusOr<MapDump> DumpMap(const Map& map, const DumpOptions& options = {});

}  // namespace tether

#endif  // TETHER_MAP_DUMP_H_
