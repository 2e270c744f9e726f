// Queue, stack, bloom filter and cgroup array maps with a program on one
// end and user space on the other (test/bpf/value_maps.bpf.c): what the
// program pushes, user space pops in the map's order and the other way
// round; values user space adds, the program finds; counters reached
// through the inner map user space set in a hash of maps; the program sees
// whether its caller is in the cgroup user space put in the array.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include "link_fixtures.h"
#include "test_support.h"
#include "tether/bloom_filter.h"
#include "tether/collection.h"
#include "tether/map_in_map.h"
#include "tether/percpu.h"
#include "tether/queue.h"

using namespace tether;
using namespace tether::testing;

namespace {

CollectionSpec Spec() {
  auto spec = CollectionSpec::FromFile(BpfObjectPath("value_maps"));
  REQUIRE_OK(spec);
  return std::move(*spec);
}

uint32_t RunWith(const Program& p, uint64_t value) {
  std::vector<uint8_t> pkt(14 + 8 + 16, 0);
  memcpy(pkt.data() + 14, &value, sizeof(value));
  RunOptions o;
  o.data = pkt;
  auto r = p.Run(o);
  REQUIRE_OK(r);
  return r->return_value;
}

}  // namespace

TEST_CASE("queue and stack: a program pushes, user space pops in order, and back", "[map][queue]") {
  CollectionSpec spec = Spec();
  Map fifo, lifo;
  Program push, pop;
  REQUIRE_OK(LoadAndAssign(spec, {{{"fifo", &fifo}, {"lifo", &lifo}},
                                  {{"push_both", &push}, {"pop_fifo", &pop}}}));
  for (uint64_t v : {11, 22, 33}) CHECK(RunWith(push, v) == 0);
  auto q = Queue<uint64_t>::Bind(fifo);
  auto s = Queue<uint64_t>::Bind(lifo);
  REQUIRE_OK(q);
  REQUIRE_OK(s);
  std::vector<uint64_t> from_q, from_s;
  uint64_t v = 0;
  while (*q->TryPop(&v)) from_q.push_back(v);
  while (*s->TryPop(&v)) from_s.push_back(v);
  CHECK(from_q == std::vector<uint64_t>{11, 22, 33});
  CHECK(from_s == std::vector<uint64_t>{33, 22, 11});

  // A full queue refuses the program's push (the helper's -E2BIG).
  for (uint64_t i = 0; i < 8; ++i) REQUIRE_OK(q->Push(100 + i));
  CHECK(RunWith(push, 1) == 2);
  // The program pops what user space pushed, oldest first, then finds it
  // empty.
  for (uint64_t i = 0; i < 8; ++i) CHECK(RunWith(pop, 0) == 100 + i);
  CHECK(RunWith(pop, 0) == 0xffffffffu);
}

TEST_CASE("bloom filter: values user space adds, the program finds", "[map][bloom]") {
  CollectionSpec spec = Spec();
  Map seen;
  Program test;
  REQUIRE_OK(LoadAndAssign(spec, {{{"seen", &seen}}, {{"bloom_test", &test}}}));
  auto bf = BloomFilter<uint64_t>::Bind(seen);
  REQUIRE_OK(bf);
  for (uint64_t v = 0; v < 20; ++v) REQUIRE_OK(bf->Add(v * 7919));
  for (uint64_t v = 0; v < 20; ++v) CHECK(RunWith(test, v * 7919) == 1);  // no false negatives
  int false_positives = 0;
  for (uint64_t v = 0; v < 200; ++v) false_positives += RunWith(test, 1000003 + v);
  CHECK(false_positives < 40);
}

TEST_CASE("hash, percpu_hash, lru_hash, lru_percpu_hash: a program counts keys, full maps differ",
          "[map][hash]") {
  CollectionSpec spec = Spec();
  Map plain, percpu, lru, lru_percpu;
  Program count;
  REQUIRE_OK(LoadAndAssign(spec, {{{"plain_hash", &plain},
                                   {"percpu_hash", &percpu},
                                   {"lru_hash", &lru},
                                   {"lru_percpu_hash", &lru_percpu}},
                                  {{"count_keys", &count}}}));
  for (uint64_t k : {1, 2, 2, 3, 3, 3}) CHECK(RunWith(count, k) == 0);
  auto sums = [](const Map& m) {
    std::map<uint64_t, uint64_t> out;
    auto keys = m.Keys<uint64_t>();
    REQUIRE_OK(keys);
    for (uint64_t k : *keys) {
      uint64_t v = 0;
      if (IsPerCpuMapType(m.type())) {
        auto pc = PerCpuMap<uint64_t, uint64_t>::Bind(m);
        REQUIRE_OK(pc);
        PerCpuValues<uint64_t> vals = pc->MakeValues();
        REQUIRE_OK(pc->Lookup(k, &vals));
        v = vals.Sum();
      } else {
        REQUIRE_OK(m.Lookup(k, &v));
      }
      out[k] = v;
    }
    return out;
  };
  const std::map<uint64_t, uint64_t> want = {{1, 1}, {2, 2}, {3, 3}};
  for (const Map* m : {&plain, &percpu, &lru, &lru_percpu}) {
    INFO(m->name());
    CHECK(sums(*m) == want);
  }
  // Past max_entries (4) a hash refuses new keys; an LRU hash makes room by
  // evicting, so the newest key is there.
  for (uint64_t k = 10; k < 20; ++k) CHECK(RunWith(count, k) == 0);
  auto full = sums(plain);
  CHECK(full.size() == 4);
  CHECK(full.count(10) == 1);
  CHECK(full.count(19) == 0);
  for (const Map* m : {&lru, &lru_percpu}) {
    INFO(m->name());
    auto evicted = sums(*m);
    CHECK(evicted.size() <= 4);
    CHECK(evicted.count(19) == 1);
    CHECK(evicted[19] == 1);
  }
}

TEST_CASE("hash of maps: a program counts through the inner map that user space put at a key",
          "[map][map_in_map]") {
  CollectionSpec spec = Spec();
  Map tenants;
  Program count;
  REQUIRE_OK(LoadAndAssign(spec, {{{"tenants", &tenants}}, {{"count_tenant", &count}}}));
  auto outer = HashOfMaps::FromMap(tenants);
  REQUIRE_OK(outer);
  MapOptions o;
  o.type = BPF_MAP_TYPE_ARRAY;
  o.key_size = 4;
  o.value_size = 8;
  o.max_entries = 1;
  o.name = "tenant_a";
  auto a = Map::Create(o);
  o.name = "tenant_b";
  auto b = Map::Create(o);
  REQUIRE_OK(a);
  REQUIRE_OK(b);
  REQUIRE_OK(outer->Set(uint64_t{1001}, *a));
  REQUIRE_OK(outer->Set(uint64_t{2002}, *b));
  CHECK(RunWith(count, 1001) == 1);
  CHECK(RunWith(count, 1001) == 2);
  CHECK(RunWith(count, 2002) == 1);
  CHECK(RunWith(count, 3003) == 0);  // no such tenant
  uint64_t n = 0;
  REQUIRE_OK(a->Lookup(uint32_t{0}, &n));
  CHECK(n == 2);
  REQUIRE_OK(b->Lookup(uint32_t{0}, &n));
  CHECK(n == 1);
  // Swapping a tenant's map redirects the program at once.
  REQUIRE_OK(outer->Set(uint64_t{1001}, *b));
  CHECK(RunWith(count, 1001) == 2);
  REQUIRE_OK(outer->Delete(uint64_t{2002}));
  CHECK(RunWith(count, 2002) == 0);
}

TEST_CASE("cgroup array: a program tells whether its caller is in the cgroup at a slot",
          "[map][cgroup_array]") {
  TempCgroup cg;
  if (!cg.ok()) TETHER_SKIP_OR_FAIL(cg.why());
  CollectionSpec spec = Spec();
  Map cgroups;
  Program under;
  REQUIRE_OK(LoadAndAssign(spec, {{{"cgroups", &cgroups}}, {{"under_cgroup", &under}}}));
  int dir = open(cg.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(dir >= 0);
  // An empty slot: the helper answers -EAGAIN.
  auto r = under.Run();
  REQUIRE_OK(r);
  CHECK(static_cast<int32_t>(r->return_value) == -EAGAIN);
  REQUIRE_OK(cgroups.Update(uint32_t{0}, uint32_t(dir)));
  close(dir);
  r = under.Run();
  REQUIRE_OK(r);
  CHECK(r->return_value == 0);  // this process is elsewhere
  int in_child = cg.RunInChild([&] {
    auto res = under.Run({}, absl::Span<uint8_t>(), nullptr);
    return res.ok() ? static_cast<int>(*res) : 100;
  });
  CHECK(in_child == 1);
  REQUIRE_OK(cgroups.Delete(uint32_t{0}));
}
