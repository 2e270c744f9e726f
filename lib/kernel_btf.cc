#include "kernel_btf.h"

#include "absl/base/call_once.h"
#include "absl/strings/str_cat.h"

namespace tether {

absl::StatusOr<const Btf*> KernelBtf() {
  static absl::once_flag once;
  static absl::StatusOr<const Btf*>* result = nullptr;
  absl::call_once(once, [] {
    auto btf = Btf::LoadKernel();
    if (btf.ok()) {
      result = new absl::StatusOr<const Btf*>(new Btf(std::move(*btf)));  // lives until exit
    } else {
      result = new absl::StatusOr<const Btf*>(absl::Status(
          btf.status().code(), absl::StrCat("kernel BTF: ", btf.status().message())));
    }
  });
  return *result;
}

namespace detail {

absl::StatusOr<uint32_t> VmlinuxBtfTypeId(const std::string& name, uint32_t kind) {
  auto btf = KernelBtf();
  if (!btf.ok()) return btf.status();
  auto id = (*btf)->FindByNameKind(name, static_cast<BtfKind>(kind));
  if (!id) {
    return absl::NotFoundError(absl::StrCat("kernel BTF has no ", BtfKindName(static_cast<BtfKind>(kind)),
                                            " named '", name, "'"));
  }
  return *id;
}

}  // namespace detail
}  // namespace tether
