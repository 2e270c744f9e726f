// Name lookups in the kernel's own BTF (/sys/kernel/btf/vmlinux), for the
// attach_btf_id that tracing and iterator programs are loaded with.
// Internal, and the only place that reads vmlinux BTF for attachments:
// when the project's Btf class lands, this switches to it.
#ifndef TETHER_LIB_VMLINUX_BTF_INTERNAL_H_
#define TETHER_LIB_VMLINUX_BTF_INTERNAL_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace tether::detail {

// The id of the type called `name` of BTF kind `kind` (BTF_KIND_FUNC,
// BTF_KIND_TYPEDEF...). The file is parsed once per process.
absl::StatusOr<uint32_t> VmlinuxBtfTypeId(const std::string& name, uint32_t kind);

}  // namespace tether::detail

#endif  // TETHER_LIB_VMLINUX_BTF_INTERNAL_H_
