// Handle semantics: one pointer wide, one atomic per copy, deterministic close.
#include <fcntl.h>

#include <thread>
#include <unordered_set>

#include "absl/container/flat_hash_set.h"
#include "test_programs.h"
#include "test_support.h"
#include "tether/map.h"
#include "tether/program.h"

using namespace tether;

static_assert(sizeof(Map) == sizeof(void*), "a Map handle is one pointer");
static_assert(sizeof(Program) == sizeof(void*), "a Program handle is one pointer");

namespace {
Map SmallArray(const std::string& name) {
  MapOptions o;
  o.type = BPF_MAP_TYPE_ARRAY;
  o.key_size = 4;
  o.value_size = 4;
  o.max_entries = 1;
  o.name = name;
  auto m = Map::Create(o);
  REQUIRE(m.ok());
  return *m;
}
bool FdOpen(int fd) { return fcntl(fd, F_GETFD) != -1; }
}  // namespace

TEST_CASE("the fd closes exactly when the last handle goes", "[handle]") {
  Map a = SmallArray("last_handle");
  int fd = a.fd();
  uint32_t id = a.id();
  Map b = a;
  CHECK(a.object()->RefCountForTesting() == 2);
  a = Map();
  CHECK(FdOpen(fd));
  CHECK(testing::KernelHasMap(id));
  Map c = std::move(b);
  CHECK_FALSE(static_cast<bool>(b));
  CHECK(c.object()->RefCountForTesting() == 1);
  c = Map();
  CHECK_FALSE(FdOpen(fd));
  // The map is freed by the kernel shortly after its last fd goes.
  CHECK(testing::Eventually([&] { return !testing::KernelHasMap(id); }));
}

TEST_CASE("handles compare and hash by object", "[handle]") {
  Map a = SmallArray("cmp_a");
  Map b = SmallArray("cmp_b");
  Map a2 = a;
  CHECK(a == a2);
  CHECK(a != b);
  absl::flat_hash_set<Map> set{a, a2, b};
  CHECK(set.size() == 2);
  std::unordered_set<Map> std_set{a, a2, b};
  CHECK(std_set.size() == 2);
  Program p = testing::LoadReturning(1, "cmp_p");
  Program p2 = p;
  CHECK(p == p2);
  absl::flat_hash_set<Program> pset{p, p2};
  CHECK(pset.size() == 1);
}

TEST_CASE("copying and dropping handles from 8 threads keeps the count exact", "[handle][threads]") {
  size_t fds_before = testing::CountOpenFds();
  Map shared = SmallArray("threads");
  Program prog = testing::LoadReturning(5, "threads_p");
  int map_fd = shared.fd();
  constexpr int kThreads = 8;
  constexpr int kIters = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIters; ++i) {
        Map copy = shared;
        Program pcopy = prog;
        Map moved = std::move(copy);
        (void)moved;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(shared.object()->RefCountForTesting() == 1);
  CHECK(prog.object()->RefCountForTesting() == 1);
  CHECK(FdOpen(map_fd));
  uint32_t v = 0;
  CHECK(shared.Lookup(uint32_t{0}, &v).ok());
  shared = Map();
  prog = Program();
  CHECK(testing::CountOpenFds() == fds_before);
}
