// Bloom filters (bloom_filter.h).
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

TEST_CASE("bloom filter: added values test present, most others absent", "[map][bloom]") {
  TETHER_REQUIRE_FEATURE("map_type:bloom_filter", probe::HaveMapType(BPF_MAP_TYPE_BLOOM_FILTER));
  auto bf = MustOk(BloomFilter<uint64_t>::Create("bloom_api", 1000, 3));
  for (uint64_t i = 0; i < 100; ++i) REQUIRE_OK(bf.Add(i * 1000003));
  for (uint64_t i = 0; i < 100; ++i) CHECK(MustOk(bf.Test(i * 1000003)));
  int false_positives = 0;
  for (uint64_t i = 0; i < 1000; ++i) false_positives += MustOk(bf.Test(i * 7 + 5000000000ull));
  CHECK(false_positives < 100);
}
