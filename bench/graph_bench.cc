// The cost of graph updates at 1k, 10k and 100k nodes. The graph is filled
// with synthetic objects (fd -1, ids far above any real kernel id), so the
// figure is the graph's own cost, not the kernel's.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "alloc_counter.h"
#include "graph/graph_internal.h"
#include "graph/store.h"
#include "tether/graph.h"
#include "tether/map.h"
#include "tether/program.h"

namespace {

using tether::RefPtr;
using tether::detail::MapObject;
using tether::detail::ProgramObject;

constexpr uint32_t kFakeIdBase = 0x70000000;

struct Population {
  std::vector<RefPtr<MapObject>> arrays;
  std::vector<RefPtr<ProgramObject>> programs;
};

enum Shape { kSets = 0, kRing = 1, kLine = 2 };

// Switches the graph between the incremental cycle search and the search
// from every new edge (as before the order existed). The order is rebuilt
// when next asked, as the edges there were added without it.
void UseIncrementalCycles(bool on) {
  tether::detail::LockedStore store(tether::detail::State());
  store.state().incremental_cycles = on;
  store.state().order_valid = false;
  store.state().order_stale = true;
}

// n nodes in independent tail-call sets, like a policy engine: per set one
// prog array (4 slots filled) and 8 programs, 4 in the array and 4 callers
// that use it. kRing, instead: each program sits in one array and uses the
// next, the last the first, so that the whole graph is one cycle; before
// the incremental order one cycle check walked the whole graph, the worst
// case. kLine: the same without the last use, no cycle at all.
Population& Populate(size_t n, Shape shape = kSets, bool incremental = true) {
  static std::vector<std::tuple<size_t, Shape, bool, std::unique_ptr<Population>>> cache;
  for (auto& [size, s, inc, pop] : cache)
    if (size == n && s == shape && inc == incremental) return *pop;
  // One population at a time keeps the graph at the size measured.
  cache.clear();
  UseIncrementalCycles(incremental);
  bool chain = shape != kSets;
  auto pop = std::make_unique<Population>();
  uint32_t id = kFakeIdBase + static_cast<uint32_t>(n) * 4 + static_cast<uint32_t>(shape) * 0x01000000 +
                (incremental ? 0 : 0x00800000);
  auto new_array = [&] {
    tether::MapInfo info;
    info.id = id++;
    info.type = BPF_MAP_TYPE_PROG_ARRAY;
    info.key_size = info.value_size = 4;
    info.max_entries = 4;
    info.name = "arr";
    auto* obj = new MapObject(-1, info);
    obj->set_policy(tether::LifetimePolicy::kIgnore);
    pop->arrays.emplace_back(obj);
    return obj;
  };
  auto new_program = [&](uint32_t uses) {
    tether::ProgramInfo info;
    info.id = id++;
    info.type = BPF_PROG_TYPE_SOCKET_FILTER;
    info.name = "prog";
    if (uses) info.map_ids = {uses};
    auto* obj = new ProgramObject(-1, info);
    pop->programs.emplace_back(obj);
    return obj;
  };
  if (chain) {
    for (size_t i = 0; i < n / 2; ++i) new_array();
    for (size_t i = 0; i < n / 2; ++i) {
      bool last = i + 1 == pop->arrays.size();
      auto* p = new_program(shape == kLine && last ? 0 : pop->arrays[(i + 1) % pop->arrays.size()]->info().id);
      tether::detail::GraphSetTailCall(pop->arrays[i]->info().id, 0, p->info().id, p->info().name,
                                       p->info().type);
    }
  } else {
    for (size_t set = 0; set < n / 9; ++set) {
      MapObject* array = new_array();
      for (uint32_t slot = 0; slot < 4; ++slot) {
        ProgramObject* p = new_program(0);
        tether::detail::GraphSetTailCall(array->info().id, slot, p->info().id, p->info().name,
                                         p->info().type);
      }
      for (int caller = 0; caller < 4; ++caller) new_program(array->info().id);
    }
  }
  cache.emplace_back(n, shape, incremental, std::move(pop));
  return *std::get<3>(cache.back());
}

// One array slot set (with its cycle search) and deleted again. In the
// sets and the ring, the slot gets the program another slot of the same
// array holds; in the line, the next array's program, an edge that closes
// no cycle but from which the whole rest of the line is reachable.
template <bool incremental>
void BM_GraphSetTailCall(benchmark::State& state) {
  auto shape = static_cast<Shape>(state.range(1));
  Population& pop = Populate(static_cast<size_t>(state.range(0)), shape, incremental);
  size_t i = 0;
  uint64_t allocs = 0;
  for (auto _ : state) {
    // The line's last array is left out: its next program would be the
    // first, and that edge would close the line into a ring.
    size_t a = i % (shape == kLine ? pop.arrays.size() - 1 : pop.arrays.size());
    MapObject* array = pop.arrays[a].get();
    size_t p = shape == kSets ? a * 8 : shape == kRing ? a : a + 1;
    ProgramObject* prog = pop.programs[p].get();
    uint64_t before = bench_alloc::ThreadAllocations();
    tether::detail::GraphSetTailCall(array->info().id, 3, prog->info().id, prog->info().name,
                                     prog->info().type);
    allocs += bench_alloc::ThreadAllocations() - before;
    tether::detail::GraphDeleteTailCall(array->info().id, 3);
    ++i;
  }
  state.counters["nodes"] = static_cast<double>(tether::graph().node_count());
  state.counters["allocs_per_set"] =
      static_cast<double>(allocs) / static_cast<double>(std::max<int64_t>(state.iterations(), 1));
}
BENCHMARK(BM_GraphSetTailCall<true>)
    ->Name("graph_set_cycle_search/tether")
    ->ArgNames({"nodes", "shape"})
    ->ArgsProduct({{1000, 10000, 100000}, {kSets, kRing, kLine}});
// The search from every new edge, as before the incremental order: the
// same operations, so the ratio is the order's gain.
BENCHMARK(BM_GraphSetTailCall<false>)
    ->Name("graph_set_cycle_search/full_search")
    ->ArgNames({"nodes", "shape"})
    ->ArgsProduct({{1000, 10000, 100000}, {kSets, kRing, kLine}});

void BM_GraphCreateDestroyMap(benchmark::State& state) {
  Populate(static_cast<size_t>(state.range(0)));
  tether::MapInfo info;
  info.id = kFakeIdBase - 1;
  info.type = BPF_MAP_TYPE_HASH;
  info.name = "churn";
  for (auto _ : state) {
    RefPtr<MapObject> obj(new MapObject(-1, info));
    benchmark::DoNotOptimize(obj);
  }
}
BENCHMARK(BM_GraphCreateDestroyMap)->Name("graph_create_destroy_node")->Arg(1000)->Arg(10000)->Arg(100000);

void BM_GraphExplain(benchmark::State& state) {
  Population& pop = Populate(static_cast<size_t>(state.range(0)));
  size_t i = 0;
  for (auto _ : state) {
    auto ex = tether::graph().Explain(
        tether::NodeRef{tether::NodeKind::kProgram, pop.programs[i++ % pop.programs.size()]->info().id});
    benchmark::DoNotOptimize(ex);
  }
}
BENCHMARK(BM_GraphExplain)->Name("graph_explain")->Arg(1000)->Arg(10000);

}  // namespace
