#include "sys/perf_event_internal.h"

#include <fcntl.h>
#include <linux/perf_event.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace tether::detail {
namespace {

bool HasEvents(const std::string& root) {
  struct stat st;
  return stat((root + "/events").c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, absl::string_view what) {
  std::ifstream in(path);
  if (!in) return sys::ErrnoStatus(errno ? errno : ENOENT, what, absl::StrCat("read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

long PerfEventOpen(perf_event_attr* attr, int pid, int cpu) {
  return syscall(__NR_perf_event_open, attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
}

// The bit of perf_event_attr.config that asks a probe PMU for a return
// probe, from its format/retprobe file ("config:0").
absl::StatusOr<int> RetprobeBit(const std::string& pmu) {
  std::string path = absl::StrCat("/sys/bus/event_source/devices/", pmu, "/format/retprobe");
  auto text = ReadSmallFile(path, absl::StrCat(pmu, " PMU"));
  if (!text.ok()) return text.status();
  absl::string_view v = absl::StripAsciiWhitespace(*text);
  int bit = 0;
  if (!absl::ConsumePrefix(&v, "config:") || !absl::SimpleAtoi(v, &bit)) {
    return absl::InternalError(absl::StrCat(path, ": unexpected format '", *text, "'"));
  }
  return bit;
}

}  // namespace

absl::StatusOr<std::string> TracefsRoot() {
  for (const char* root : {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}) {
    if (HasEvents(root)) return std::string(root);
  }
  // Debian mounts tracefs on demand only; the tracepoint ids live there.
  if (mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, nullptr) != 0) {
    return sys::ErrnoStatus(errno, "tracefs at /sys/kernel/tracing", "mount");
  }
  if (!HasEvents("/sys/kernel/tracing")) {
    return absl::NotFoundError("tracefs at /sys/kernel/tracing has no events/ directory");
  }
  return std::string("/sys/kernel/tracing");
}

absl::StatusOr<uint32_t> TracepointId(const std::string& category, const std::string& name) {
  std::string what = absl::StrCat("tracepoint ", category, "/", name);
  if (category.find('/') != std::string::npos || name.find('/') != std::string::npos ||
      category.empty() || name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": category and name must be plain names"));
  }
  auto root = TracefsRoot();
  if (!root.ok()) return root.status();
  std::string path = absl::StrCat(*root, "/events/", category, "/", name, "/id");
  auto text = ReadSmallFile(path, what);
  if (!text.ok()) {
    return absl::NotFoundError(absl::StrCat(what, ": no such tracepoint (", path,
                                            " is missing; see ", *root, "/available_events)"));
  }
  uint32_t id = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &id)) {
    return absl::InternalError(absl::StrCat(what, ": ", path, " holds '", *text, "'"));
  }
  return id;
}

absl::StatusOr<uint32_t> PmuType(const std::string& pmu) {
  std::string path = absl::StrCat("/sys/bus/event_source/devices/", pmu, "/type");
  auto text = ReadSmallFile(path, absl::StrCat(pmu, " PMU"));
  if (!text.ok()) return text.status();
  uint32_t type = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &type)) {
    return absl::InternalError(absl::StrCat(path, " holds '", *text, "'"));
  }
  return type;
}

absl::StatusOr<sys::Fd> OpenTracepointEvent(const std::string& category, const std::string& name) {
  auto id = TracepointId(category, name);
  if (!id.ok()) return id.status();
  perf_event_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.size = sizeof(attr);
  attr.type = PERF_TYPE_TRACEPOINT;
  attr.config = *id;
  // A program on a tracepoint event runs for every hit on every CPU; the
  // CPU given here only places the (unused) event buffer.
  long fd = PerfEventOpen(&attr, -1, 0);
  if (fd < 0) {
    return sys::ErrnoStatus(errno, absl::StrCat("tracepoint ", category, "/", name),
                            "perf_event_open");
  }
  return sys::Fd(static_cast<int>(fd));
}

namespace {
// kprobe and uprobe PMUs share a layout: config1 names the target (a
// function, or a file), config2 the offset, and a config bit read from sysfs
// makes it a return probe.
absl::StatusOr<sys::Fd> OpenProbeEvent(const char* pmu, const char* target, uint64_t offset,
                                       bool retprobe, int pid, int cpu, const std::string& what,
                                       uint64_t ref_ctr_offset = 0) {
  auto type = PmuType(pmu);
  if (!type.ok()) return type.status();
  perf_event_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.size = sizeof(attr);
  attr.type = *type;
  if (retprobe) {
    auto bit = RetprobeBit(pmu);
    if (!bit.ok()) return bit.status();
    attr.config |= 1ull << *bit;
  }
  // The uprobe PMU takes a semaphore's file offset in config bits 32-63
  // (PERF_UPROBE_REF_CTR_OFFSET_SHIFT, 4.20): the kernel increments the
  // counter there while the probe is on.
  if (ref_ctr_offset != 0) {
    if (ref_ctr_offset > UINT32_MAX) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": semaphore file offset 0x", absl::Hex(ref_ctr_offset), " does not fit in 32 bits"));
    }
    attr.config |= ref_ctr_offset << 32;
  }
  attr.config1 = reinterpret_cast<uintptr_t>(target);
  attr.config2 = offset;
  long fd = PerfEventOpen(&attr, pid, cpu);
  if (fd < 0) return sys::ErrnoStatus(errno, what, "perf_event_open");
  return sys::Fd(static_cast<int>(fd));
}
}  // namespace

absl::StatusOr<sys::Fd> OpenSamplingEvent(uint32_t type, uint64_t config, uint64_t period,
                                          uint64_t frequency, int cpu, int pid) {
  std::string what = absl::StrFormat("sampling event type %u config %u on cpu %d%s", type, config, cpu,
                                     pid >= 0 ? absl::StrCat(" for pid ", pid) : "");
  if (period == 0 && frequency == 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": needs a period or a frequency"));
  }
  perf_event_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.size = sizeof(attr);
  attr.type = type;
  attr.config = config;
  if (frequency != 0) {
    attr.freq = 1;
    attr.sample_freq = frequency;
  } else {
    attr.sample_period = period;
  }
  long fd = PerfEventOpen(&attr, pid, cpu);
  if (fd < 0) return sys::ErrnoStatus(errno, what, "perf_event_open");
  return sys::Fd(static_cast<int>(fd));
}

absl::StatusOr<sys::Fd> OpenKprobeEvent(const std::string& symbol, uint64_t offset, bool retprobe) {
  return OpenProbeEvent("kprobe", symbol.c_str(), offset, retprobe, -1, 0,
                        absl::StrCat(retprobe ? "kretprobe " : "kprobe ", symbol));
}

absl::StatusOr<sys::Fd> OpenUprobeEvent(const std::string& path, uint64_t offset, bool retprobe,
                                        int pid, uint64_t ref_ctr_offset) {
  // All processes: a CPU must be named; one process: any CPU.
  return OpenProbeEvent("uprobe", path.c_str(), offset, retprobe, pid < 0 ? -1 : pid,
                        pid < 0 ? 0 : -1,
                        absl::StrCat(retprobe ? "uretprobe " : "uprobe ", path, "+0x", absl::Hex(offset),
                                     ref_ctr_offset ? absl::StrCat(" (semaphore at 0x",
                                                                   absl::Hex(ref_ctr_offset), ")")
                                                    : ""),
                        ref_ctr_offset);
}

}  // namespace tether::detail
