// The cost of graph updates at 1k, 10k and 100k nodes. The graph is filled
// with synthetic objects (fd -1, ids far above any real kernel id), so the
// figure is the graph's own cost, not the kernel's.
#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

#include "graph/graph_internal.h"
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

// n nodes in independent tail-call sets, like a policy engine: per set one
// prog array (4 slots filled) and 8 programs, 4 in the array and 4 callers
// that use it. With `chain`, instead, each program sits in one array and
// uses the next: one cycle check then walks the whole graph, the worst case.
Population& Populate(size_t n, bool chain = false) {
  static std::vector<std::tuple<size_t, bool, std::unique_ptr<Population>>> cache;
  for (auto& [size, is_chain, pop] : cache)
    if (size == n && is_chain == chain) return *pop;
  // One population at a time keeps the graph at the size measured.
  cache.clear();
  auto pop = std::make_unique<Population>();
  uint32_t id = kFakeIdBase + static_cast<uint32_t>(n) * 4 + (chain ? 1 : 0) * 0x01000000;
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
      auto* p = new_program(pop->arrays[(i + 1) % pop->arrays.size()]->info().id);
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
  cache.emplace_back(n, chain, std::move(pop));
  return *std::get<2>(cache.back());
}

void BM_GraphSetTailCall(benchmark::State& state) {
  Population& pop = Populate(static_cast<size_t>(state.range(0)), state.range(1) != 0);
  size_t i = 0;
  for (auto _ : state) {
    // Overwrite an entry within the same set and put it back: two updates,
    // each with its cycle check.
    MapObject* array = pop.arrays[i % pop.arrays.size()].get();
    ProgramObject* prog = pop.programs[(i % pop.arrays.size()) * (state.range(1) ? 1 : 8)].get();
    tether::detail::GraphSetTailCall(array->info().id, 3, prog->info().id, prog->info().name,
                                     prog->info().type);
    tether::detail::GraphDeleteTailCall(array->info().id, 3);
    ++i;
  }
  state.counters["nodes"] = static_cast<double>(tether::graph().node_count());
}
BENCHMARK(BM_GraphSetTailCall)
    ->Name("graph_set_delete_entry")
    ->ArgNames({"nodes", "chain"})
    ->Args({1000, 0})
    ->Args({10000, 0})
    ->Args({100000, 0})
    ->Args({1000, 1})
    ->Args({10000, 1});

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
