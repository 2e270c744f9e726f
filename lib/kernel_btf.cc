#include "kernel_btf.h"

#include <dirent.h>

#include <algorithm>
#include <map>

#include "absl/base/call_once.h"
#include "absl/strings/str_cat.h"
#include "mutex_internal.h"

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
absl::StatusOr<const Btf*> KernelModuleBtf(const std::string& module) {
  if (module.empty() || module == "vmlinux" || module.find('/') != std::string::npos ||
      module[0] == '.') {
    return absl::InvalidArgumentError(absl::StrCat("'", module, "' is not a kernel module name"));
  }
  static detail::Mutex mu(absl::kConstInit);
  // Parsed modules live until exit: relocated programs and CO-RE targets
  // keep pointers into them.
  static auto* cache = new std::map<std::string, absl::StatusOr<const Btf*>>;
  detail::MutexLock lock(&mu);
  if (auto it = cache->find(module); it != cache->end()) return it->second;
  auto vmlinux = KernelBtf();
  if (!vmlinux.ok()) return vmlinux.status();
  auto btf = Btf::LoadKernel(absl::StrCat("/sys/kernel/btf/", module), *vmlinux);
  absl::StatusOr<const Btf*> result =
      btf.ok() ? absl::StatusOr<const Btf*>(new Btf(std::move(*btf)))
               : absl::StatusOr<const Btf*>(absl::Status(
                     btf.status().code(),
                     absl::StrCat("module BTF '", module, "': ", btf.status().message())));
  cache->emplace(module, result);
  return result;
}

const std::vector<const Btf*>& KernelModuleBtfs() {
  static absl::once_flag once;
  static std::vector<const Btf*>* all = nullptr;
  absl::call_once(once, [] {
    all = new std::vector<const Btf*>;
    std::vector<std::string> names;
    if (DIR* d = opendir("/sys/kernel/btf")) {
      while (struct dirent* e = readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != ".." && n != "vmlinux") names.push_back(n);
      }
      closedir(d);
    }
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) {
      // A module whose BTF does not parse is left out rather than failing
      // every relocation that has to look beyond vmlinux.
      auto btf = KernelModuleBtf(n);
      if (btf.ok()) all->push_back(*btf);
    }
  });
  return *all;
}

}  // namespace tether
