// What the tail-call miss counters cost (docs/lifecycle.md, "Tail-call miss
// counters"), with and without them in the same run:
//   tail_call_counters_load/{tether,tether_off}  load and close of the
//       agent-scale object (100 programs, 5 program arrays, every program
//       a tail call): the rewrite, the counter map and the longer verify
//   tail_call_hit/{tether,tether_off}  one tail call that hits, through
//       BPF_PROG_TEST_RUN with 100k repetitions; the time is the kernel's
//       (its mean per run times the repetitions; ns_per_run the mean). The
//       counter sits after the call, which a hit never reaches.
#include <benchmark/benchmark.h>

#include <vector>

#include "load_common.h"
#include "tether/collection.h"
#include "tether/prog_array.h"

namespace {

using namespace tether;

void CountersLoad(benchmark::State& state, bool counters) {
  auto spec = CollectionSpec::FromMemory(bench::AgentObject().bytes, "agent.bpf.o");
  if (!spec.ok()) return state.SkipWithError(std::string(spec.status().message()).c_str());
  CollectionOptions o;
  o.default_program_type = BPF_PROG_TYPE_SOCKET_FILTER;
  o.count_tail_call_misses = counters;
  size_t sites = 0;
  for (auto _ : state) {
    auto c = Collection::Load(*spec, o);
    if (!c.ok()) return state.SkipWithError(std::string(c.status().message()).c_str());
    auto s = c->TailCallMisses();
    sites = s.ok() ? s->size() : 0;
  }
  state.counters["sites"] = static_cast<double>(sites);
}
BENCHMARK_CAPTURE(CountersLoad, on, true)->Name("tail_call_counters_load/tether")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(CountersLoad, off, false)->Name("tail_call_counters_load/tether_off")->Unit(benchmark::kMillisecond);

void TailCallHit(benchmark::State& state, bool counters) {
  auto spec = CollectionSpec::FromFile(std::string(TETHER_TEST_BPF_DIR) + "/tail_call_misses.bpf.o");
  if (!spec.ok()) return state.SkipWithError(std::string(spec.status().message()).c_str());
  CollectionOptions o;
  o.count_tail_call_misses = counters;
  auto c = Collection::Load(*spec, o);
  if (!c.ok()) return state.SkipWithError(std::string(c.status().message()).c_str());
  auto table = ProgramArray::FromMap(c->map("tcm_table"), /*read_entries=*/false);
  if (!table.ok() || !table->Set(0, c->program("tcm_target")).ok())
    return state.SkipWithError("cannot fill tcm_table");
  std::vector<uint8_t> pkt(64, 0xab);
  RunOptions run;
  run.data = pkt;
  run.repeat = 100000;
  Program hit = c->program("tcm_hit");
  double total_ns = 0;
  for (auto _ : state) {
    auto r = hit.Run(run);
    if (!r.ok() || r->return_value != 42) return state.SkipWithError("the tail call did not hit");
    double ns = static_cast<double>(r->duration.count()) * run.repeat;
    total_ns += ns;
    state.SetIterationTime(ns * 1e-9);
  }
  state.counters["ns_per_run"] = state.iterations() ? total_ns / state.iterations() / run.repeat : 0;
  (void)table->Delete(0);
}
BENCHMARK_CAPTURE(TailCallHit, on, true)->Name("tail_call_hit/tether")->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(TailCallHit, off, false)->Name("tail_call_hit/tether_off")->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
