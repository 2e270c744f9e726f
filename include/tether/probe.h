// Feature probes: what the running kernel supports, asked once per process.
//
// Each probe returns OK when the feature is there, Unimplemented when the
// kernel lacks it (the message names the feature and the kernel version
// that brought it), and another code when the probe itself could not run
// (no privilege, say): that is not evidence that the feature is missing.
#ifndef TETHER_PROBE_H_
#define TETHER_PROBE_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tether::probe {

absl::Status HaveMapType(uint32_t map_type);
absl::Status HaveProgramType(uint32_t prog_type);
// Whether programs of `prog_type` may call `helper` (BPF_FUNC_*).
absl::Status HaveHelper(uint32_t prog_type, uint32_t helper);
// kprobe perf events (CONFIG_KPROBES).
absl::Status HaveKprobes();
// The kernel's own BTF at /sys/kernel/btf/vmlinux.
absl::Status HaveVmlinuxBtf();

// Runs `probe` once per process under `name` and caches its result. Probes
// defined elsewhere (links, BTF kinds) register through this.
absl::Status Cached(absl::string_view name, const std::function<absl::Status()>& probe);

// Every probe run so far, "name: OK" or "name: <status>", one per line;
// for test reports and `docs/kernels.md`.
std::string Report();

// "6.18.4": the running kernel's release.
std::string KernelRelease();

}  // namespace tether::probe

#endif  // TETHER_PROBE_H_
