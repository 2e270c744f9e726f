// The running kernel's BTF, parsed once per process and shared by every
// load (CO-RE, ksyms, kfuncs, attach targets). Parsing vmlinux costs tens
// of milliseconds; paying it once matters to agents that load often.
#ifndef TETHER_LIB_KERNEL_BTF_H_
#define TETHER_LIB_KERNEL_BTF_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tether/btf.h"

namespace tether {

// Parsed lazily on first use; the result (or the error) is cached.
absl::StatusOr<const Btf*> KernelBtf();

// /sys/kernel/btf/<module>: split BTF over vmlinux, whose ids continue
// after vmlinux's. Parsed on first use per module and cached.
absl::StatusOr<const Btf*> KernelModuleBtf(const std::string& module);

// Every module's BTF that parses, in name order; read once.
const std::vector<const Btf*>& KernelModuleBtfs();

}  // namespace tether

#endif  // TETHER_LIB_KERNEL_BTF_H_
