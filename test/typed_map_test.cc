// TypedMap (typed_map.h): typed element operations and key iteration.
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

TEST_CASE("TypedMap binds once and does every element op", "[map][typed]") {
  Map raw = MustCreate(BPF_MAP_TYPE_HASH, 4, 8, 64, 0, "typed");
  struct Wrong { uint8_t b[3]; };
  auto bad = TypedMap<uint32_t, Wrong>::Bind(raw);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("typed") && Catch::Contains("value_size 8"));

  auto m = MustOk(TypedMap<uint32_t, uint64_t>::Bind(raw));
  uint64_t v = 0;
  CHECK(MustOk(m.Find(1, &v)) == false);
  auto st = m.Lookup(1, &v);
  CHECK(st.code() == absl::StatusCode::kNotFound);
  CHECK_THAT(std::string(st.message()), Catch::Contains("typed") && Catch::Contains("ENOENT") &&
                                            Catch::Contains("lookup"));
  REQUIRE_OK(m.Insert(1, 10));
  CHECK(m.Insert(1, 11).code() == absl::StatusCode::kAlreadyExists);
  CHECK(m.Replace(2, 20).code() == absl::StatusCode::kNotFound);
  REQUIRE_OK(m.Replace(1, 12));
  REQUIRE_OK(m.Update(2, 20, UpdateFlag::kAny));
  CHECK(MustOk(m.Get(1)) == 12);
  CHECK(MustOk(m.Find(2, &v)) == true);
  CHECK(v == 20);
  REQUIRE_OK(m.LookupAndDelete(2, &v));
  CHECK(v == 20);
  CHECK(MustOk(m.Find(2, &v)) == false);
  REQUIRE_OK(m.Delete(1));
  CHECK(m.Delete(1).code() == absl::StatusCode::kNotFound);

  for (uint32_t k = 0; k < 20; ++k) REQUIRE_OK(m.Update(k, uint64_t{k} * 3));
  std::map<uint32_t, uint64_t> seen;
  REQUIRE_OK(m.ForEach([&](const uint32_t& k, const uint64_t& val) { seen[k] = val; }));
  REQUIRE(seen.size() == 20);
  for (auto& [k, val] : seen) CHECK(val == uint64_t{k} * 3);
  // Early stop.
  int visited = 0;
  REQUIRE_OK(m.ForEachKey([&](const uint32_t&) { return ++visited < 5; }));
  CHECK(visited == 5);

  // Per-CPU maps are refused with a pointer to the right wrapper.
  Map pc = MustCreate(BPF_MAP_TYPE_PERCPU_HASH, 4, 8, 4, 0, "pc");
  auto wrong_kind = TypedMap<uint32_t, uint64_t>::Bind(pc);
  REQUIRE_FALSE(wrong_kind.ok());
  CHECK_THAT(std::string(wrong_kind.status().message()), Catch::Contains("PerCpuMap"));
}

TEST_CASE("key iteration survives concurrent deletion and sees every survivor", "[map][typed][concurrency]") {
  constexpr uint32_t kKeys = 10000;
  Map raw = MustCreate(BPF_MAP_TYPE_HASH, 4, 4, kKeys, 0, "iter_del");
  auto m = MustOk(TypedMap<uint32_t, uint32_t>::Bind(raw));
  for (int round = 0; round < 3; ++round) {
    std::vector<uint32_t> keys(kKeys), vals(kKeys);
    for (uint32_t k = 0; k < kKeys; ++k) keys[k] = vals[k] = k;
    REQUIRE_OK(UpdateBatch<uint32_t, uint32_t>(raw, keys, vals));

    // Odd keys go away while the walk runs; even keys stay throughout.
    std::atomic<bool> go{false};
    std::thread deleter([&] {
      while (!go.load()) std::this_thread::yield();
      for (uint32_t k = 1; k < kKeys; k += 2) (void)m.Delete(k);
    });
    std::set<uint32_t> seen;
    size_t visits = 0;
    absl::Status st = m.ForEachKey([&](const uint32_t& k) {
      if (visits++ == 100) go.store(true);
      seen.insert(k);
    });
    go.store(true);
    deleter.join();
    INFO(st.ToString());
    REQUIRE(st.ok());
    for (uint32_t k = 0; k < kKeys; k += 2) {
      if (!seen.count(k)) FAIL("surviving key " << k << " was not visited");
    }
    // Duplicates are allowed after a restart, but the walk stays bounded.
    CHECK(visits < size_t{kKeys} * 64);
    CHECK(MustOk(m.Keys()).size() == kKeys / 2);
  }
}
