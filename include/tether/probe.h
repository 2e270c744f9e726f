// Feature probes: what the running kernel supports, asked once per process.
//
// Each probe gives one of three answers, and says which (AnswerOf):
//  - present: OK;
//  - missing: Unimplemented, the kernel lacks the feature; the message
//    names it and the release (or config option) that brought it;
//  - refused here: PermissionDenied, marked as a probe's answer: the kernel
//    knows the feature but refuses a known-good minimal use of it (EPERM or
//    EACCES) although this process holds every BPF privilege, as a
//    lockdown, a hardening policy, an LSM or seccomp rule, or a missing
//    config option does; the message names the errno and the likely cause.
// Any other status means the probe itself could not run (no privilege,
// say): that is no evidence either way.
#ifndef TETHER_PROBE_H_
#define TETHER_PROBE_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tether::probe {

enum class Answer {
  kPresent,
  kMissing,
  kRefused,
  kCouldNotRun,
};
// Which answer a probe's status gives.
Answer AnswerOf(const absl::Status& probe_result);
// "present", "missing", "refused here", "could not run".
const char* AnswerName(Answer answer);
// Missing or refused here: the feature cannot be used on this kernel, and
// the probe is sure of it. Tests skip on this, and only on this.
inline bool Unusable(const absl::Status& probe_result) {
  Answer a = AnswerOf(probe_result);
  return a == Answer::kMissing || a == Answer::kRefused;
}

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
  kNetfilter,            // netfilter links, 6.4
  kStructOps,            // struct_ops links (.struct_ops.link, map flag BPF_F_LINK), 6.4
};
const char* LinkKindName(LinkKind kind);
// The first kernel release with `kind`, e.g. "6.6".
const char* LinkKindSince(LinkKind kind);
// Whether the running kernel can make links of `kind`. Unimplemented
// names the feature and the version that brought it.
absl::Status HaveLinkKind(LinkKind kind);
// Whether the kernel's BTF loader accepts a type of `kind` (BTF_KIND_*):
// FLOAT 5.13, DECL_TAG 5.16, TYPE_TAG 5.17, ENUM64 6.0. Object loaders ask
// this before handing the kernel BTF that clang wrote for a newer one.
absl::Status HaveBtfKind(uint32_t kind);
// Whether BTF_KIND_FUNC accepts `linkage` (BTF_FUNC_STATIC, _GLOBAL 5.6,
// _EXTERN, which kernels refuse in program BTF).
absl::Status HaveBtfFuncLinkage(uint32_t linkage);
// BPF_PROG_LOAD reports the size the whole verifier log needs (6.4).
absl::Status HaveLogTrueSize();
// BPF tokens: BPF_TOKEN_CREATE and BPF_F_TOKEN_FD (6.9).
absl::Status HaveTokens();
// BPF trampolines: an fentry program loads against a kernel function and
// attaches (5.5, x86-64 with CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS). The
// same machinery backs fexit, freplace and BPF LSM programs.
absl::Status HaveTrampolines();
// Whether the kernel describes a kfunc called `name`, in vmlinux's BTF or
// in a loaded module's. Asked once per process like every probe: load the
// module first. That a kfunc exists says nothing of which program types
// may call it; kfuncs have no stable set of versions to name.
absl::Status HaveKfunc(absl::string_view name);
// Typed ksyms of kernel variables (5.10): the kernel resolves them through
// kallsyms, which lists variables only with CONFIG_KALLSYMS_ALL.
absl::Status HaveTypedKsyms();
// BPF iterators over `target` ("bpf_map_elem", "task", ...): a minimal
// iterator program loads against bpf_iter_<target> (each target has its
// own release; a kernel may refuse some targets and accept others).
absl::Status HaveIterator(absl::string_view target);
// BPF_MAP_*_BATCH commands (5.6).
absl::Status HaveBatchOps();
// BPF_MAP_LOOKUP_AND_DELETE_ELEM on maps of `map_type` (hash maps 5.14,
// queues and stacks 4.20; stack trace maps only in recent kernels).
absl::Status HaveLookupAndDelete(uint32_t map_type);
// fmod_ret programs on bpf_modify_return_test (5.7): trampolines, and a
// target the kernel lets BPF change the return of (error injection,
// CONFIG_FUNCTION_ERROR_INJECTION).
absl::Status HaveModifyReturn();

// struct_ops (5.6): a minimal program implementing a member of the
// kernel's tcp_congestion_ops loads. Registering one (BPF_MAP_UPDATE_ELEM
// on its map) builds trampolines, which this probe leaves to the caller.
absl::Status HaveStructOps();

// Runs every probe above with the arguments that the tests and docs care
// about, so that Report() lists them all.
void ProbeAll();

// Runs `probe` once per process under `name` and caches its result. Probes
// defined elsewhere (links, BTF kinds) register through this.
absl::Status Cached(absl::string_view name, const std::function<absl::Status()>& probe);

// Every probe run so far, one per line: "name: present", or
// "name: missing: <why>", "name: refused here: <why>",
// "name: could not run: <status>"; for test reports and `docs/kernels.md`.
std::string Report();

// "6.18.4": the running kernel's release.
std::string KernelRelease();

}  // namespace tether::probe

#endif  // TETHER_PROBE_H_
