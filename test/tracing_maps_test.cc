// Maps that tracing programs feed, filled by raw tracepoint programs under
// BPF_PROG_TEST_RUN (test/bpf/tracing_maps.bpf.c), which run in the calling
// thread: a stack trace map holding the test run's own kernel stack (found
// in /proc/kallsyms) and user stack (found in /proc/self/maps), task
// storage keyed by a pidfd, cgroup storage keyed by a cgroup directory;
// and inode storage filled by an LSM program on file_open.
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "link_fixtures.h"
#include "sys/uapi_compat.h"
#include "test_support.h"
#include "tether/attach.h"
#include "tether/collection.h"
#include "tether/probe.h"

using namespace tether;
using namespace tether::testing;

namespace {

constexpr int kDepth = 32;  // STACK_DEPTH in the BPF source
using Stack = std::array<uint64_t, kDepth>;

CollectionSpec Spec() {
  auto spec = CollectionSpec::FromFile(BpfObjectPath("tracing_maps"));
  REQUIRE_OK(spec);
  return std::move(*spec);
}

void RunOnce(const Program& p) {
  auto r = p.Run();
  REQUIRE_OK(r);
  REQUIRE(r->return_value == 0);
}

// Text symbols from /proc/kallsyms, sorted by address.
std::vector<std::pair<uint64_t, std::string>> KernelTextSymbols() {
  std::vector<std::pair<uint64_t, std::string>> syms;
  std::ifstream in("/proc/kallsyms");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string addr, kind, name;
    f >> addr >> kind >> name;
    if (kind != "T" && kind != "t") continue;
    syms.emplace_back(std::stoull(addr, nullptr, 16), name);
  }
  std::sort(syms.begin(), syms.end());
  return syms;
}

std::string Symbolize(const std::vector<std::pair<uint64_t, std::string>>& syms, uint64_t ip) {
  auto it = std::upper_bound(syms.begin(), syms.end(), std::make_pair(ip, std::string("\xff")));
  if (it == syms.begin()) return "?";
  return std::prev(it)->second;
}

// True if ip falls in an executable mapping of this process.
bool InExecutableMapping(uint64_t ip) {
  std::ifstream in("/proc/self/maps");
  std::string line;
  while (std::getline(in, line)) {
    uint64_t lo = 0, hi = 0;
    char perms[5] = {0};
    if (sscanf(line.c_str(), "%lx-%lx %4s", &lo, &hi, perms) != 3) continue;
    if (perms[2] == 'x' && ip >= lo && ip < hi) return true;
  }
  return false;
}

int64_t Id(const Map& ids, uint32_t k) {
  int64_t v = 0;
  REQUIRE_OK(ids.Lookup(k, &v));
  return v;
}

}  // namespace

TEST_CASE("stack trace map: the program's kernel and user stacks, by id", "[map][stack_trace]") {
  CollectionSpec spec = Spec();
  Map stacks, ids;
  Program grab;
  REQUIRE_OK(LoadAndAssign(spec, {{{"stacks", &stacks}, {"stack_ids", &ids}}, {{"grab_stacks", &grab}}}));
  // Both runs from this one call site: the user stack holds this
  // function's return addresses, which differ between call sites when the
  // build keeps frame pointers (the sanitizer builds do).
  int64_t seen[2][2];
  for (auto& round : seen) {
    RunOnce(grab);
    round[0] = Id(ids, 0);
    round[1] = Id(ids, 1);
  }
  const int64_t kid = seen[0][0], uid = seen[0][1];
  INFO("kernel stack id " << kid << ", user stack id " << uid);
  REQUIRE(kid >= 0);
  REQUIRE(uid >= 0);
  CHECK(kid != uid);

  Stack kstack{};
  REQUIRE_OK(stacks.Lookup(static_cast<uint32_t>(kid), &kstack));
  int frames = 0;
  while (frames < kDepth && kstack[frames] != 0) ++frames;
  CHECK(frames >= 3);
  for (int i = frames; i < kDepth; ++i) CHECK(kstack[i] == 0);  // zero past the last frame
  auto syms = KernelTextSymbols();
  REQUIRE_FALSE(syms.empty());
  std::string chain;
  bool through_bpf_syscall = false;
  for (int i = 0; i < frames; ++i) {
    CHECK(kstack[i] >= 0xffff800000000000ull);  // x86-64 kernel half
    std::string sym = Symbolize(syms, kstack[i]);
    chain += sym + " ";
    through_bpf_syscall |= absl::StrContains(sym, "sys_bpf") || absl::StrContains(sym, "bpf_prog_test_run");
  }
  INFO("kernel stack: " << chain);
  CHECK(through_bpf_syscall);
  CHECK(absl::StrContains(chain, "_grab_stacks"));  // the JITed program itself, as kallsyms names it

  // The user stack starts where this thread entered the kernel.
  Stack ustack{};
  REQUIRE_OK(stacks.Lookup(static_cast<uint32_t>(uid), &ustack));
  REQUIRE(ustack[0] != 0);
  CHECK(ustack[0] < 0x0000800000000000ull);
  CHECK(InExecutableMapping(ustack[0]));

  // The same stacks hash to the same ids.
  CHECK(seen[1][0] == kid);
  CHECK(seen[1][1] == uid);
  auto keys = stacks.Keys<uint32_t>();
  REQUIRE_OK(keys);
  CHECK(std::set<uint32_t>(keys->begin(), keys->end()) ==
        std::set<uint32_t>{static_cast<uint32_t>(kid), static_cast<uint32_t>(uid)});

  // Deleted, the id is free until the program records the stack again.
  REQUIRE_OK(stacks.Delete(static_cast<uint32_t>(uid)));
  CHECK(stacks.Lookup(static_cast<uint32_t>(uid), &ustack).code() == absl::StatusCode::kNotFound);
  CHECK(stacks.Delete(static_cast<uint32_t>(uid)).code() == absl::StatusCode::kNotFound);
  RunOnce(grab);
  REQUIRE_OK(stacks.Lookup(static_cast<uint32_t>(Id(ids, 1)), &ustack));
  CHECK(ustack[0] != 0);

  Stack taken{};
  absl::Status lad = stacks.LookupAndDelete(static_cast<uint32_t>(kid), &taken);
  INFO(lad.ToString());
  if (absl::Status p = probe::HaveLookupAndDelete(BPF_MAP_TYPE_STACK_TRACE); p.ok()) {
    REQUIRE(lad.ok());
    CHECK(taken == kstack);
    CHECK(stacks.Lookup(static_cast<uint32_t>(kid), &taken).code() == absl::StatusCode::kNotFound);
  } else {
    // Older kernels refuse the command and leave the stack in place.
    INFO(p.ToString());
    CHECK_FALSE(lad.ok());
    REQUIRE_OK(stacks.Lookup(static_cast<uint32_t>(kid), &taken));
    CHECK(taken == kstack);
  }
}

TEST_CASE("task storage: a program's per-task counter, keyed from user space by a pidfd",
          "[map][task_storage]") {
  // The pidfd names the thread-group leader: this must be the main thread.
  REQUIRE(syscall(SYS_gettid) == getpid());
  CollectionSpec spec = Spec();
  Map runs;
  Program count;
  REQUIRE_OK(LoadAndAssign(spec, {{{"task_runs", &runs}}, {{"count_task", &count}}}));
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0));
  REQUIRE(pidfd >= 0);
  uint64_t n = 0;
  CHECK(runs.Lookup(int32_t(pidfd), &n).code() == absl::StatusCode::kNotFound);
  for (int i = 0; i < 5; ++i) RunOnce(count);
  REQUIRE_OK(runs.Lookup(int32_t(pidfd), &n));
  CHECK(n == 5);

  // Another thread is another task with storage of its own.
  absl::Status worker;
  std::thread t([&] {
    for (int i = 0; i < 3 && worker.ok(); ++i) worker = count.Run().status();
  });
  t.join();
  REQUIRE_OK(worker);
  REQUIRE_OK(runs.Lookup(int32_t(pidfd), &n));
  CHECK(n == 5);

  // A raw tracepoint runs once a test run: a count is refused, and
  // nothing ran.
  RunOptions many;
  many.repeat = 3;
  auto refused = count.Run(many);
  CHECK(refused.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(refused.status().message()), Catch::Contains("count_task") && Catch::Contains("repeat 3"));
  REQUIRE_OK(runs.Lookup(int32_t(pidfd), &n));
  CHECK(n == 5);

  REQUIRE_OK(runs.Update(int32_t(pidfd), uint64_t{1000}));
  RunOnce(count);
  REQUIRE_OK(runs.Lookup(int32_t(pidfd), &n));
  CHECK(n == 1001);
  REQUIRE_OK(runs.Delete(int32_t(pidfd)));
  RunOnce(count);
  REQUIRE_OK(runs.Lookup(int32_t(pidfd), &n));
  CHECK(n == 1);
  close(pidfd);
}

TEST_CASE("cgroup local storage (cgrp_storage): a counter per cgroup, keyed by its directory",
          "[map][cgrp_storage]") {
  TETHER_REQUIRE_FEATURE("map_type:cgrp_storage", probe::HaveMapType(sys::uapi::kMapTypeCgrpStorage));
  TempCgroup cg;
  if (!cg.ok()) TETHER_SKIP_OR_FAIL(cg.why());
  CollectionSpec spec = Spec();
  Map runs;
  Program count;
  REQUIRE_OK(LoadAndAssign(spec, {{{"cgroup_runs", &runs}}, {{"count_cgroup", &count}}}));

  // A child in the test cgroup runs the program; its cgroup's storage
  // counts, the parent's does not.
  int rc = cg.RunInChild([&] {
    for (int i = 0; i < 4; ++i) {
      std::array<uint8_t, 0> none{};
      auto r = count.Run({}, absl::MakeSpan(none), nullptr);
      if (!r.ok() || *r != 0) return 1;
    }
    return 0;
  });
  REQUIRE(rc == 0);
  int dir = open(cg.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(dir >= 0);
  uint64_t n = 0;
  REQUIRE_OK(runs.Lookup(int32_t(dir), &n));
  CHECK(n == 4);

  // The parent's own cgroup, from /proc/self/cgroup under the same mount.
  std::string root = cg.path().substr(0, cg.path().rfind('/'));
  std::ifstream self("/proc/self/cgroup");
  std::string line, own;
  while (std::getline(self, line)) {
    if (absl::StartsWith(line, "0::")) own = root + line.substr(3);
  }
  REQUIRE_FALSE(own.empty());
  int own_dir = open(own.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(own_dir >= 0);
  CHECK(runs.Lookup(int32_t(own_dir), &n).code() == absl::StatusCode::kNotFound);
  RunOnce(count);
  RunOnce(count);
  REQUIRE_OK(runs.Lookup(int32_t(own_dir), &n));
  CHECK(n == 2);
  REQUIRE_OK(runs.Lookup(int32_t(dir), &n));
  CHECK(n == 4);
  REQUIRE_OK(runs.Delete(int32_t(own_dir)));
  close(own_dir);
  close(dir);
}

TEST_CASE("inode storage: an LSM program counts this process's opens of each file in its inode",
          "[map][inode_storage]") {
  TETHER_REQUIRE_FEATURE("prog_type:lsm", probe::HaveProgramType(BPF_PROG_TYPE_LSM));
  TETHER_REQUIRE_FEATURE("trampolines", probe::HaveTrampolines());
  CollectionSpec spec = Spec();
  REQUIRE_OK(spec.SetVariable("target_tgid", static_cast<uint32_t>(getpid())));
  Map opens;
  Program count;
  REQUIRE_OK(LoadAndAssign(spec, {{{"inode_opens", &opens}}, {{"count_open", &count}}}));
  char a_path[] = "/tmp/tether-inode-a-XXXXXX", b_path[] = "/tmp/tether-inode-b-XXXXXX";
  int a = mkstemp(a_path), b = mkstemp(b_path);
  REQUIRE(a >= 0);
  REQUIRE(b >= 0);
  uint64_t n = 0;
  {
    auto link = AttachTracing(count, BPF_LSM_MAC);
    REQUIRE_OK(link);
    for (int i = 0; i < 3; ++i) close(open(a_path, O_RDONLY | O_CLOEXEC));
    close(open(b_path, O_RDONLY | O_CLOEXEC));
    // The key is any fd of the file: the count belongs to the inode.
    REQUIRE_OK(opens.Lookup(int32_t(a), &n));
    CHECK(n == 3);
    REQUIRE_OK(opens.Lookup(int32_t(b), &n));
    CHECK(n == 1);
  }
  // Detached, opens are no longer counted; the storage stays with the inode.
  close(open(a_path, O_RDONLY | O_CLOEXEC));
  REQUIRE_OK(opens.Lookup(int32_t(a), &n));
  CHECK(n == 3);
  REQUIRE_OK(opens.Delete(int32_t(a)));
  CHECK(opens.Lookup(int32_t(a), &n).code() == absl::StatusCode::kNotFound);
  close(a);
  close(b);
  unlink(a_path);
  unlink(b_path);
}
