// Handle semantics: one pointer wide, one atomic per copy, deterministic close.
#include <fcntl.h>

#include <thread>
#include <unordered_set>

#include "absl/container/flat_hash_set.h"
#include "test_programs.h"
#include "test_support.h"
#include "tether/bloom_filter.h"
#include "tether/graph.h"
#include "tether/link.h"
#include "tether/map.h"
#include "tether/map_in_map.h"
#include "tether/mmap_array.h"
#include "tether/percpu.h"
#include "tether/prog_array.h"
#include "tether/queue.h"
#include "tether/typed_map.h"
#include "tether/program.h"

using namespace tether;

static_assert(sizeof(Map) == sizeof(void*), "a Map handle is one pointer");
static_assert(sizeof(Program) == sizeof(void*), "a Program handle is one pointer");

namespace {
Map SmallArray(const std::string& name) {
  MapOptions o;
  o.type = BPF_MAP_TYPE_ARRAY;
  o.key_size = 4;
  o.value_size = 4;
  o.max_entries = 1;
  o.name = name;
  auto m = Map::Create(o);
  REQUIRE(m.ok());
  return *m;
}
bool FdOpen(int fd) { return fcntl(fd, F_GETFD) != -1; }
}  // namespace

TEST_CASE("the fd closes exactly when the last handle goes", "[handle]") {
  Map a = SmallArray("last_handle");
  int fd = a.fd();
  uint32_t id = a.id();
  Map b = a;
  CHECK(a.object()->RefCountForTesting() == 2);
  a = Map();
  CHECK(FdOpen(fd));
  CHECK(testing::KernelHasMap(id));
  Map c = std::move(b);
  CHECK_FALSE(static_cast<bool>(b));
  CHECK(c.object()->RefCountForTesting() == 1);
  c = Map();
  CHECK_FALSE(FdOpen(fd));
  // The map is freed by the kernel shortly after its last fd goes.
  CHECK(testing::Eventually([&] { return !testing::KernelHasMap(id); }));
}

TEST_CASE("handles compare and hash by object", "[handle]") {
  Map a = SmallArray("cmp_a");
  Map b = SmallArray("cmp_b");
  Map a2 = a;
  CHECK(a == a2);
  CHECK(a != b);
  absl::flat_hash_set<Map> set{a, a2, b};
  CHECK(set.size() == 2);
  std::unordered_set<Map> std_set{a, a2, b};
  CHECK(std_set.size() == 2);
  Program p = testing::LoadReturning(1, "cmp_p");
  Program p2 = p;
  CHECK(p == p2);
  absl::flat_hash_set<Program> pset{p, p2};
  CHECK(pset.size() == 1);
}

TEST_CASE("copying and dropping handles from 8 threads keeps the count exact", "[handle][threads]") {
  size_t fds_before = testing::CountOpenFds();
  Map shared = SmallArray("threads");
  Program prog = testing::LoadReturning(5, "threads_p");
  int map_fd = shared.fd();
  constexpr int kThreads = 8;
  constexpr int kIters = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIters; ++i) {
        Map copy = shared;
        Program pcopy = prog;
        Map moved = std::move(copy);
        (void)moved;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(shared.object()->RefCountForTesting() == 1);
  CHECK(prog.object()->RefCountForTesting() == 1);
  CHECK(FdOpen(map_fd));
  uint32_t v = 0;
  CHECK(shared.Lookup(uint32_t{0}, &v).ok());
  shared = Map();
  prog = Program();
  CHECK(testing::CountOpenFds() == fds_before);
}

// --- the empty-handle contract (handle.h) -------------------------------------------

namespace {

// Every error from an empty handle is FailedPrecondition and says so.
void CheckEmptyError(const absl::Status& st, const std::string& op) {
  INFO(op << ": " << st.ToString());
  CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(st.message()), Catch::Contains("empty"));
}

void WalkMap(const Map& m_const) {
  Map m = m_const;
  CHECK_FALSE(static_cast<bool>(m));
  CHECK(m.fd() == -1);
  CHECK(m.id() == 0);
  CHECK(m.type() == 0);
  CHECK(m.info().id == 0);
  CHECK(m.object() == nullptr);
  CHECK(m.name().empty());
  CHECK(m.key_size() == 0);
  CHECK(m.value_size() == 0);
  CHECK(m.max_entries() == 0);
  CHECK(m.flags() == 0);
  CHECK(m.value_buffer_size() == 0);
  uint32_t k = 0, v = 0;
  std::vector<uint8_t> bytes(4);
  CheckEmptyError(m.Lookup(k, &v), "lookup");
  CheckEmptyError(m.Update(k, v), "update");
  CheckEmptyError(m.Delete(k), "delete");
  CheckEmptyError(m.LookupAndDelete(k, &v), "lookup_and_delete");
  CheckEmptyError(m.Lookup(absl::MakeConstSpan(bytes), absl::MakeSpan(bytes)), "lookup bytes");
  CheckEmptyError(m.Update(absl::MakeConstSpan(bytes), absl::MakeConstSpan(bytes)), "update bytes");
  CheckEmptyError(m.Delete(absl::MakeConstSpan(bytes)), "delete bytes");
  CheckEmptyError(m.LookupAndDelete(absl::MakeConstSpan(bytes), absl::MakeSpan(bytes)), "lad bytes");
  CheckEmptyError(m.NextKey(nullptr, &k).status(), "next_key");
  CheckEmptyError(m.NextKey<uint32_t>(nullptr, &k).status(), "next_key typed");
  CheckEmptyError(m.Keys<uint32_t>().status(), "keys");
  CheckEmptyError(m.Freeze(), "freeze");
  CheckEmptyError(m.Pin("/sys/fs/bpf/never"), "pin");
  CheckEmptyError(m.Unpin(), "unpin");
  CheckEmptyError(m.Clone().status(), "clone");
  CHECK(m.PinPath().empty());
  m.SetLifetimePolicy(LifetimePolicy::kKeepAlive);
  CHECK(m.lifetime_policy() == LifetimePolicy::kDefault);
  CHECK(NodeOf(m).id == 0);
  CHECK_FALSE(graph().Explain(m).known);
  CHECK_THAT(graph().WhatBreaks(m)[0], Catch::Contains("not in tether's graph"));
  CHECK(std::hash<Map>()(m) == std::hash<const void*>()(nullptr));
  CHECK(m == Map());
  CHECK(m.Close().ok());
  CHECK(m.Close(true).ok());
}

void WalkProgram(const Program& p) {
  CHECK_FALSE(static_cast<bool>(p));
  CHECK(p.fd() == -1);
  CHECK(p.id() == 0);
  CHECK(p.type() == 0);
  CHECK(p.info().map_ids.empty());
  CHECK(p.name().empty());
  CHECK(p.object() == nullptr);
  CheckEmptyError(p.Run().status(), "run");
  std::vector<uint8_t> out(8);
  size_t n = 0;
  CheckEmptyError(p.Run({}, absl::MakeSpan(out), &n).status(), "run span");
  CheckEmptyError(p.Pin("/sys/fs/bpf/never"), "pin");
  CheckEmptyError(p.Unpin(), "unpin");
  CheckEmptyError(p.Clone().status(), "clone");
  CHECK(p.PinPath().empty());
  p.NoteLegacyHook("nothing");
  p.ForgetLegacyHook("nothing");
  CHECK(NodeOf(p).id == 0);
  CHECK_FALSE(graph().Explain(p).known);
  CHECK_THAT(graph().WhatBreaks(p)[0], Catch::Contains("not in tether's graph"));
}

void WalkLink(const Link& l) {
  CHECK_FALSE(static_cast<bool>(l));
  CHECK(l.fd() == -1);
  CHECK(l.id() == 0);
  CHECK(l.type() == 0);
  CHECK(l.info().prog_id == 0);
  CHECK(l.description().empty());
  CHECK(l.object() == nullptr);
  CheckEmptyError(l.Refresh().status(), "refresh");
  CheckEmptyError(l.ProgramId().status(), "program_id");
  CheckEmptyError(l.Update(Program()), "update");
  CheckEmptyError(l.Detach(), "detach");
  CheckEmptyError(l.Pin("/sys/fs/bpf/never"), "pin");
  CheckEmptyError(l.Unpin(), "unpin");
  CheckEmptyError(l.Clone().status(), "clone");
  CHECK(l.PinPath().empty());
  CHECK(NodeOf(l).id == 0);
}

template <typename Typed>
void WalkWrapperMap(const Typed& t) {
  CHECK_FALSE(static_cast<bool>(t));
  CHECK_FALSE(static_cast<bool>(t.map()));
  WalkMap(t.map());
}

void WalkTypedMaps() {
  TypedMap<uint32_t, uint64_t> typed;
  WalkWrapperMap(typed);
  uint64_t v = 0;
  CheckEmptyError(typed.Lookup(1, &v), "typed lookup");
  CheckEmptyError(typed.LookupLocked(1, &v), "typed lookup locked");
  CheckEmptyError(typed.Find(1, &v).status(), "typed find");
  CheckEmptyError(typed.Get(1).status(), "typed get");
  CheckEmptyError(typed.Update(1, v), "typed update");
  CheckEmptyError(typed.Insert(1, v), "typed insert");
  CheckEmptyError(typed.Replace(1, v), "typed replace");
  CheckEmptyError(typed.Delete(1), "typed delete");
  CheckEmptyError(typed.LookupAndDelete(1, &v), "typed lookup_and_delete");
  CheckEmptyError(typed.ForEachKey([](const uint32_t&) {}), "typed for_each_key");
  CheckEmptyError(typed.ForEach([](const uint32_t&, const uint64_t&) {}), "typed for_each");
  CheckEmptyError(typed.Keys().status(), "typed keys");
  CheckEmptyError(TypedMap<uint32_t, uint64_t>::Bind(Map()).status(), "typed bind");

  PerCpuMap<uint32_t, uint64_t> percpu;
  WalkWrapperMap(percpu);
  auto values = percpu.MakeValues();
  CheckEmptyError(percpu.Lookup(1, &values), "percpu lookup");
  CheckEmptyError(percpu.Update(1, values), "percpu update");
  CheckEmptyError(percpu.Delete(1), "percpu delete");
  CheckEmptyError(percpu.Sum(1, &values).status(), "percpu sum");
  CheckEmptyError(percpu.ForEachKey([](const uint32_t&) {}), "percpu for_each_key");
  CheckEmptyError(PerCpuMap<uint32_t, uint64_t>::Bind(Map()).status(), "percpu bind");

  Queue<uint64_t> queue;
  WalkWrapperMap(queue);
  CheckEmptyError(queue.Push(v), "push");
  CheckEmptyError(queue.Pop(&v), "pop");
  CheckEmptyError(queue.Peek(&v), "peek");
  CheckEmptyError(queue.TryPop(&v).status(), "try_pop");
  CheckEmptyError(Queue<uint64_t>::Bind(Map()).status(), "queue bind");

  BloomFilter<uint64_t> bloom;
  WalkWrapperMap(bloom);
  CheckEmptyError(bloom.Add(v), "bloom add");
  CheckEmptyError(bloom.Test(v).status(), "bloom test");
  CheckEmptyError(BloomFilter<uint64_t>::Bind(Map()).status(), "bloom bind");
}

void WalkArrays() {
  ProgramArray pa;
  WalkWrapperMap(pa);
  CheckEmptyError(pa.Set(0, Program()), "prog array set");
  CheckEmptyError(pa.Delete(0), "prog array delete");
  CheckEmptyError(pa.Clear(), "prog array clear");
  CheckEmptyError(pa.Get(0).status(), "prog array get");
  CHECK_FALSE(ProgramArray::FromMap(Map()).ok());

  ArrayOfMaps aom;
  WalkWrapperMap(aom);
  CheckEmptyError(aom.Set(0, Map()), "aom set");
  CheckEmptyError(aom.Delete(0), "aom delete");
  CheckEmptyError(aom.Get(0).status(), "aom get");
  CheckEmptyError(aom.GetMap(0).status(), "aom get_map");
  CHECK_FALSE(ArrayOfMaps::FromMap(Map()).ok());

  HashOfMaps hom;
  WalkWrapperMap(hom);
  CheckEmptyError(hom.Set(uint32_t{1}, Map()), "hom set");
  CheckEmptyError(hom.Delete(uint32_t{1}), "hom delete");
  CheckEmptyError(hom.Get(uint32_t{1}).status(), "hom get");
  CheckEmptyError(hom.GetMap(uint32_t{1}).status(), "hom get_map");
  CHECK_FALSE(HashOfMaps::FromMap(Map()).ok());

  MmapArray<uint64_t> mm;
  CHECK(mm.size() == 0);
  CHECK_FALSE(mm.writable());
  CHECK_FALSE(static_cast<bool>(mm.map()));
  CHECK_FALSE(mm.Get(0).ok());
  CHECK_FALSE(mm.Set(0, 1).ok());
  CheckEmptyError(MmapArray<uint64_t>::Create(Map()).status(), "mmap create");
}

}  // namespace

TEST_CASE("every accessor of every handle is safe on an empty handle", "[handle][empty]") {
  SECTION("default-constructed") {
    WalkMap(Map());
    WalkProgram(Program());
    WalkLink(Link());
    WalkTypedMaps();
    WalkArrays();
  }
  SECTION("moved-from") {
    Map m = SmallArray("moved_from");
    Map taken = std::move(m);
    WalkMap(m);  // NOLINT(bugprone-use-after-move): the contract under test
    CHECK(static_cast<bool>(taken));
    Program p = testing::LoadReturning(1, "moved_p");
    Program p2 = std::move(p);
    WalkProgram(p);  // NOLINT(bugprone-use-after-move)
    auto typed = TypedMap<uint32_t, uint32_t>::Bind(SmallArray("moved_typed"));
    REQUIRE(typed.ok());
    TypedMap<uint32_t, uint32_t> typed2 = std::move(*typed);
    WalkWrapperMap(*typed);  // NOLINT(bugprone-use-after-move)
    uint32_t v = 0;
    CheckEmptyError(typed->Lookup(0, &v), "moved typed lookup");
    CHECK(typed2.Lookup(0, &v).ok());
    auto pa = ProgramArray::Create("moved_pa", 2, LifetimePolicy::kIgnore);
    REQUIRE(pa.ok());
    ProgramArray pa2 = std::move(*pa);
    WalkWrapperMap(*pa);  // NOLINT(bugprone-use-after-move)
    CheckEmptyError(pa->Set(0, p2), "moved prog array set");
    CHECK(pa2.Set(0, p2).ok());
  }
}
