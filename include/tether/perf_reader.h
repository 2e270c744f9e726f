// PerfReader: reads what BPF programs send with bpf_perf_event_output().
//
// For each online CPU that the BPF_MAP_TYPE_PERF_EVENT_ARRAY has a slot
// for, the reader opens a PERF_COUNT_SW_BPF_OUTPUT event, maps its ring
// and stores its fd in the array at that CPU's index (programs write with
// BPF_F_CURRENT_CPU). It then delivers PERF_RECORD_SAMPLE payloads to one
// callback and PERF_RECORD_LOST counts (samples dropped because the ring
// was full) to another.
//
// Samples reach the callback as a span into the ring, valid during the
// callback only. A sample that wraps around the end of the ring is first
// copied into a scratch buffer sized once at creation, so the callback
// still sees one span. The raw size the kernel reports is rounded so that
// records stay 8-byte aligned: a sample may carry up to 7 bytes of zero
// padding after what the program wrote.
//
// Threads: Poll and Consume belong to one thread at a time; Wakeup may be
// called from any thread.
#ifndef TETHER_PERF_READER_H_
#define TETHER_PERF_READER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "tether/map.h"

struct epoll_event;

namespace tether {

struct PerfReaderOptions {
  // Ring size per CPU, in pages; a power of two.
  uint32_t pages_per_cpu = 8;
  // Wake a waiting Poll after this many samples on a CPU (1: every one).
  uint32_t wakeup_events = 1;
  std::function<void(uint32_t cpu, absl::Span<const uint8_t> sample)> on_sample;
  // Optional: samples the kernel dropped because the CPU's ring was full.
  std::function<void(uint32_t cpu, uint64_t lost)> on_lost;
};

class PerfReader {
 public:
  // Opens, maps and installs one ring per online CPU < max_entries.
  static absl::StatusOr<std::unique_ptr<PerfReader>> Create(const Map& perf_event_array,
                                                           PerfReaderOptions options);
  // Removes the rings from the array, unmaps and closes them.
  ~PerfReader();
  PerfReader(const PerfReader&) = delete;
  PerfReader& operator=(const PerfReader&) = delete;

  // Waits until a ring has records, `timeout` passes (negative: no limit)
  // or Wakeup() is called, then reads the ready rings. Returns the number
  // of samples delivered. Allocates nothing.
  absl::StatusOr<int> Poll(std::chrono::milliseconds timeout);
  // Reads every ring without waiting.
  int Consume();
  // Makes the current (or else the next) Poll return. Any thread.
  void Wakeup() const;
  bool woken() const { return woken_; }

  // The CPUs with a ring, in ring order.
  std::vector<uint32_t> cpus() const;
  // Sum of all PERF_RECORD_LOST counts seen so far.
  uint64_t lost() const { return lost_; }
  int epoll_fd() const { return epoll_fd_; }
  const Map& map() const { return map_; }

 private:
  struct CpuRing;
  PerfReader(Map map, PerfReaderOptions options, int epoll_fd, int event_fd);
  int ConsumeRing(CpuRing& ring);

  Map map_;
  PerfReaderOptions options_;
  int epoll_fd_;
  int event_fd_;
  bool woken_ = false;
  uint64_t lost_ = 0;
  std::vector<std::unique_ptr<CpuRing>> rings_;
  std::unique_ptr<epoll_event[]> events_;
  size_t events_capacity_ = 0;
  std::vector<uint8_t> scratch_;  // for samples that wrap around a ring
};

// The online CPUs, from /sys/devices/system/cpu/online.
std::vector<uint32_t> OnlineCpus();

}  // namespace tether

#endif  // TETHER_PERF_READER_H_
