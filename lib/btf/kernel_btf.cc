#include "btf/kernel_btf.h"


#include <cerrno>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "base/mutex_internal.h"
#include "sys/bpf.h"

namespace tether {

absl::StatusOr<const Btf*> KernelBtf() {
  // A function-local static rather than absl::call_once: the same once-only
  // guarantee, through the C++ runtime's guard, which ThreadSanitizer sees
  // (Debian's libabsl is not built for it, so a call_once inside it is an
  // edge TSan misses, and it reported the readers of `result` as racing).
  static const absl::StatusOr<const Btf*>* const result = []() -> absl::StatusOr<const Btf*>* {
    auto btf = Btf::LoadKernel();
    if (btf.ok()) return new absl::StatusOr<const Btf*>(new Btf(std::move(*btf)));  // lives until exit
    return new absl::StatusOr<const Btf*>(absl::Status(
        btf.status().code(), absl::StrCat("kernel BTF: ", btf.status().message())));
  }();
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
namespace detail {

absl::StatusOr<std::vector<ModuleBtf>> LoadedModuleBtfs(absl::Status* refused) {
  auto vmlinux = KernelBtf();
  if (!vmlinux.ok()) return vmlinux.status();
  struct Seen {
    std::string name;
    const Btf* btf = nullptr;  // nullptr: not a module's BTF
  };
  static detail::Mutex mu(absl::kConstInit);
  static auto* seen = new absl::flat_hash_map<uint32_t, Seen>;
  // Every module BTF ever parsed: loads in other threads may still read
  // one whose module has gone since.
  static auto* parsed = new std::vector<std::unique_ptr<const Btf>>;
  detail::MutexLock lock(&mu);
  // Only ids present in this walk are kept, so the memory of ids stays
  // bounded by what the kernel holds, however many objects an agent loads.
  absl::flat_hash_map<uint32_t, Seen> now;
  std::vector<ModuleBtf> out;
  uint32_t id = 0;
  for (;;) {
    uint32_t next = 0;
    int err = sys::GetNextId(sys::ObjectKind::kBtf, id, &next);
    if (err == -ENOENT) break;
    if (err == -EINVAL && id == 0) break;  // before 5.4: no BTF ids, so no module BTF either
    // Walking ids takes CAP_SYS_ADMIN; an agent with CAP_BPF alone sees no
    // module BTF, as with libbpf, and vmlinux still answers.
    if (err == -EPERM) {
      if (refused) *refused = sys::ErrnoStatus(EPERM, "kernel module BTF", "BPF_BTF_GET_NEXT_ID");
      break;
    }
    if (err < 0) return sys::ErrnoStatus(-err, "kernel module BTF", "BPF_BTF_GET_NEXT_ID");
    id = next;
    if (auto it = seen->find(id); it != seen->end()) {
      now.emplace(id, it->second);
    } else {
      auto fd = sys::GetFdById(sys::ObjectKind::kBtf, id);
      if (!fd.ok()) {
        if (sys::StatusErrno(fd.status()) == ENOENT) continue;  // freed since GET_NEXT_ID
        if (sys::StatusErrno(fd.status()) == EPERM) {  // see GET_NEXT_ID above
          if (refused) *refused = fd.status();
          break;
        }
        return sys::ErrnoStatus(sys::StatusErrno(fd.status()), absl::StrCat("BTF id ", id),
                                "BPF_BTF_GET_FD_BY_ID");
      }
      auto info = sys::GetBtfInfo(fd->get());
      // Before 5.11 bpf_btf_info had no name or kernel_btf, and the kernel
      // refuses the longer struct (E2BIG). Those kernels have no module
      // BTF either: the object is simply not a module's.
      int info_err = info.ok() ? 0 : sys::StatusErrno(info.status());
      if (info_err == E2BIG || info_err == EINVAL) {
        now.emplace(id, Seen{});
        continue;
      }
      if (!info.ok()) return info.status();
      Seen s;
      s.name = info->name;
      if (info->kernel_btf && info->name != "vmlinux") {
        std::vector<uint8_t> data;
        auto again = sys::GetBtfInfo(fd->get(), &data);
        if (!again.ok()) return again.status();
        auto btf = Btf::Parse(data, absl::StrCat("module BTF '", info->name, "'"), *vmlinux);
        // A module whose BTF does not parse is left out rather than
        // failing every load: nothing can be found there anyway.
        if (btf.ok()) {
          parsed->push_back(std::make_unique<const Btf>(std::move(*btf)));
          s.btf = parsed->back().get();
        }
      }
      now.emplace(id, std::move(s));
    }
    const Seen& s = now.at(id);
    if (s.btf) out.push_back({s.name, id, s.btf});
  }
  *seen = std::move(now);
  return out;
}

}  // namespace detail
}  // namespace tether
