// The full map API on the live kernel: typed access, batches and their
// per-key fallback, per-CPU values, map-in-map, queue/stack/bloom, mmapable
// arrays, and a create + operation test for every map type.
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

using namespace tether;
using namespace tether::testing;

namespace {

Map MustCreate(uint32_t type, uint32_t key, uint32_t value, uint32_t max, uint32_t flags = 0,
               const std::string& name = "t") {
  MapOptions o;
  o.type = type;
  o.key_size = key;
  o.value_size = value;
  o.max_entries = max;
  o.flags = flags;
  o.name = name;
  auto m = Map::Create(o);
  INFO(m.status().ToString());
  REQUIRE(m.ok());
  return *m;
}

template <typename T>
T MustOk(absl::StatusOr<T> v) {
  INFO(v.status().ToString());
  REQUIRE(v.ok());
  return std::move(*v);
}

#define REQUIRE_OK(...)                        \
  do {                                         \
    absl::Status _st = (__VA_ARGS__);          \
    INFO(_st.ToString());                      \
    REQUIRE(_st.ok());                         \
  } while (0)

bool HasEdge(const Map& from, uint32_t to_id, EdgeKind kind) {
  for (const GraphEdge& e : graph().Edges()) {
    if (e.from == NodeOf(from) && e.to.id == to_id && e.kind == kind) return true;
  }
  return false;
}

}  // namespace

// --- typed access ---------------------------------------------------------------

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

// --- per-CPU ---------------------------------------------------------------------

TEST_CASE("per-CPU values: typed buffers, spans and sums", "[map][percpu]") {
  const uint32_t cpus = PossibleCpus();
  Map raw = MustCreate(BPF_MAP_TYPE_PERCPU_HASH, 4, 4, 8, 0, "pc_hash");
  auto m = MustOk(PerCpuMap<uint32_t, uint32_t>::Bind(raw));
  PerCpuValues<uint32_t> vals = m.MakeValues();
  CHECK(vals.cpus() == cpus);
  CHECK(vals.bytes().size() == raw.value_buffer_size());  // 4 rounded to 8, per CPU
  for (uint32_t c = 0; c < cpus; ++c) vals.Set(c, c + 1);
  REQUIRE_OK(m.Update(7, vals));
  PerCpuValues<uint32_t> back = m.MakeValues();
  REQUIRE_OK(m.Lookup(7, &back));
  for (uint32_t c = 0; c < cpus; ++c) CHECK(back[c] == c + 1);
  CHECK(back.Sum() == cpus * (cpus + 1) / 2);
  CHECK(MustOk(m.Sum(7, &back)) == cpus * (cpus + 1) / 2);
  CHECK(back.Reduce(0u, [](uint32_t a, uint32_t b) { return std::max(a, b); }) == cpus);
  CHECK(SumPerCpu<uint32_t>(back.bytes()) == cpus * (cpus + 1) / 2);

  auto not_percpu = PerCpuMap<uint32_t, uint32_t>::Bind(MustCreate(BPF_MAP_TYPE_HASH, 4, 4, 1));
  CHECK_FALSE(not_percpu.ok());
}

TEST_CASE("per-CPU counter: a program run on each CPU lands in that CPU's slot", "[map][percpu]") {
  Map raw = MustCreate(BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 1, 0, "pc_count");
  Program prog = LoadCounter(raw);
  std::vector<uint32_t> cpus = OnlineCpus();
  std::vector<uint8_t> pkt(64, 0);
  uint64_t expected_total = 0;
  std::map<uint32_t, uint64_t> expected;
  for (uint32_t cpu : cpus) {
    PinToCpu pin(cpu);
    if (!pin.ok()) continue;  // not in our cpuset
    RunOptions o;
    o.data = pkt;
    o.repeat = cpu + 1;  // a distinct count per CPU
    auto r = prog.Run(o);
    REQUIRE(r.ok());
    expected[cpu] = cpu + 1;
    expected_total += cpu + 1;
  }
  REQUIRE_FALSE(expected.empty());
  auto m = MustOk(PerCpuMap<uint32_t, uint64_t>::Bind(raw));
  PerCpuValues<uint64_t> vals = m.MakeValues();
  REQUIRE_OK(m.Lookup(0, &vals));
  for (uint32_t c = 0; c < vals.cpus(); ++c) {
    uint64_t want = expected.count(c) ? expected[c] : 0;
    CHECK(vals[c] == want);
  }
  CHECK(vals.Sum() == expected_total);
}

// --- batches ---------------------------------------------------------------------

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

// --- map-in-map ------------------------------------------------------------------

TEST_CASE("array of maps: set, get, delete, and graph edges", "[map][map_in_map]") {
  Map tmpl = MustCreate(BPF_MAP_TYPE_HASH, 4, 4, 8, 0, "inner_tmpl");
  auto outer = MustOk(ArrayOfMaps::Create("aom", 4, tmpl));
  Map inner = MustCreate(BPF_MAP_TYPE_HASH, 4, 4, 8, 0, "inner1");
  REQUIRE_OK(inner.Update(uint32_t{1}, uint32_t{111}));
  REQUIRE_OK(outer.Set(2, inner));
  CHECK(MustOk(outer.Get(2)) == absl::optional<uint32_t>(inner.id()));
  CHECK(MustOk(outer.Get(1)) == absl::nullopt);
  CHECK(HasEdge(outer.map(), inner.id(), EdgeKind::kInnerMap));
  Map reopened = MustOk(outer.GetMap(2));
  CHECK(reopened.id() == inner.id());
  uint32_t v = 0;
  REQUIRE_OK(reopened.Lookup(uint32_t{1}, &v));
  CHECK(v == 111);

  // A map of another shape is refused with an explanation.
  Map wrong = MustCreate(BPF_MAP_TYPE_ARRAY, 4, 8, 8, 0, "wrong_inner");
  auto st = outer.Set(0, wrong);
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(st.message()), Catch::Contains("aom") && Catch::Contains("template"));

  REQUIRE_OK(outer.Delete(2));
  CHECK(MustOk(outer.Get(2)) == absl::nullopt);
  CHECK_FALSE(HasEdge(outer.map(), inner.id(), EdgeKind::kInnerMap));
  CHECK(outer.Delete(2).code() == absl::StatusCode::kNotFound);
}

TEST_CASE("hash of maps: keys, inner ids and graph edges", "[map][map_in_map]") {
  Map tmpl = MustCreate(BPF_MAP_TYPE_ARRAY, 4, 8, 4, 0, "hom_tmpl");
  struct Key { uint64_t a; uint32_t b; uint32_t c; };
  auto outer = MustOk(HashOfMaps::Create("hom", sizeof(Key), 8, tmpl));
  Map in1 = MustCreate(BPF_MAP_TYPE_ARRAY, 4, 8, 4, 0, "hom_in1");
  Map in2 = MustCreate(BPF_MAP_TYPE_ARRAY, 4, 8, 4, 0, "hom_in2");
  REQUIRE_OK(outer.Set(Key{1, 2, 3}, in1));
  REQUIRE_OK(outer.Set(Key{4, 5, 6}, in2));
  CHECK(MustOk(outer.Get(Key{1, 2, 3})) == absl::optional<uint32_t>(in1.id()));
  CHECK(MustOk(outer.Get(Key{4, 5, 6})) == absl::optional<uint32_t>(in2.id()));
  CHECK(HasEdge(outer.map(), in1.id(), EdgeKind::kInnerMap));
  CHECK(HasEdge(outer.map(), in2.id(), EdgeKind::kInnerMap));
  REQUIRE_OK(outer.Delete(Key{1, 2, 3}));
  CHECK_FALSE(HasEdge(outer.map(), in1.id(), EdgeKind::kInnerMap));
  CHECK(HasEdge(outer.map(), in2.id(), EdgeKind::kInnerMap));
  CHECK(MustOk(outer.Get(Key{1, 2, 3})) == absl::nullopt);
  CHECK(outer.Set(uint32_t{1}, in1).code() == absl::StatusCode::kInvalidArgument);
}

// --- queue, stack, bloom -------------------------------------------------------------

TEST_CASE("queue and stack: push, peek, pop, full, overwrite", "[map][queue]") {
  auto q = MustOk(Queue<uint64_t>::Create("q_api", 3));
  uint64_t v = 0;
  CHECK(q.Pop(&v).code() == absl::StatusCode::kNotFound);
  CHECK(MustOk(q.TryPop(&v)) == false);
  for (uint64_t i : {1, 2, 3}) REQUIRE_OK(q.Push(i));
  auto full = q.Push(4);
  CHECK_FALSE(full.ok());
  CHECK_THAT(std::string(full.message()), Catch::Contains("q_api") && Catch::Contains("push"));
  REQUIRE_OK(q.Push(4, /*overwrite_oldest=*/true));  // drops 1
  REQUIRE_OK(q.Peek(&v));
  CHECK(v == 2);
  std::vector<uint64_t> out;
  while (MustOk(q.TryPop(&v))) out.push_back(v);
  CHECK(out == std::vector<uint64_t>{2, 3, 4});

  auto s = MustOk(Queue<uint32_t>::Create("s_api", 4, /*stack=*/true));
  for (uint32_t i : {1u, 2u, 3u}) REQUIRE_OK(s.Push(i));
  uint32_t top = 0;
  REQUIRE_OK(s.Peek(&top));
  CHECK(top == 3);
  std::vector<uint32_t> sout;
  while (MustOk(s.TryPop(&top))) sout.push_back(top);
  CHECK(sout == std::vector<uint32_t>{3, 2, 1});

  CHECK_FALSE(Queue<uint32_t>::Bind(MustCreate(BPF_MAP_TYPE_QUEUE, 0, 8, 2)).ok());
}

TEST_CASE("bloom filter: added values test present, most others absent", "[map][bloom]") {
  TETHER_REQUIRE_FEATURE("map_type:bloom_filter", probe::HaveMapType(BPF_MAP_TYPE_BLOOM_FILTER));
  auto bf = MustOk(BloomFilter<uint64_t>::Create("bloom_api", 1000, 3));
  for (uint64_t i = 0; i < 100; ++i) REQUIRE_OK(bf.Add(i * 1000003));
  for (uint64_t i = 0; i < 100; ++i) CHECK(MustOk(bf.Test(i * 1000003)));
  int false_positives = 0;
  for (uint64_t i = 0; i < 1000; ++i) false_positives += MustOk(bf.Test(i * 7 + 5000000000ull));
  CHECK(false_positives < 100);
}

// --- mmapable arrays -----------------------------------------------------------------

TEST_CASE("mmapable array: memory and syscalls see the same values", "[map][mmap]") {
  struct Val { uint32_t hits; uint32_t tag; uint32_t pad; };  // 12 bytes: stride 16
  Map m = MustCreate(BPF_MAP_TYPE_ARRAY, 4, sizeof(Val), 300, BPF_F_MMAPABLE, "mmap_arr");
  auto arr = MustOk(MmapArray<Val>::Create(m));
  CHECK(arr.size() == 300);
  arr[7] = Val{70, 7, 0};
  REQUIRE_OK(arr.Set(299, Val{2990, 299, 0}));
  Val v{};
  REQUIRE_OK(m.Lookup(uint32_t{7}, &v));
  CHECK(v.hits == 70);
  CHECK(v.tag == 7);
  REQUIRE_OK(m.Lookup(uint32_t{299}, &v));
  CHECK(v.hits == 2990);
  REQUIRE_OK(m.Update(uint32_t{5}, Val{55, 5, 0}));
  CHECK(arr[5].hits == 55);
  CHECK(arr.Get(300).status().code() == absl::StatusCode::kOutOfRange);

  // A BPF program's increments show up in memory without a syscall.
  Map counters = MustCreate(BPF_MAP_TYPE_ARRAY, 4, 8, 1, BPF_F_MMAPABLE, "mmap_ctr");
  auto ctr = MustOk(MmapArray<uint64_t>::Create(counters));
  Program prog = LoadCounter(counters);
  std::vector<uint8_t> pkt(64, 0);
  RunOptions o;
  o.data = pkt;
  o.repeat = 17;
  REQUIRE(prog.Run(o).ok());
  CHECK(MmapArray<uint64_t>::Atomic(&ctr[0]).load() == 17);

  CHECK_FALSE(MmapArray<uint32_t>::Create(MustCreate(BPF_MAP_TYPE_ARRAY, 4, 4, 1)).ok());
}

TEST_CASE("mmapable array: frozen maps map read-only", "[map][mmap]") {
  Map m = MustCreate(BPF_MAP_TYPE_ARRAY, 4, 8, 4, BPF_F_MMAPABLE, "mmap_frozen");
  {
    auto rw = MustOk(MmapArray<uint64_t>::Create(m));
    rw[1] = 42;
    // Freezing is refused while a writable mapping exists.
    CHECK_FALSE(m.Freeze().ok());
  }
  REQUIRE_OK(m.Freeze());
  auto st = MmapArray<uint64_t>::Create(m).status();
  CHECK(st.code() == absl::StatusCode::kPermissionDenied);
  CHECK_THAT(std::string(st.message()), Catch::Contains("mmap_frozen") && Catch::Contains("read-only"));
  auto ro = MustOk(MmapArray<uint64_t>::Create(m, /*writable=*/false));
  CHECK(ro[1] == 42);
}

// --- every map type ------------------------------------------------------------------

namespace {

// A BTF blob with one type, [1] int (4 bytes), for the local-storage maps,
// which insist on BTF for their key and value.
sys::Fd LoadIntBtf() {
  struct {
    btf_header hdr;
    uint32_t type[4];
    char strings[5];
  } __attribute__((packed)) blob{};
  blob.hdr.magic = BTF_MAGIC;
  blob.hdr.version = BTF_VERSION;
  blob.hdr.hdr_len = sizeof(btf_header);
  blob.hdr.type_off = 0;
  blob.hdr.type_len = sizeof(blob.type);
  blob.hdr.str_off = sizeof(blob.type);
  blob.hdr.str_len = sizeof(blob.strings);
  blob.type[0] = 1;                       // name_off: "int"
  blob.type[1] = BTF_KIND_INT << 24;      // info
  blob.type[2] = 4;                       // size
  blob.type[3] = (BTF_INT_SIGNED << 24) | 32;
  memcpy(blob.strings, "\0int", 5);
  auto r = sys::BtfLoad(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&blob), sizeof(blob)));
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return std::move(r->fd);
}

struct TypeCase {
  uint32_t type;
  uint32_t key, value, max, flags;
  // The operation that shows the map works; gets the map.
  std::function<void(const Map&)> op;
  bool needs_btf = false;
  uint64_t map_extra = 0;
};

void ExpectEmptyNextKey(const Map& m) {
  std::vector<uint8_t> next(std::max<uint32_t>(m.key_size(), 1));
  auto more = m.NextKey(nullptr, next.data());
  INFO(more.status().ToString());
  REQUIRE(more.ok());
  CHECK_FALSE(*more);
}

void ExpectArrayNextKey(const Map& m) {
  uint32_t next = 99;
  auto more = m.NextKey(static_cast<const uint32_t*>(nullptr), &next);
  INFO(more.status().ToString());
  REQUIRE(more.ok());
  CHECK(*more);
  CHECK(next == 0);
}

// Local storage maps are keyed from user space by an fd of the owner: a
// socket, a file, a pidfd, a cgroup directory.
void ExpectFdKeyedRoundTrip(const Map& m, int owner_fd) {
  sys::Fd owner(owner_fd);
  REQUIRE(owner.valid());
  int32_t key = owner.get();
  REQUIRE_OK(m.Update(key, int32_t{1234}));
  int32_t v = 0;
  REQUIRE_OK(m.Lookup(key, &v));
  CHECK(v == 1234);
  REQUIRE_OK(m.Delete(key));
}

// Where cgroup v2 is mounted ("" if nowhere), from /proc/self/mountinfo.
std::string Cgroup2Mount() {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // "... mount_point options - fstype source ..."
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() > 4 && dash != f.end() && dash + 1 != f.end() && *(dash + 1) == "cgroup2") return f[4];
  }
  return "";
}

void ExpectRoundTrip(const Map& m) {
  std::vector<uint8_t> key(m.key_size(), 0), value(m.value_buffer_size(), 0x5a), back(m.value_buffer_size());
  key[0] = m.type() == BPF_MAP_TYPE_LPM_TRIE ? 8 : 1;  // LPM: the prefix length
  REQUIRE_OK(m.Update(key, value));
  REQUIRE_OK(m.Lookup(key, absl::MakeSpan(back)));
  CHECK(back == value);
}

}  // namespace

TEST_CASE("every map type the kernel has: create and one live operation", "[map][types]") {
  const unsigned lo = if_nametoindex("lo");
  Map inner_tmpl = MustCreate(BPF_MAP_TYPE_ARRAY, 4, 4, 1, 0, "tmpl");
  sys::Fd btf = LoadIntBtf();
  std::vector<TypeCase> cases = {
      {BPF_MAP_TYPE_HASH, 4, 8, 4, 0, ExpectRoundTrip},
      {BPF_MAP_TYPE_ARRAY, 4, 8, 4, 0, ExpectRoundTrip},
      {BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 4, 0, ExpectArrayNextKey},
      {BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 4, 0, ExpectArrayNextKey},
      {BPF_MAP_TYPE_PERCPU_HASH, 4, 8, 4, 0, ExpectRoundTrip},
      {BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 4, 0, ExpectRoundTrip},
      {BPF_MAP_TYPE_STACK_TRACE, 4, 8 * 16, 4, 0, ExpectEmptyNextKey},
      {BPF_MAP_TYPE_CGROUP_ARRAY, 4, 4, 4, 0, ExpectArrayNextKey},
      {BPF_MAP_TYPE_LRU_HASH, 4, 8, 4, 0, ExpectRoundTrip},
      {BPF_MAP_TYPE_LRU_PERCPU_HASH, 4, 8, 4, 0, ExpectRoundTrip},
      {BPF_MAP_TYPE_LPM_TRIE, 8, 8, 4, BPF_F_NO_PREALLOC, ExpectRoundTrip},
      {BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 4, 0,
       [&](const Map& m) {
         auto aom = MustOk(ArrayOfMaps::FromMap(m));
         REQUIRE_OK(aom.Set(1, inner_tmpl));
         CHECK(MustOk(aom.Get(1)) == absl::optional<uint32_t>(inner_tmpl.id()));
         REQUIRE_OK(aom.Delete(1));
       }},
      {BPF_MAP_TYPE_HASH_OF_MAPS, 4, 4, 4, 0,
       [&](const Map& m) {
         auto hom = MustOk(HashOfMaps::FromMap(m));
         REQUIRE_OK(hom.Set(uint32_t{9}, inner_tmpl));
         CHECK(MustOk(hom.Get(uint32_t{9})) == absl::optional<uint32_t>(inner_tmpl.id()));
         REQUIRE_OK(hom.Delete(uint32_t{9}));
       }},
      {BPF_MAP_TYPE_DEVMAP, 4, 4, 4, 0,
       [&](const Map& m) {
         REQUIRE_OK(m.Update(uint32_t{0}, uint32_t{lo}));
         uint32_t v = 0;
         REQUIRE_OK(m.Lookup(uint32_t{0}, &v));
         CHECK(v == lo);
       }},
      {BPF_MAP_TYPE_SOCKMAP, 4, 4, 4, 0, ExpectArrayNextKey},
      {BPF_MAP_TYPE_CPUMAP, 4, 4, 4, 0,
       [&](const Map& m) {
         REQUIRE_OK(m.Update(uint32_t{0}, uint32_t{192}));  // queue size
         uint32_t v = 0;
         REQUIRE_OK(m.Lookup(uint32_t{0}, &v));
         CHECK(v == 192);
       }},
      {BPF_MAP_TYPE_XSKMAP, 4, 4, 4, 0, ExpectArrayNextKey},
      {BPF_MAP_TYPE_SOCKHASH, 4, 4, 4, 0, ExpectEmptyNextKey},
      {BPF_MAP_TYPE_CGROUP_STORAGE, sizeof(bpf_cgroup_storage_key), 8, 0, 0, ExpectEmptyNextKey},
      {BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, 4, 4, 4, 0, ExpectArrayNextKey},
      {BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE, sizeof(bpf_cgroup_storage_key), 8, 0, 0, ExpectEmptyNextKey},
      {BPF_MAP_TYPE_QUEUE, 0, 4, 4, 0,
       [](const Map& m) {
         auto q = MustOk(Queue<uint32_t>::Bind(m));
         REQUIRE_OK(q.Push(5));
         uint32_t v = 0;
         REQUIRE_OK(q.Pop(&v));
         CHECK(v == 5);
       }},
      {BPF_MAP_TYPE_STACK, 0, 4, 4, 0,
       [](const Map& m) {
         auto s = MustOk(Queue<uint32_t>::Bind(m));
         REQUIRE_OK(s.Push(6));
         uint32_t v = 0;
         REQUIRE_OK(s.Peek(&v));
         CHECK(v == 6);
       }},
      {BPF_MAP_TYPE_SK_STORAGE, 4, 4, 0, BPF_F_NO_PREALLOC,
       [](const Map& m) { ExpectFdKeyedRoundTrip(m, socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)); },
       true},
      {BPF_MAP_TYPE_DEVMAP_HASH, 4, 4, 4, 0,
       [&](const Map& m) {
         REQUIRE_OK(m.Update(uint32_t{77}, uint32_t{lo}));
         uint32_t v = 0;
         REQUIRE_OK(m.Lookup(uint32_t{77}, &v));
         CHECK(v == lo);
       }},
      {BPF_MAP_TYPE_RINGBUF, 0, 0, 4096, 0,
       [](const Map& m) {
         auto r = MustOk(RingBufferReader::Create());
         MustOk(r->Add(m, [](absl::Span<const uint8_t>) {}));
         CHECK(r->AvailableBytes(0) == 0);
       }},
      {BPF_MAP_TYPE_INODE_STORAGE, 4, 4, 0, BPF_F_NO_PREALLOC,
       [](const Map& m) { ExpectFdKeyedRoundTrip(m, open("/proc/self/exe", O_RDONLY | O_CLOEXEC)); },
       true},
      {BPF_MAP_TYPE_TASK_STORAGE, 4, 4, 0, BPF_F_NO_PREALLOC,
       [](const Map& m) {
         ExpectFdKeyedRoundTrip(m, static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0)));
       },
       true},
      {BPF_MAP_TYPE_BLOOM_FILTER, 0, 8, 16, 0,
       [](const Map& m) {
         auto bf = MustOk(BloomFilter<uint64_t>::Bind(m));
         REQUIRE_OK(bf.Add(3));
         CHECK(MustOk(bf.Test(3)));
       }},
      {BPF_MAP_TYPE_USER_RINGBUF, 0, 0, 4096, 0,
       [](const Map& m) {
         // The producer side is user space: its pages map writable.
         void* p = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, m.fd(), 0);
         REQUIRE(p != MAP_FAILED);
         munmap(p, 4096);
       }},
      {sys::uapi::kMapTypeCgrpStorage, 4, 4, 0, BPF_F_NO_PREALLOC,
       [](const Map& m) {
         std::string cg = Cgroup2Mount();
         if (cg.empty()) TETHER_SKIP_OR_FAIL("no cgroup2 mount to key cgrp_storage by");
         ExpectFdKeyedRoundTrip(m, open(cg.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
       },
       true},
      {sys::uapi::kMapTypeArena, 0, 0, 4, BPF_F_MMAPABLE,
       [](const Map& m) {
         // An arena is pages of memory shared with programs; map and touch one.
         long page = sysconf(_SC_PAGESIZE);
         void* p = mmap(nullptr, 4 * page, PROT_READ | PROT_WRITE, MAP_SHARED, m.fd(), 0);
         REQUIRE(p != MAP_FAILED);
         static_cast<volatile uint8_t*>(p)[0] = 1;
         CHECK(static_cast<volatile uint8_t*>(p)[0] == 1);
         munmap(p, 4 * page);
       }},
  };
  // STRUCT_OPS needs a kernel struct_ops type from vmlinux BTF: see the
  // test case below.
  for (const TypeCase& c : cases) {
    const char* name = MapTypeName(c.type);
    DYNAMIC_SECTION(name) {
      TETHER_REQUIRE_FEATURE(absl::StrCat("map_type:", name), probe::HaveMapType(c.type));
      MapOptions o;
      o.type = c.type;
      o.key_size = c.key;
      o.value_size = c.value;
      o.max_entries = c.max;
      o.flags = c.flags;
      o.map_extra = c.map_extra;
      o.name = std::string("ty_") + name;
      if (o.name.size() > 15) o.name.resize(15);
      if (c.type == BPF_MAP_TYPE_ARRAY_OF_MAPS || c.type == BPF_MAP_TYPE_HASH_OF_MAPS)
        o.inner_map = &inner_tmpl;
      if (c.needs_btf) {
        o.btf_fd = btf.get();
        o.btf_key_type_id = 1;
        o.btf_value_type_id = 1;
      }
      auto m = Map::Create(o);
      INFO(m.status().ToString());
      REQUIRE(m.ok());
      CHECK(m->type() == c.type);
      CHECK(m->id() > 0);
      c.op(*m);
    }
  }
}

TEST_CASE("a struct_ops map of a vmlinux struct_ops type: create and look up its state",
          "[map][types][struct_ops]") {
  auto vmlinux = Btf::LoadKernel();
  REQUIRE(vmlinux.ok());
  // The kernel's wrapper of tcp_congestion_ops: refcount and state first,
  // then the ops themselves (CONFIG_BPF_JIT and TCP are on every CI kernel).
  auto value_type = vmlinux->FindByNameKind("bpf_struct_ops_tcp_congestion_ops", BtfKind::kStruct);
  REQUIRE(value_type.has_value());
  auto size = vmlinux->SizeOf(*value_type);
  REQUIRE(size.ok());
  MapOptions o;
  o.type = BPF_MAP_TYPE_STRUCT_OPS;
  o.key_size = 4;
  o.value_size = static_cast<uint32_t>(*size);
  o.max_entries = 1;
  o.name = "ty_struct_ops";
  o.btf_vmlinux_value_type_id = *value_type;
  // The kernel wants the loading object's own BTF too, even though the
  // value's type is vmlinux's: without btf_fd it answers EINVAL.
  sys::Fd object_btf = LoadIntBtf();
  o.btf_fd = object_btf.get();
  auto m = Map::Create(o);
  INFO(m.status().ToString());
  REQUIRE(m.ok());
  CHECK(m->type() == BPF_MAP_TYPE_STRUCT_OPS);
  CHECK(m->value_size() == *size);
  // Nothing is registered yet: the state word (after the refcount) reads
  // BPF_STRUCT_OPS_STATE_INIT, 0.
  std::vector<uint8_t> value(*size, 0xff);
  REQUIRE_OK(m->Lookup(std::vector<uint8_t>(4, 0), absl::MakeSpan(value)));
  uint32_t state = 0xffffffff;
  memcpy(&state, value.data() + 4, sizeof(state));
  CHECK(state == 0);
  // Without the object's BTF, tether says what is missing before the
  // kernel's bare EINVAL.
  MapOptions no_btf = o;
  no_btf.btf_fd = -1;
  auto refused = Map::Create(no_btf);
  CHECK_FALSE(refused.ok());
  CHECK_THAT(std::string(refused.status().message()), Catch::Contains("struct_ops needs btf_fd"));
  // The kernel accepts only the exact size of that type.
  MapOptions wrong = o;
  wrong.value_size = o.value_size + 8;
  wrong.name = "ty_struct_bad";
  auto bad = Map::Create(wrong);
  CHECK_FALSE(bad.ok());
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("ty_struct_bad") && Catch::Contains("BPF_MAP_CREATE"));
}
