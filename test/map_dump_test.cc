// DumpMap (map_dump.h): a 10k-entry hash read whole by the batch path on
// every kernel and by the map-element iterator where the probe allows it,
// both compared entry for entry with what was written.
#include <map>
#include <vector>

#include "map_test_support.h"
#include "maps/map_dump_internal.h"
#include "tether/map_batch.h"
#include "tether/map_dump.h"
#include "tether/probe.h"

using namespace tether;
using namespace tether::testing;

namespace {

constexpr uint32_t kEntries = 10000;

uint64_t ValueOf(uint32_t k) { return uint64_t{k} * 0x9E3779B97F4A7C15ull ^ 0x5a5a; }

Map FilledHash(const char* name) {
  Map m = MustCreate(BPF_MAP_TYPE_HASH, 4, 8, kEntries, 0, name);
  std::vector<uint32_t> keys(kEntries);
  std::vector<uint64_t> values(kEntries);
  for (uint32_t k = 0; k < kEntries; ++k) {
    keys[k] = k * 7 + 1;
    values[k] = ValueOf(keys[k]);
  }
  REQUIRE_OK(UpdateBatch(m, absl::MakeConstSpan(keys), absl::MakeConstSpan(values)));
  return m;
}

// The dump as key -> value; fails on a duplicate key or a wrong size.
std::map<uint32_t, uint64_t> AsMap(const MapDump& d) {
  REQUIRE(d.keys.size() == size_t{d.count} * 4);
  REQUIRE(d.values.size() == size_t{d.count} * 8);
  std::map<uint32_t, uint64_t> out;
  for (uint32_t i = 0; i < d.count; ++i) {
    uint32_t k;
    uint64_t v;
    memcpy(&k, d.keys.data() + i * 4, 4);
    memcpy(&v, d.values.data() + i * 8, 8);
    CHECK(out.emplace(k, v).second);
  }
  return out;
}

void CheckContents(const MapDump& d) {
  REQUIRE(d.count == kEntries);
  std::map<uint32_t, uint64_t> got = AsMap(d);
  REQUIRE(got.size() == kEntries);
  uint32_t wrong = 0;
  for (uint32_t k = 0; k < kEntries; ++k) {
    auto it = got.find(k * 7 + 1);
    if (it == got.end() || it->second != ValueOf(k * 7 + 1)) ++wrong;
  }
  CHECK(wrong == 0);
}

}  // namespace

TEST_CASE("DumpMap reads a 10k-entry hash exactly by batch and, where allowed, by iterator",
          "[map][dump]") {
  Map m = FilledHash("dump_10k");

  MapDump batch = MustOk(DumpMap(m, DumpOptions{DumpOptions::Prefer::kBatch, 256}));
  CHECK(batch.path == DumpPath::kBatch);
  CheckContents(batch);

  absl::Status probe = probe::HaveIterator("bpf_map_elem");
  INFO("probe iterator:bpf_map_elem: " << probe.message());
  MapDump fastest = MustOk(DumpMap(m));
  INFO("fastest path: " << DumpPathName(fastest.path) << " (" << fastest.why << ")");
  CheckContents(fastest);
  if (probe.ok()) {
    CHECK(fastest.path == DumpPath::kIterator);
    MapDump iter = MustOk(DumpMap(m, DumpOptions{DumpOptions::Prefer::kIterator}));
    CHECK(iter.path == DumpPath::kIterator);
    CheckContents(iter);
    // Same contents both ways, entry for entry.
    CHECK(AsMap(iter) == AsMap(batch));
    // The cached program serves a second map of the same shape.
    Map other = MustCreate(BPF_MAP_TYPE_HASH, 4, 8, 16, 0, "dump_small");
    uint32_t k = 3;
    uint64_t v = 42;
    REQUIRE_OK(other.Update(k, v));
    MapDump small = MustOk(DumpMap(other, DumpOptions{DumpOptions::Prefer::kIterator}));
    REQUIRE(small.count == 1);
    CHECK(AsMap(small).at(3) == 42);
    CHECK(detail::CachedDumpPrograms() == 1);
    detail::ForgetDumpPrograms();  // the suite counts the cached program's fd as a leak
  } else {
    // The probe refused: the fastest path is batch and says why, and
    // asking for the iterator outright is an error naming the map.
    CHECK(fastest.path == DumpPath::kBatch);
    CHECK(fastest.why.find("iterator refused by probe") != std::string::npos);
    auto iter = DumpMap(m, DumpOptions{DumpOptions::Prefer::kIterator});
    REQUIRE_FALSE(iter.ok());
    CHECK(iter.status().message().find("dump_10k") != absl::string_view::npos);
  }
}

TEST_CASE("DumpMap takes types the iterator does not walk by batch or per key, and refuses keyless maps",
          "[map][dump]") {
  Map lpm = MustCreate(BPF_MAP_TYPE_LPM_TRIE, 8, 8, 16, BPF_F_NO_PREALLOC, "dump_lpm");
  struct {
    uint32_t prefix;
    uint8_t addr[4];
  } key = {32, {10, 0, 0, 1}};
  uint64_t v = 7;
  REQUIRE_OK(lpm.Update(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&key), 8),
                        absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&v), 8)));
  MapDump d = MustOk(DumpMap(lpm));
  CHECK(d.path != DumpPath::kIterator);
  CHECK(d.count == 1);
  CHECK(d.why.find("does not walk") != std::string::npos);

  Map queue = MustCreate(BPF_MAP_TYPE_QUEUE, 0, 8, 16, 0, "dump_queue");
  auto q = DumpMap(queue);
  REQUIRE_FALSE(q.ok());
  CHECK(absl::IsInvalidArgument(q.status()));
  CHECK(DumpMap(Map()).status().code() == absl::StatusCode::kFailedPrecondition);
}
