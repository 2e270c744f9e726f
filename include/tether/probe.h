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

// Kinds of attachment, each with the kernel version that brought it.
enum class LinkKind {
  kXdp,                  // BPF_LINK_CREATE on XDP, 5.9
  kTcx,                  // tcx links, 6.6
  kCgroup,               // cgroup links, 5.7
  kPerfEvent,            // BPF_PERF_EVENT links (tracepoint, kprobe, uprobe), 5.15
  kKprobe,               // kprobe perf events (CONFIG_KPROBES) and perf links
  kKprobeMulti,          // kprobe.multi links, 5.18 (CONFIG_FPROBE)
  kUprobe,               // uprobe perf events (CONFIG_UPROBE_EVENTS) and perf links
  kUprobeMulti,          // uprobe.multi links, 6.6
  kRawTracepoint,        // BPF_RAW_TRACEPOINT_OPEN, 4.17
  kTpBtfLinkCreate,      // tp_btf through BPF_LINK_CREATE, 6.10
  kTpBtf,                // BTF-typed raw tracepoints (tp_btf), 5.5
  kTrampoline,           // fentry/fexit/fmod_ret/freplace/lsm trampolines, 5.5
  kIter,                 // BPF iterators, 5.8
  kNetnsSkLookup,        // sk_lookup netns links, 5.9
  kNetnsFlowDissector,   // flow_dissector netns links, 5.8
};
const char* LinkKindName(LinkKind kind);
// The first kernel release with `kind`, e.g. "6.6".
const char* LinkKindSince(LinkKind kind);
// Whether the running kernel can make links of `kind`. Unimplemented
// names the feature and the version that brought it.
absl::Status HaveLinkKind(LinkKind kind);
// Whether the kernel loads and attaches trampoline programs (fentry, fexit,
// fmod_ret, freplace, lsm). Some kernels (lockdown, or architectures or
// configs without trampolines) refuse them at load: Unimplemented then.
inline absl::Status HaveTrampolines() { return HaveLinkKind(LinkKind::kTrampoline); }

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
