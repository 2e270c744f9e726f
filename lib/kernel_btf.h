// The running kernel's BTF, parsed once per process and shared by every
// load (CO-RE, ksyms, kfuncs, attach targets). Parsing vmlinux costs tens
// of milliseconds; paying it once matters to agents that load often.
#ifndef TETHER_LIB_KERNEL_BTF_H_
#define TETHER_LIB_KERNEL_BTF_H_

#include "absl/status/statusor.h"
#include "tether/btf.h"

namespace tether {

// Parsed lazily on first use; the result (or the error) is cached.
absl::StatusOr<const Btf*> KernelBtf();

}  // namespace tether

#endif  // TETHER_LIB_KERNEL_BTF_H_
