// Test entry point: makes sure the environment is usable, and checks after
// every test case that it left no fd open and nothing under the test bpffs
// directory. A leak fails the run and names the leaked fds.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "sys/bpf.h"
#include "tether/map.h"
#include "tether/program.h"
#include "test_support.h"

namespace {

int g_leaking_tests = 0;

std::vector<std::string> PinDirEntries() {
  std::vector<std::string> out;
  std::string root = "/sys/fs/bpf/tether-test";
  struct stat st;
  if (stat(root.c_str(), &st) != 0) return out;
  // Only this process's directories count: other test runs may share the root.
  std::string prefix = std::to_string(getpid()) + "-";
  if (DIR* dir = opendir(root.c_str())) {
    while (struct dirent* ent = readdir(dir)) {
      std::string name = ent->d_name;
      if (name.rfind(prefix, 0) == 0) out.push_back(root + "/" + name);
    }
    closedir(dir);
  }
  return out;
}

class LeakListener : public Catch::TestEventListenerBase {
 public:
  using TestEventListenerBase::TestEventListenerBase;

  void testCaseStarting(const Catch::TestCaseInfo&) override {
    fds_before_ = tether::testing::OpenFds();
    pins_before_ = PinDirEntries();
  }

  void testCaseEnded(const Catch::TestCaseStats& stats) override {
    std::vector<std::string> after = tether::testing::OpenFds();
    std::vector<std::string> extra;
    for (const auto& fd : after) {
      if (std::find(fds_before_.begin(), fds_before_.end(), fd) == fds_before_.end()) {
        extra.push_back(fd);
      }
    }
    std::vector<std::string> pins = PinDirEntries();
    if (!extra.empty() || pins.size() > pins_before_.size()) {
      ++g_leaking_tests;
      fprintf(stderr, "\nLEAK in test case '%s':\n", stats.testInfo.name.c_str());
      for (const auto& fd : extra) fprintf(stderr, "  extra fd %s\n", fd.c_str());
      for (const auto& pin : pins) fprintf(stderr, "  pin dir left behind: %s\n", pin.c_str());
    }
  }

 private:
  std::vector<std::string> fds_before_;
  std::vector<std::string> pins_before_;
};

// TETHER_TEST_REFUSE="map:arena,prog:tracing" plays a kernel that refuses
// those types with EPERM, through the syscall layer's fault hook, for the
// whole run: the suite must then skip what depends on them, naming the
// probe, and pass. Returns false on a name it does not know.
bool InstallRefusals(const char* spec) {
  for (absl::string_view item : absl::StrSplit(spec, ',', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(item, ':');
    bool found = false;
    for (uint32_t t = 1; t < 64 && !found; ++t) {
      if (kv.first == "map" && kv.second == tether::MapTypeName(t)) {
        tether::sys::testing::RefuseMapType(t, EPERM);
        found = true;
      } else if (kv.first == "prog" && kv.second == tether::ProgramTypeName(t)) {
        tether::sys::testing::RefuseProgramType(t, tether::sys::testing::kAnyAttachType, EPERM);
        found = true;
      }
    }
    if (!found) {
      fprintf(stderr, "tether_tests: TETHER_TEST_REFUSE: unknown '%.*s' (want map:NAME or prog:NAME)\n",
              static_cast<int>(item.size()), item.data());
      return false;
    }
    fprintf(stderr, "tether_tests: playing a kernel that refuses %.*s with EPERM\n",
            static_cast<int>(item.size()), item.data());
  }
  return true;
}

}  // namespace

CATCH_REGISTER_LISTENER(LeakListener)

int main(int argc, char** argv) {
  if (geteuid() != 0) {
    fprintf(stderr, "tether_tests: the suite creates real BPF objects and needs root\n");
    return tether::testing::UnderCi() ? 1 : 77;  // 77: meson's "skipped"
  }
  std::string why;
  if (!tether::testing::EnsureBpffs(&why)) {
    fprintf(stderr, "tether_tests: %s\n", why.c_str());
    if (tether::testing::UnderCi()) return 1;
  }
  if (const char* refuse = getenv("TETHER_TEST_REFUSE"); refuse && !InstallRefusals(refuse)) return 2;
  int result = Catch::Session().run(argc, argv);
  if (g_leaking_tests > 0) {
    fprintf(stderr, "%d test case(s) leaked fds or pins\n", g_leaking_tests);
    return result ? result : 1;
  }
  return result;
}
