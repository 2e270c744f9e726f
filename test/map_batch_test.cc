// Batch operations (map_batch.h) and their per-key fallback.
#include <linux/btf.h>
#include <fcntl.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/mman.h>

#include <cstring>
#include <fstream>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "map_test_programs.h"
#include "sys/bpf.h"
#include "test_support.h"
#include "tether/bloom_filter.h"
#include "tether/btf.h"
#include "tether/graph.h"
#include "tether/map.h"
#include "tether/map_batch.h"
#include "tether/map_in_map.h"
#include "tether/mmap_array.h"
#include "tether/percpu.h"
#include "tether/perf_reader.h"
#include "tether/probe.h"
#include "tether/ringbuf.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tether/queue.h"
#include "tether/typed_map.h"
#include "map_test_support.h"

using namespace tether;
using namespace tether::testing;

TEST_CASE("batch update, lookup, lookup-and-delete and delete on a hash", "[map][batch]") {
  constexpr uint32_t kN = 10000;
  Map m = MustCreate(BPF_MAP_TYPE_HASH, 4, 8, kN, 0, "batch_hash");
  std::vector<uint32_t> keys(kN);
  std::vector<uint64_t> vals(kN);
  for (uint32_t i = 0; i < kN; ++i) {
    keys[i] = i * 7 + 1;
    vals[i] = uint64_t{i} << 32 | i;
  }
  uint32_t done = 0;
  REQUIRE_OK(UpdateBatch<uint32_t, uint64_t>(m, keys, vals, UpdateFlag::kNoExist, &done));
  CHECK(done == kN);
  // NOEXIST on existing keys fails on the first and says how far it got.
  auto st = UpdateBatch<uint32_t, uint64_t>(m, absl::MakeConstSpan(keys).subspan(0, 3),
                                            absl::MakeConstSpan(vals).subspan(0, 3),
                                            UpdateFlag::kNoExist, &done);
  CHECK(st.code() == absl::StatusCode::kAlreadyExists);
  CHECK_THAT(std::string(st.message()), Catch::Contains("batch_hash") && Catch::Contains("update_batch"));
  CHECK(done == 0);

  for (uint32_t batch : {1u, 7u, 128u, 4096u}) {
    std::map<uint32_t, uint64_t> seen;
    size_t batches = 0;
    REQUIRE_OK((ForEachBatch<uint32_t, uint64_t>(m, batch, [&](absl::Span<const uint32_t> k,
                                                              absl::Span<const uint64_t> v) {
      ++batches;
      for (size_t i = 0; i < k.size(); ++i) seen[k[i]] = v[i];
    })));
    INFO("batch size " << batch);
    REQUIRE(seen.size() == kN);
    for (uint32_t i = 0; i < kN; ++i) CHECK(seen[keys[i]] == vals[i]);
    if (batch >= 128) CHECK(batches < kN / 32);
  }

  // Low-level form with a cursor: the batches are what the caller sized.
  {
    BatchCursor cursor(m);
    std::vector<uint32_t> kb(500);
    std::vector<uint64_t> vb(500);
    size_t total = 0;
    while (!cursor.done()) {
      uint32_t n = MustOk(LookupBatch(m, &cursor, detail::AsBytes(kb), detail::AsBytes(vb)));
      CHECK(n <= 500);
      total += n;
    }
    CHECK(total == kN);
    CHECK_FALSE(cursor.per_key());
    // Wrong buffer shapes are explained.
    BatchCursor c2(m);
    std::vector<uint64_t> short_vals(3);
    auto bad = LookupBatch(m, &c2, detail::AsBytes(kb), detail::AsBytes(short_vals));
    CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(bad.status().message()), Catch::Contains("batch_hash"));
  }

  // Delete the first half in one batch, drain the rest.
  REQUIRE_OK(DeleteBatch<uint32_t>(m, absl::MakeConstSpan(keys).subspan(0, kN / 2), &done));
  CHECK(done == kN / 2);
  st = DeleteBatch<uint32_t>(m, absl::MakeConstSpan(keys).subspan(0, 1));
  CHECK(st.code() == absl::StatusCode::kNotFound);
  std::set<uint32_t> drained;
  REQUIRE_OK((ForEachBatch<uint32_t, uint64_t>(
      m, 256,
      [&](absl::Span<const uint32_t> k, absl::Span<const uint64_t>) { drained.insert(k.begin(), k.end()); },
      BatchMode::kLookupAndDelete)));
  CHECK(drained.size() == kN / 2);
  CHECK(drained == std::set<uint32_t>(keys.begin() + kN / 2, keys.end()));
  auto left = MustOk(TypedMap<uint32_t, uint64_t>::Bind(m)).Keys();
  CHECK(MustOk(std::move(left)).empty());
}

TEST_CASE("batch lookup on arrays and per-CPU hashes", "[map][batch][percpu]") {
  Map arr = MustCreate(BPF_MAP_TYPE_ARRAY, 4, 4, 100, 0, "batch_arr");
  for (uint32_t i = 0; i < 100; ++i) REQUIRE_OK(arr.Update(i, i * i));
  std::vector<uint32_t> got(100, ~0u);
  REQUIRE_OK((ForEachBatch<uint32_t, uint32_t>(arr, 33, [&](absl::Span<const uint32_t> k,
                                                           absl::Span<const uint32_t> v) {
    for (size_t i = 0; i < k.size(); ++i) got[k[i]] = v[i];
  })));
  for (uint32_t i = 0; i < 100; ++i) CHECK(got[i] == i * i);

  const uint32_t cpus = PossibleCpus();
  Map pc = MustCreate(BPF_MAP_TYPE_PERCPU_HASH, 4, 8, 64, 0, "batch_pc");
  PerCpuValues<uint64_t> vals;
  std::vector<uint8_t> all_vals;
  std::vector<uint32_t> keys;
  for (uint32_t k = 0; k < 50; ++k) {
    for (uint32_t c = 0; c < cpus; ++c) vals.Set(c, uint64_t{k} * 1000 + c);
    keys.push_back(k);
    all_vals.insert(all_vals.end(), vals.bytes().begin(), vals.bytes().end());
  }
  REQUIRE_OK(UpdateBatch(pc, detail::AsBytes(absl::MakeConstSpan(keys)), all_vals));
  // Typed batches refuse per-CPU maps and say why.
  auto typed = ForEachBatch<uint32_t, uint64_t>(pc, 8, [](auto, auto) {});
  CHECK_THAT(std::string(typed.message()), Catch::Contains("per-CPU"));

  BatchCursor cursor(pc);
  std::vector<uint32_t> kb(16);
  std::vector<uint8_t> vb(16 * pc.value_buffer_size());
  std::map<uint32_t, uint64_t> sums;
  while (!cursor.done()) {
    uint32_t n = MustOk(LookupBatch(pc, &cursor, detail::AsBytes(kb), absl::MakeSpan(vb)));
    for (uint32_t i = 0; i < n; ++i) {
      PerCpuSpan<uint64_t> span(absl::MakeConstSpan(vb).subspan(i * pc.value_buffer_size(),
                                                                pc.value_buffer_size()),
                                cpus);
      CHECK(span[cpus - 1] == uint64_t{kb[i]} * 1000 + cpus - 1);
      sums[kb[i]] = span.Sum();
    }
  }
  REQUIRE(sums.size() == 50);
  for (auto& [k, s] : sums) CHECK(s == uint64_t{k} * 1000 * cpus + uint64_t{cpus} * (cpus - 1) / 2);
}

TEST_CASE("batches fall back to per-key calls when the kernel refuses them", "[map][batch]") {
  // LPM tries gained batch ops late (generic ones); either way the API
  // serves them.
  struct LpmKey { uint32_t prefixlen; uint8_t addr[4]; };
  Map trie = MustCreate(BPF_MAP_TYPE_LPM_TRIE, sizeof(LpmKey), 4, 64, BPF_F_NO_PREALLOC, "batch_trie");
  std::vector<LpmKey> keys;
  std::vector<uint32_t> vals;
  for (uint8_t i = 0; i < 40; ++i) {
    keys.push_back(LpmKey{24, {10, 0, i, 0}});
    vals.push_back(i);
  }
  REQUIRE_OK(UpdateBatch<LpmKey, uint32_t>(trie, keys, vals));
  BatchCursor cursor(trie);
  std::vector<LpmKey> kb(16);
  std::vector<uint32_t> vb(16);
  std::set<uint32_t> seen;
  while (!cursor.done()) {
    uint32_t n = MustOk(LookupBatch(trie, &cursor, detail::AsBytes(kb), detail::AsBytes(vb)));
    for (uint32_t i = 0; i < n; ++i) {
      CHECK(kb[i].addr[2] == vb[i]);
      seen.insert(vb[i]);
    }
  }
  CHECK(seen.size() == 40);
  REQUIRE_OK(DeleteBatch<LpmKey>(trie, absl::MakeConstSpan(keys).subspan(0, 10)));
  std::set<uint32_t> drained;
  REQUIRE_OK((ForEachBatch<LpmKey, uint32_t>(
      trie, 8, [&](auto, absl::Span<const uint32_t> v) { drained.insert(v.begin(), v.end()); },
      BatchMode::kLookupAndDelete)));
  CHECK(drained.size() == 30);

  // A device map has no batch ops: the kernel answers ENOTSUPP.
  Map devmap = MustCreate(BPF_MAP_TYPE_DEVMAP, 4, 4, 8, 0, "batch_devmap");
  const uint32_t lo = if_nametoindex("lo");
  for (uint32_t i = 0; i < 5; ++i) REQUIRE_OK(devmap.Update(i, lo));
  BatchCursor dc(devmap);
  std::vector<uint32_t> dk(3), dv(3);
  std::vector<uint32_t> dev_keys;
  while (!dc.done()) {
    uint32_t n = MustOk(LookupBatch(devmap, &dc, detail::AsBytes(dk), detail::AsBytes(dv)));
    for (uint32_t i = 0; i < n; ++i) {
      CHECK(dv[i] == lo);
      dev_keys.push_back(dk[i]);
    }
  }
  CHECK(dc.per_key());
  CHECK(dev_keys == std::vector<uint32_t>{0, 1, 2, 3, 4});
  std::vector<uint32_t> del = {1, 3};
  REQUIRE_OK(DeleteBatch<uint32_t>(devmap, del));
  uint32_t v = 0;
  CHECK(devmap.Lookup(uint32_t{1}, &v).code() == absl::StatusCode::kNotFound);
  REQUIRE_OK(devmap.Lookup(uint32_t{2}, &v));

  // A kernel older than the batch commands says EINVAL: simulate it.
  Map hash = MustCreate(BPF_MAP_TYPE_HASH, 4, 4, 64, 0, "old_kernel");
  std::vector<uint32_t> hk = {1, 2, 3, 4, 5}, hv = {10, 20, 30, 40, 50};
  sys::testing::InjectFault(1, EINVAL);
  REQUIRE_OK(UpdateBatch<uint32_t, uint32_t>(hash, hk, hv));
  sys::testing::ClearFault();
  CHECK(MustOk(TypedMap<uint32_t, uint32_t>::Bind(hash)).Get(3).value() == 30);
  BatchCursor hc(hash);
  std::vector<uint32_t> kb2(2), vb2(2);
  std::map<uint32_t, uint32_t> got;
  sys::testing::InjectFault(1, EINVAL);
  while (!hc.done()) {
    uint32_t n = MustOk(LookupBatch(hash, &hc, detail::AsBytes(kb2), detail::AsBytes(vb2)));
    for (uint32_t i = 0; i < n; ++i) got[kb2[i]] = vb2[i];
  }
  sys::testing::ClearFault();
  CHECK(hc.per_key());
  CHECK(got == std::map<uint32_t, uint32_t>{{1, 10}, {2, 20}, {3, 30}, {4, 40}, {5, 50}});
}
