// perf events that BPF programs attach to through BPF_PERF_EVENT links:
// tracepoints (found through tracefs), kprobes and uprobes (made through
// their dynamic PMUs, so no tracefs writes and nothing left behind).
// Internal.
#ifndef TETHER_LIB_PERF_EVENT_INTERNAL_H_
#define TETHER_LIB_PERF_EVENT_INTERNAL_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "sys/bpf.h"

namespace tether::detail {

// The tracefs root that has an events/ directory, mounting tracefs at
// /sys/kernel/tracing if nothing is mounted there.
absl::StatusOr<std::string> TracefsRoot();
// The id of tracepoint category/name, from tracefs.
absl::StatusOr<uint32_t> TracepointId(const std::string& category, const std::string& name);

absl::StatusOr<sys::Fd> OpenTracepointEvent(const std::string& category, const std::string& name);
// A kprobe (or kretprobe) on `symbol` + `offset`, through the kprobe PMU.
absl::StatusOr<sys::Fd> OpenKprobeEvent(const std::string& symbol, uint64_t offset, bool retprobe);
// A uprobe (or uretprobe) at file offset `offset` of `path`; pid -1: all
// processes. A non-zero `ref_ctr_offset` is the file offset of a USDT
// semaphore, which the kernel increments while the probe is on.
absl::StatusOr<sys::Fd> OpenUprobeEvent(const std::string& path, uint64_t offset, bool retprobe,
                                        int pid, uint64_t ref_ctr_offset = 0);
// A sampling event (a profiler's): perf event `type`/`config` (e.g.
// PERF_TYPE_SOFTWARE/PERF_COUNT_SW_CPU_CLOCK) on `cpu` for `pid` (-1: every
// process on that CPU), firing every `period` events, or `frequency` times a
// second when frequency is not 0.
absl::StatusOr<sys::Fd> OpenSamplingEvent(uint32_t type, uint64_t config, uint64_t period,
                                          uint64_t frequency, int cpu, int pid);
// The PMU type number from /sys/bus/event_source/devices/<pmu>/type.
absl::StatusOr<uint32_t> PmuType(const std::string& pmu);

}  // namespace tether::detail

#endif  // TETHER_LIB_PERF_EVENT_INTERNAL_H_
