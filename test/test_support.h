// Shared helpers for the live-kernel test suite.
#ifndef TETHER_TEST_TEST_SUPPORT_H_
#define TETHER_TEST_TEST_SUPPORT_H_

#include <linux/bpf.h>

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/status/status.h"
#include "tether/probe.h"

namespace tether::testing {

// Path of a BPF object compiled from test/bpf/<name>.bpf.c.
std::string BpfObjectPath(const std::string& name);
// Reads a whole file; fails the test if it cannot.
std::vector<uint8_t> ReadFileBytes(const std::string& path);

// Open fds of this process, as "N -> target" strings.
std::vector<std::string> OpenFds();
size_t CountOpenFds();

bool UnderCi();

// Mounts bpffs at /sys/fs/bpf if nothing is mounted there. Returns false
// (with *why set) if it cannot.
bool EnsureBpffs(std::string* why);

// A fresh directory under /sys/fs/bpf, removed with everything in it.
class TempPinDir {
 public:
  TempPinDir();
  ~TempPinDir();
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};
void RemoveTree(const std::string& path);

// Polls `pred` until it holds or `timeout_ms` passes. The kernel defers some
// work (clearing an orphaned prog array), so tests wait for it with a bound.
template <typename Pred>
bool Eventually(Pred pred, int timeout_ms = 2000) {
  for (int waited = 0; waited <= timeout_ms; waited += 5) {
    if (pred()) return true;
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, nullptr);
  }
  return pred();
}

}  // namespace tether::testing

// Skips the current test with a reason. A skip is allowed only when a kernel
// feature probe says the feature is missing; under CI=true every other
// skip is a failure, so callers pass the probe's name for the first kind.
#define TETHER_SKIP_FOR_PROBE(probe_name, reason)                              \
  do {                                                                         \
    WARN("SKIPPED (probe " << probe_name << "): " << reason);                  \
    return;                                                                    \
  } while (0)

// Goes on when the probe says the feature is present; skips, naming the
// probe and its answer, when the kernel lacks the feature or refuses it
// here; fails when the probe itself could not run, which proves nothing.
#define TETHER_REQUIRE_FEATURE(probe_name, probe_status)                       \
  do {                                                                         \
    const absl::Status tether_probe_st_ = (probe_status);                      \
    if (!tether_probe_st_.ok()) {                                              \
      if (::tether::probe::Unusable(tether_probe_st_)) {                       \
        TETHER_SKIP_FOR_PROBE(                                                 \
            probe_name, ::tether::probe::AnswerName(                           \
                            ::tether::probe::AnswerOf(tether_probe_st_))       \
                            << ": " << tether_probe_st_.message());            \
      }                                                                        \
      FAIL("probe " << probe_name << ": " << tether_probe_st_.ToString());     \
    }                                                                          \
  } while (0)

#define TETHER_SKIP_OR_FAIL(reason)                                            \
  do {                                                                         \
    if (::tether::testing::UnderCi()) FAIL("not skipped under CI: " << reason); \
    WARN("SKIPPED: " << reason);                                               \
    return;                                                                    \
  } while (0)

#endif  // TETHER_TEST_TEST_SUPPORT_H_
