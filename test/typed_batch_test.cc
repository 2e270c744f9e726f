// Typed batches (map_batch.h): Span<K> / Span<V> and PerCpuBatch<V>, with
// no byte spans in sight, against real hash and per-CPU hash maps.
#include <map>
#include <vector>

#include "map_test_support.h"
#include "tether/map_batch.h"
#include "tether/percpu.h"

using namespace tether;
using namespace tether::testing;

TEST_CASE("typed batches update and read per-CPU maps without byte spans", "[map][batch]") {
  const uint32_t cpus = PossibleCpus();
  Map pc = MustCreate(BPF_MAP_TYPE_PERCPU_HASH, 4, 8, 64, 0, "tbatch_pc");
  std::vector<uint32_t> keys;
  PerCpuBatch<uint64_t> values(40);
  CHECK(values.entry_bytes() == pc.value_buffer_size());
  for (uint32_t k = 0; k < 40; ++k) {
    keys.push_back(k);
    for (uint32_t c = 0; c < cpus; ++c) values.Set(k, c, uint64_t{k} * 100 + c);
  }
  uint32_t done = 0;
  REQUIRE_OK(UpdateBatch(pc, absl::MakeConstSpan(keys), values, UpdateFlag::kAny, &done));
  CHECK(done == 40);

  // Read back in batches of 16, through the per-CPU view of each entry.
  std::vector<uint32_t> kb(16);
  PerCpuBatch<uint64_t> vb(16);
  BatchCursor cursor(pc);
  std::map<uint32_t, uint64_t> sums;
  while (!cursor.done()) {
    uint32_t n = MustOk(LookupBatch(pc, &cursor, absl::MakeSpan(kb), &vb));
    for (uint32_t i = 0; i < n; ++i) {
      CHECK(vb[i][cpus - 1] == uint64_t{kb[i]} * 100 + cpus - 1);
      sums[kb[i]] = vb[i].Sum();
    }
  }
  REQUIRE(sums.size() == 40);
  for (auto& [k, s] : sums) CHECK(s == uint64_t{k} * 100 * cpus + uint64_t{cpus} * (cpus - 1) / 2);

  // Lookup-and-delete empties the map.
  BatchCursor drain(pc);
  uint32_t drained = 0;
  while (!drain.done()) drained += MustOk(LookupAndDeleteBatch(pc, &drain, absl::MakeSpan(kb), &vb));
  CHECK(drained == 40);
  CHECK(MustOk(pc.Keys<uint32_t>()).empty());

  // A per-CPU map refuses a plain Span<V>, and a plain map a PerCpuBatch.
  std::vector<uint64_t> flat(16);
  BatchCursor c2(pc);
  auto wrong = LookupBatch(pc, &c2, absl::MakeSpan(kb), absl::MakeSpan(flat));
  CHECK(absl::IsInvalidArgument(wrong.status()));
  CHECK_THAT(std::string(wrong.status().message()), Catch::Contains("PerCpuBatch"));
  Map plain = MustCreate(BPF_MAP_TYPE_HASH, 4, 8, 64, 0, "tbatch_plain");
  BatchCursor c3(plain);
  CHECK(absl::IsInvalidArgument(LookupBatch(plain, &c3, absl::MakeSpan(kb), &vb).status()));
  // A key type of the wrong size is refused before any syscall.
  std::vector<uint64_t> wide_keys(16);
  BatchCursor c4(pc);
  CHECK(absl::IsInvalidArgument(LookupBatch(pc, &c4, absl::MakeSpan(wide_keys), &vb).status()));
}

TEST_CASE("typed batches on a plain hash map: Span<K> and Span<V>", "[map][batch]") {
  Map m = MustCreate(BPF_MAP_TYPE_HASH, 4, 8, 64, 0, "tbatch_hash");
  std::vector<uint32_t> keys = {1, 2, 3, 4, 5};
  std::vector<uint64_t> vals = {10, 20, 30, 40, 50};
  REQUIRE_OK(UpdateBatch<uint32_t, uint64_t>(m, keys, vals));
  std::vector<uint32_t> kb(8);
  std::vector<uint64_t> vb(8);
  BatchCursor cursor(m);
  std::map<uint32_t, uint64_t> got;
  while (!cursor.done()) {
    uint32_t n = MustOk(LookupBatch(m, &cursor, absl::MakeSpan(kb), absl::MakeSpan(vb)));
    for (uint32_t i = 0; i < n; ++i) got[kb[i]] = vb[i];
  }
  CHECK(got == std::map<uint32_t, uint64_t>{{1, 10}, {2, 20}, {3, 30}, {4, 40}, {5, 50}});
  // As many values as keys, as the byte form requires.
  std::vector<uint64_t> short_vals(4);
  BatchCursor c2(m);
  CHECK(absl::IsInvalidArgument(LookupBatch(m, &c2, absl::MakeSpan(kb), absl::MakeSpan(short_vals)).status()));
}
