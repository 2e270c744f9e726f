// Queues and stacks (queue.h).
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

TEST_CASE("queue and stack: push, peek, pop, full, overwrite", "[map][queue]") {
  auto q = MustOk(Queue<uint64_t>::Create("q_api", 3));
  uint64_t v = 0;
  CHECK(q.Pop(&v).code() == absl::StatusCode::kNotFound);
  CHECK(MustOk(q.TryPop(&v)) == false);
  for (uint64_t i : {1, 2, 3}) REQUIRE_OK(q.Push(i));
  auto full = q.Push(4);
  CHECK_FALSE(full.ok());
  CHECK_THAT(std::string(full.message()), Catch::Contains("q_api") && Catch::Contains("push"));
  REQUIRE_OK(q.Push(4, /*overwrite_oldest=*/true));  // drops 1
  REQUIRE_OK(q.Peek(&v));
  CHECK(v == 2);
  std::vector<uint64_t> out;
  while (MustOk(q.TryPop(&v))) out.push_back(v);
  CHECK(out == std::vector<uint64_t>{2, 3, 4});

  auto s = MustOk(Queue<uint32_t>::Create("s_api", 4, /*stack=*/true));
  for (uint32_t i : {1u, 2u, 3u}) REQUIRE_OK(s.Push(i));
  uint32_t top = 0;
  REQUIRE_OK(s.Peek(&top));
  CHECK(top == 3);
  std::vector<uint32_t> sout;
  while (MustOk(s.TryPop(&top))) sout.push_back(top);
  CHECK(sout == std::vector<uint32_t>{3, 2, 1});

  CHECK_FALSE(Queue<uint32_t>::Bind(MustCreate(BPF_MAP_TYPE_QUEUE, 0, 8, 2)).ok());
}
