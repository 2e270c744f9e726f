// Mmapable arrays (mmap_array.h): memory and syscalls agree; frozen maps map read-only.
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
