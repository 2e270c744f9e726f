// The running kernel's BTF, parsed once per process and shared by every
// load (CO-RE, ksyms, kfuncs, attach targets). Parsing vmlinux costs tens
// of milliseconds; paying it once matters to agents that load often.
#ifndef TETHER_LIB_KERNEL_BTF_H_
#define TETHER_LIB_KERNEL_BTF_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tether/btf.h"

namespace tether {

// Parsed lazily on first use; the result (or the error) is cached.
absl::StatusOr<const Btf*> KernelBtf();

namespace detail {
// The id of the type called `name` of BTF kind `kind` (BTF_KIND_FUNC,
// BTF_KIND_TYPEDEF...) in the kernel's BTF: the attach_btf_id of tracing,
// LSM and iterator programs.
absl::StatusOr<uint32_t> VmlinuxBtfTypeId(const std::string& name, uint32_t kind);

// A kernel module's BTF as the kernel holds it at the time of the call.
struct ModuleBtf {
  std::string name;          // the module's, "nf_conntrack"
  uint32_t obj_id = 0;       // BTF object id: BPF_BTF_GET_FD_BY_ID opens it
  const Btf* btf = nullptr;  // its own types, split over vmlinux; lives until exit
};

// The module BTFs loaded now, in BTF object id order (the order libbpf
// searches them in). Modules come and go, so every call walks the
// kernel's BTF ids; but it opens only ids it has not seen before. An id
// that is not a module's (a program's BTF, vmlinux) is remembered as such,
// and a module's types are read and parsed once per BTF object, from that
// object itself, so its type ids are the ones its fd stands for.
//
// Without CAP_SYS_ADMIN the kernel refuses the walk (EPERM): the result is
// then the modules seen before the refusal (usually none), and `refused`,
// if given, gets the refusal, so that "not found" can say why.
absl::StatusOr<std::vector<ModuleBtf>> LoadedModuleBtfs(absl::Status* refused = nullptr);

}  // namespace detail

}  // namespace tether

#endif  // TETHER_LIB_KERNEL_BTF_H_
