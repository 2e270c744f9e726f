// What a load needs from the running kernel to fill in a program's
// externs: its config (.kconfig), and where vmlinux or a module describes
// each ksym and kfunc. One resolver lives for one load: it reads the
// config and walks module BTF at most once, and holds the module BTF fds
// that PROG_LOAD needs until the loads are done.
#ifndef TETHER_LIB_LOAD_EXTERNS_H_
#define TETHER_LIB_LOAD_EXTERNS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/optional.h"
#include "btf/kernel_btf.h"
#include "sys/bpf.h"
#include "tether/btf.h"
#include "tether/collection.h"
#include "tether/collection_spec.h"
#include "tether/map.h"

namespace tether::detail {

class ExternResolver {
 public:
  ExternResolver(const CollectionSpec& spec, const CollectionOptions& options)
      : spec_(spec), opt_(options) {}

  // The running kernel's config (or CollectionOptions::kernel_config).
  absl::StatusOr<const KernelConfig*> Config();
  // The .kconfig map's contents for this object.
  absl::StatusOr<std::vector<uint8_t>> KconfigContents();
  // Fills in map fds, ksyms and kfuncs in `lp`. `map_fd(i)` is the fd of
  // the map that fixup i names (kMapFd, kMapValue, kKconfig), -1 if none
  // was created: the loader resolved the names once. `fd_array` receives
  // the module BTF fds that kfunc calls index with their `off`.
  absl::Status Patch(const std::string& prog_name, LinkedProgram& lp,
                     absl::FunctionRef<int(size_t)> map_fd, std::vector<int>* fd_array);

 private:
  // Where the kernel describes a function or variable: vmlinux first,
  // then each module's BTF in BTF id order, as libbpf searches.
  struct KernelSymbol {
    uint32_t type_id = 0;               // in vmlinux, or in the module's split BTF
    const ModuleBtf* module = nullptr;  // nullptr: vmlinux
  };
  absl::StatusOr<absl::optional<KernelSymbol>> FindKernelSymbol(const std::string& name,
                                                                BtfKind kind);
  std::string SearchedBtfs() const;
  absl::StatusOr<int> ModuleBtfFd(const ModuleBtf& m);

  const CollectionSpec& spec_;
  const CollectionOptions& opt_;
  absl::optional<absl::StatusOr<KernelConfig>> kernel_config_;
  absl::optional<absl::StatusOr<std::vector<ModuleBtf>>> modules_;
  absl::Status modules_refused_;            // the walk stopped at EPERM
  std::map<uint32_t, sys::Fd> module_fds_;  // module BTF object id -> fd, for this load
};

}  // namespace tether::detail

#endif  // TETHER_LIB_LOAD_EXTERNS_H_
