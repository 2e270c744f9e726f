// Per-CPU maps (percpu.h): typed buffers, spans, sums, and a program per CPU.
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
