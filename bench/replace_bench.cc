// One in-process replacement of the demo's pipeline (tools/demo.bpf.c:
// entry -> jmp_table[0] -> jmp_table[1]), its entry attached as XDP to the
// loopback of a private network namespace:
//   pipeline_replace/tether          ReplacePipeline: load the new build,
//                                    check the plan against the graph,
//                                    fill, switch the link, wait out the
//                                    old runs (membarrier), release
//   pipeline_replace/load_and_swap   the naive way: load, switch the link,
//                                    drop the old build (no plan, no wait)
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sched.h>
#include <unistd.h>

#include <string>

#include "tether/attach.h"
#include "tether/collection.h"
#include "tether/replace.h"

#ifdef TETHER_BENCH_DEMO_OBJ
namespace {

using namespace tether;

// Runs the benchmark body in a fresh network namespace and comes back.
class PrivateNetns {
 public:
  PrivateNetns() : home_(open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)) {
    ok_ = home_ >= 0 && unshare(CLONE_NEWNET) == 0;
  }
  ~PrivateNetns() {
    if (home_ >= 0) {
      setns(home_, CLONE_NEWNET);
      close(home_);
    }
  }
  bool ok() const { return ok_; }

 private:
  int home_;
  bool ok_ = false;
};

CollectionOptions XdpOptions() {
  CollectionOptions o;
  for (const char* p : {"entry", "stage_one", "stage_two"}) o.program_types[p] = BPF_PROG_TYPE_XDP;
  return o;
}

void ReplaceDemo(benchmark::State& state, bool naive) {
  PrivateNetns netns;
  if (!netns.ok()) return state.SkipWithError("unshare(CLONE_NEWNET) failed");
  auto spec = CollectionSpec::FromFile(TETHER_BENCH_DEMO_OBJ);
  if (!spec.ok()) return state.SkipWithError(spec.status().ToString().c_str());
  auto first = Collection::Load(*spec, XdpOptions());
  if (!first.ok()) return state.SkipWithError(first.status().ToString().c_str());
  auto link = AttachXdp(first->program("entry"), static_cast<int>(if_nametoindex("lo")),
                        XDP_FLAGS_SKB_MODE);
  if (!link.ok()) return state.SkipWithError(link.status().ToString().c_str());
  Pipeline running = Pipeline::FromCollection(*first, "entry", *link);
  Collection current = std::move(*first);
  ReplaceOptions options;
  options.load = XdpOptions();
  if (!naive) current = Collection();  // the pipeline holds the first build
  for (auto _ : state) {
    if (!naive) {
      absl::Status st = ReplacePipeline(running, *spec, options);
      if (!st.ok()) return state.SkipWithError(st.ToString().c_str());
      continue;
    }
    auto next = Collection::Load(*spec, options.load);
    if (!next.ok()) return state.SkipWithError(next.status().ToString().c_str());
    absl::Status st = link->Update(next->program("entry"), current.program("entry"));
    if (!st.ok()) return state.SkipWithError(st.ToString().c_str());
    for (const auto& [name, map] : current.maps()) map.SetLifetimePolicy(LifetimePolicy::kIgnore);
    current = std::move(*next);
  }
  for (const auto& [name, map] : running.maps) map.SetLifetimePolicy(LifetimePolicy::kIgnore);
  for (const auto& [name, map] : current.maps()) map.SetLifetimePolicy(LifetimePolicy::kIgnore);
}
BENCHMARK_CAPTURE(ReplaceDemo, tether, false)->Name("pipeline_replace/tether")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(ReplaceDemo, load_and_swap, true)->Name("pipeline_replace/load_and_swap")->Unit(benchmark::kMicrosecond);

}  // namespace
#endif  // TETHER_BENCH_DEMO_OBJ
