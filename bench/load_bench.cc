// Opening and loading BPF objects, tether against libbpf, on the same
// objects (load_common.h says which and why some are left out):
//   elf_open/*            parse only, no kernel: every test object and every
//                         corpus object that both loaders open
//   collection_load/*     full load and close of every object in the set
//   load_outside_verifier/*  the same, minus the time spent inside
//                         BPF_PROG_LOAD: each loader's own work
//   agent_load/*          the agent-scale object (bench/gen_agent.py:
//                         100 programs, 50 maps, 5 program arrays)
//   agent_load_serial/*   the same with CollectionOptions::load_threads = 1
//                         (libbpf again, measured beside it): what threads bring
//   agent_outside_verifier/*
//   agent_in_bpf/*        time inside bpf(2) alone per agent load: the
//                         kernel's share, which bounds what agent_load's
//                         ratio can reach (docs/benchmarks.md)
//   agent_outside_bpf/*   the agent load minus all of its time in bpf(2)
//   agent_{explain,what_breaks,to_dot,cycles}/tether: graph queries with
//                         the agent object loaded
// Memory figures (RSS, bytes per handle, node and edge) are printed by
// agent_memory, which forks a child per loader; user-space instructions
// per load (the loaders' CPU outside the kernel) by
// bench/profile_agent_load.py under callgrind.
#include <benchmark/benchmark.h>

#include <chrono>

#include "load_common.h"
#include "tether/collection.h"
#include "tether/graph.h"

namespace {

using namespace tether::bench;
using Loader = absl::Status (*)(const BenchObject&, const std::string&);

void Fail(benchmark::State& state, const absl::Status& st) {
  state.SkipWithError(std::string(st.ToString()).c_str());
}

void OpenAll(benchmark::State& state, absl::Status (*open)(const BenchObject&)) {
  ElfOpenRefusals refused;
  const auto& set = ElfOpenSet(nullptr, &refused);
  size_t bytes = 0;
  for (const auto& o : set) bytes += o.bytes.size();
  for (auto _ : state) {
    for (const auto& o : set) {
      absl::Status st = open(o);
      if (!st.ok()) return Fail(state, st);
    }
  }
  state.counters["objects"] = static_cast<double>(set.size());
  // Left out of both sides (load_common.cc says why), so that a shrinking
  // set shows in the results too.
  state.counters["left_out"] = static_cast<double>(refused.candidates - set.size());
  state.counters["libbpf_refused"] = static_cast<double>(refused.libbpf);
  state.counters["tether_refused"] = static_cast<double>(refused.tether);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}
BENCHMARK_CAPTURE(OpenAll, tether, TetherOpen)->Name("elf_open/tether")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(OpenAll, libbpf, LibbpfOpen)->Name("elf_open/libbpf")->Unit(benchmark::kMicrosecond);

// What a load row reports per iteration: the wall time, the wall time minus
// what BPF_PROG_LOAD took or minus what all of bpf(2) took, or the time
// inside bpf(2) alone. tether's rows other than kWall load with
// load_threads = 1: on threads, the time inside the kernel summed over
// workers overlaps, and wall minus it means nothing.
enum class Timed { kWall, kOutsideProgLoad, kOutsideBpf, kInBpf };

void LoadAll(benchmark::State& state, const std::vector<BenchObject>& set, Loader load, Timed timed) {
  std::string dir = MakePinDir();
  uint64_t prog_load_ns = 0, bpf_ns = 0, total_ns = 0, prog_loads = 0, bpf_calls = 0;
  for (auto _ : state) {
    ResetProgLoad();
    CountProgLoad(true);
    auto t0 = std::chrono::steady_clock::now();
    for (const auto& o : set) {
      absl::Status st = load(o, dir);
      if (!st.ok()) {
        CountProgLoad(false);
        RemovePinDir(dir);
        return Fail(state, st);
      }
    }
    uint64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
    CountProgLoad(false);
    total_ns += ns;
    prog_load_ns += ProgLoadNanos();
    prog_loads += ProgLoadCalls();
    bpf_ns += BpfNanos();
    bpf_calls += BpfCalls();
    switch (timed) {
      case Timed::kWall:
        break;
      case Timed::kOutsideProgLoad:
        state.SetIterationTime(double(ns - std::min<uint64_t>(ns, ProgLoadNanos())) * 1e-9);
        break;
      case Timed::kOutsideBpf:
        state.SetIterationTime(double(ns - std::min<uint64_t>(ns, BpfNanos())) * 1e-9);
        break;
      case Timed::kInBpf:
        state.SetIterationTime(double(BpfNanos()) * 1e-9);
        break;
    }
  }
  RemovePinDir(dir);
  state.counters["objects"] = static_cast<double>(set.size());
  state.counters["prog_loads"] = benchmark::Counter(double(prog_loads), benchmark::Counter::kAvgIterations);
  state.counters["bpf_calls"] = benchmark::Counter(double(bpf_calls), benchmark::Counter::kAvgIterations);
  state.counters["in_prog_load_pct"] = total_ns ? 100.0 * double(prog_load_ns) / double(total_ns) : 0;
  state.counters["in_bpf_pct"] = total_ns ? 100.0 * double(bpf_ns) / double(total_ns) : 0;
}

void CollectionLoad(benchmark::State& state, Loader load, Timed timed) {
  LoadAll(state, LoadSet(), load, timed);
}
void AgentLoad(benchmark::State& state, Loader load, Timed timed) {
  static const std::vector<BenchObject> agent = {AgentObject()};
  LoadAll(state, agent, load, timed);
}

BENCHMARK_CAPTURE(CollectionLoad, tether, TetherLoad, Timed::kWall)->Name("collection_load/tether")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(CollectionLoad, libbpf, LibbpfLoad, Timed::kWall)->Name("collection_load/libbpf")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(CollectionLoad, tether, TetherLoadSerial, Timed::kOutsideProgLoad)->Name("load_outside_verifier/tether")->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(CollectionLoad, libbpf, LibbpfLoad, Timed::kOutsideProgLoad)->Name("load_outside_verifier/libbpf")->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(AgentLoad, tether, TetherLoad, Timed::kWall)->Name("agent_load/tether")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(AgentLoad, libbpf, LibbpfLoad, Timed::kWall)->Name("agent_load/libbpf")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(AgentLoad, tether, TetherLoadSerial, Timed::kWall)->Name("agent_load_serial/tether")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(AgentLoad, libbpf, LibbpfLoad, Timed::kWall)->Name("agent_load_serial/libbpf")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(AgentLoad, tether, TetherLoadSerial, Timed::kOutsideProgLoad)->Name("agent_outside_verifier/tether")->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(AgentLoad, libbpf, LibbpfLoad, Timed::kOutsideProgLoad)->Name("agent_outside_verifier/libbpf")->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(AgentLoad, tether, TetherLoadSerial, Timed::kInBpf)->Name("agent_in_bpf/tether")->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(AgentLoad, libbpf, LibbpfLoad, Timed::kInBpf)->Name("agent_in_bpf/libbpf")->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(AgentLoad, tether, TetherLoadSerial, Timed::kOutsideBpf)->Name("agent_outside_bpf/tether")->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(AgentLoad, libbpf, LibbpfLoad, Timed::kOutsideBpf)->Name("agent_outside_bpf/libbpf")->UseManualTime()->Unit(benchmark::kMillisecond);

// The agent object, loaded for one benchmark run and dropped after it, so
// that it does not weigh on the other graph benchmarks. The counters say
// how big the graph was (with whatever else the process holds).
tether::Collection LoadAgent() {
  auto spec = tether::CollectionSpec::FromMemory(AgentObject().bytes, "agent.bpf.o");
  auto c = tether::Collection::Load(*spec);
  if (!c.ok()) {
    fprintf(stderr, "agent load: %s\n", c.status().ToString().c_str());
    abort();
  }
  return *std::move(c);
}

void GraphSize(benchmark::State& state) {
  state.counters["nodes"] = double(tether::graph().node_count());
  state.counters["edges"] = double(tether::graph().edge_count());
}

void AgentExplain(benchmark::State& state) {
  tether::Collection agent = LoadAgent();
  tether::Program deepest = agent.program("p0_19");  // end of a 20-program chain
  for (auto _ : state) benchmark::DoNotOptimize(tether::graph().Explain(deepest));
  GraphSize(state);
}
BENCHMARK(AgentExplain)->Name("agent_explain/tether")->Unit(benchmark::kMicrosecond);

void AgentWhatBreaks(benchmark::State& state) {
  tether::Collection agent = LoadAgent();
  tether::Map jmp = agent.map("jmp_0");
  for (auto _ : state) benchmark::DoNotOptimize(tether::graph().WhatBreaks(jmp));
  GraphSize(state);
}
BENCHMARK(AgentWhatBreaks)->Name("agent_what_breaks/tether")->Unit(benchmark::kMicrosecond);

void AgentToDot(benchmark::State& state) {
  tether::Collection agent = LoadAgent();
  size_t bytes = 0;
  for (auto _ : state) {
    std::string dot = tether::graph().ToDot();
    bytes = dot.size();
    benchmark::DoNotOptimize(dot);
  }
  state.counters["dot_bytes"] = double(bytes);
  GraphSize(state);
}
BENCHMARK(AgentToDot)->Name("agent_to_dot/tether")->Unit(benchmark::kMicrosecond);

void AgentCycles(benchmark::State& state) {
  tether::Collection agent = LoadAgent();
  size_t n = 0;
  for (auto _ : state) {
    auto cycles = tether::graph().Cycles();
    n = cycles.size();
    benchmark::DoNotOptimize(cycles);
  }
  state.counters["cycles"] = double(n);
  GraphSize(state);
}
BENCHMARK(AgentCycles)->Name("agent_cycles/tether")->Unit(benchmark::kMicrosecond);

}  // namespace
