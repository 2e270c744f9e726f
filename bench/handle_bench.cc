// Handle copy+drop: tether's intrusive count against std::shared_ptr, in
// the same run. Pairs are named <group>/<variant>; bench/report.py turns
// them into ratios.
#include <benchmark/benchmark.h>

#include <memory>

#include "alloc_counter.h"
#include "tether/map.h"

namespace {

tether::Map& SharedMap() {
  static tether::Map* map = [] {
    tether::MapOptions o;
    o.type = BPF_MAP_TYPE_ARRAY;
    o.key_size = 4;
    o.value_size = 8;
    o.max_entries = 1;
    o.name = "bench_handle";
    auto m = tether::Map::Create(o);
    if (!m.ok()) {
      fprintf(stderr, "bench: %s\n", m.status().ToString().c_str());
      abort();
    }
    return new tether::Map(*m);
  }();
  return *map;
}

struct Payload {
  int fd = -1;
  tether::MapInfo info;
};

void BM_HandleCopyDrop_Tether(benchmark::State& state) {
  tether::Map& map = SharedMap();
  const uint64_t before = bench_alloc::ThreadAllocations();
  for (auto _ : state) {
    tether::Map copy = map;
    benchmark::DoNotOptimize(copy);
  }
  // Per thread: each thread counts its own copies.
  state.counters["allocs_per_op"] = benchmark::Counter(
      static_cast<double>(bench_alloc::ThreadAllocations() - before) / static_cast<double>(state.iterations()),
      benchmark::Counter::kAvgThreads);
}
BENCHMARK(BM_HandleCopyDrop_Tether)->Name("handle_copy_drop/tether")->ThreadRange(1, 2);

void BM_HandleCopyDrop_SharedPtr(benchmark::State& state) {
  static auto ptr = std::make_shared<Payload>();
  for (auto _ : state) {
    std::shared_ptr<Payload> copy = ptr;
    benchmark::DoNotOptimize(copy);
  }
}
BENCHMARK(BM_HandleCopyDrop_SharedPtr)->Name("handle_copy_drop/shared_ptr")->ThreadRange(1, 2);

void BM_HandleSize(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(sizeof(tether::Map));
  state.counters["handle_bytes"] = sizeof(tether::Map);
  state.counters["shared_ptr_bytes"] = sizeof(std::shared_ptr<Payload>);
  state.counters["object_bytes"] = sizeof(tether::detail::MapObject);
}
BENCHMARK(BM_HandleSize)->Name("memory/handle")->Iterations(1);

}  // namespace
