// Extern resolution for a load: .kconfig values, ksyms (typed and untyped)
// and kfuncs, found in vmlinux or a module's BTF, or in /proc/kallsyms.
#include "load/externs.h"

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "sys/bpf.h"

namespace tether::detail {
namespace {

using base::Annotate;

absl::StatusOr<uint64_t> KallsymsAddress(absl::string_view name) {
  std::ifstream in("/proc/kallsyms");
  std::string addr, type, sym;
  while (in >> addr >> type >> sym) {
    std::string rest;
    std::getline(in, rest);  // module name, if any
    if (sym == name) {
      uint64_t v = std::stoull(addr, nullptr, 16);
      if (v == 0) {
        return absl::PermissionDeniedError(absl::StrCat(
            "ksym '", name, "': /proc/kallsyms shows address 0 (kptr_restrict; run as root)"));
      }
      return v;
    }
  }
  return absl::NotFoundError(absl::StrCat("ksym '", name, "': not in /proc/kallsyms"));
}

}  // namespace

// The running kernel's config, read at most once per load: kprobe
// programs without a version and .kconfig externs both need it.
absl::StatusOr<const KernelConfig*> ExternResolver::Config() {
  if (opt_.kernel_config) return opt_.kernel_config;
  if (!kernel_config_) kernel_config_ = KernelConfig::Load();
  if (!kernel_config_->ok()) return kernel_config_->status();
  return &**kernel_config_;
}

absl::StatusOr<std::vector<uint8_t>> ExternResolver::KconfigContents() {
  auto config = Config();
  if (!config.ok()) return config.status();
  return ResolveKconfig(spec_, **config);
}

absl::StatusOr<absl::optional<ExternResolver::KernelSymbol>> ExternResolver::FindKernelSymbol(
    const std::string& name, BtfKind kind) {
  auto vmlinux = KernelBtf();
  if (!vmlinux.ok()) return vmlinux.status();
  if (auto id = (*vmlinux)->FindByNameKind(name, kind)) return KernelSymbol{*id, nullptr};
  // Walked once per load, at the first symbol vmlinux lacks: a module
  // loaded since the last load is then found, and objects that need
  // nothing beyond vmlinux never pay for the walk.
  if (!modules_) modules_ = detail::LoadedModuleBtfs(&modules_refused_);
  if (!modules_->ok()) return modules_->status();
  for (const detail::ModuleBtf& m : **modules_) {
    if (auto id = m.btf->FindByNameKind(name, kind)) return KernelSymbol{*id, &m};
  }
  return absl::optional<KernelSymbol>();
}

// "vmlinux and 2 module BTFs (nf_conntrack, nf_defrag_ipv4)", for errors.
std::string ExternResolver::SearchedBtfs() const {
  size_t n = modules_ && modules_->ok() ? (*modules_)->size() : 0;
  std::string out = absl::StrCat("vmlinux and ", n, n == 1 ? " module BTF" : " module BTFs");
  if (!modules_refused_.ok()) {
    absl::StrAppend(&out, " (the kernel refused the walk of module BTF: ",
                    modules_refused_.message(), ")");
  }
  if (n == 0) return out;
  constexpr size_t kListed = 12;
  std::vector<std::string> names;
  for (size_t i = 0; i < n && i < kListed; ++i) names.push_back((**modules_)[i].name);
  if (n > kListed) names.push_back(absl::StrCat("and ", n - kListed, " more"));
  return absl::StrCat(out, " (", absl::StrJoin(names, ", "), ")");
}

// An fd of a module's BTF, opened once per load. The kernel wants module
// BTF by fd, and takes its own reference during PROG_LOAD, so the fd is
// only needed until the loads are done; it closes with the loader.
absl::StatusOr<int> ExternResolver::ModuleBtfFd(const detail::ModuleBtf& m) {
  auto it = module_fds_.find(m.obj_id);
  if (it != module_fds_.end()) return it->second.get();
  auto fd = sys::GetFdById(sys::ObjectKind::kBtf, m.obj_id);
  if (!fd.ok()) {
    int err = sys::StatusErrno(fd.status());
    return sys::ErrnoStatus(err, absl::StrFormat("module BTF '%s' (id %u)", m.name, m.obj_id),
                            err == ENOENT ? "BPF_BTF_GET_FD_BY_ID (the module was unloaded)"
                                          : "BPF_BTF_GET_FD_BY_ID");
  }
  int raw = fd->get();
  module_fds_.emplace(m.obj_id, std::move(*fd));
  return raw;
}

// Fills in map fds, ksyms and kfuncs. `fd_array` receives the module BTF
// fds that kfunc calls index with their `off`.
absl::Status ExternResolver::Patch(const std::string& prog_name, LinkedProgram& lp,
                                   absl::FunctionRef<int(size_t)> map_fd,
                                   std::vector<int>* fd_array) {
  std::map<uint32_t, int16_t> fd_index;  // module BTF object id -> fd_array index
  auto in_program = [&](const absl::Status& st) {
    return Annotate(st, absl::StrCat("program '", prog_name, "'"));
  };
  for (size_t i = 0; i < lp.fixups.size(); ++i) {
    const Fixup& f = lp.fixups[i];
    bpf_insn& in = lp.insns[f.insn];
    switch (f.kind) {
      case Fixup::Kind::kMapFd:
      case Fixup::Kind::kMapValue:
      case Fixup::Kind::kKconfig: {
        int fd = map_fd(i);
        if (fd < 0) {
          return absl::InternalError(absl::StrFormat("program '%s': map '%s' was not created", prog_name, f.name));
        }
        in.imm = fd;
        break;
      }
      case Fixup::Kind::kKsym: {
        auto ext = spec_.externs.find(f.name);
        bool is_func = ext != spec_.externs.end() && ext->second.is_func;
        if (is_func) {
          // A kfunc's address, as bpf_ksym_exists() takes it. Kernels
          // before 6.4 refuse a BTF_ID ld_imm64 of a FUNC, and all the
          // program can do with the value is test it, so it becomes
          // the (non-zero) BTF id as a plain constant, like cilium/ebpf
          // does. off stays 0: ld_imm64 must not carry one.
          auto sym = FindKernelSymbol(f.name, BtfKind::kFunc);
          if (!sym.ok()) return in_program(sym.status());
          if (!*sym) {
            if (f.weak) break;
            return absl::NotFoundError(absl::StrFormat(
                "program '%s': kfunc '%s' (address taken) is in none of the kernel's BTF: "
                "searched %s", prog_name, f.name, SearchedBtfs()));
          }
          in.imm = static_cast<int32_t>((*sym)->type_id);
          lp.insns[f.insn + 1].imm = 0;
        } else if (f.btf_type_id != 0) {
          auto sym = FindKernelSymbol(f.name, BtfKind::kVar);
          if (!sym.ok()) return in_program(sym.status());
          if (!*sym) {
            if (f.weak) break;
            return absl::NotFoundError(absl::StrFormat(
                "program '%s': typed ksym '%s' is in none of the kernel's BTF: searched %s",
                prog_name, f.name, SearchedBtfs()));
          }
          int btf_fd = 0;  // 0: the id is vmlinux's
          if ((*sym)->module) {
            auto fd = ModuleBtfFd(*(*sym)->module);
            if (!fd.ok()) return in_program(fd.status());
            btf_fd = *fd;
          }
          in.src_reg = BPF_PSEUDO_BTF_ID;
          in.imm = static_cast<int32_t>((*sym)->type_id);
          lp.insns[f.insn + 1].imm = btf_fd;
        } else {
          auto addr = KallsymsAddress(f.name);
          if (!addr.ok()) {
            if (f.weak && addr.status().code() == absl::StatusCode::kNotFound) break;
            return in_program(addr.status());
          }
          in.imm = static_cast<int32_t>(*addr & 0xffffffffu);
          lp.insns[f.insn + 1].imm = static_cast<int32_t>(*addr >> 32);
        }
        break;
      }
      case Fixup::Kind::kKfunc: {
        auto sym = FindKernelSymbol(f.name, BtfKind::kFunc);
        if (!sym.ok()) return in_program(sym.status());
        if (!*sym) {
          // imm 0 and off 0: the verifier accepts such a call only where
          // it is dead code, as under bpf_ksym_exists().
          if (f.weak) break;
          return absl::NotFoundError(absl::StrFormat(
              "program '%s': kfunc '%s' is in none of the kernel's BTF: searched %s",
              prog_name, f.name, SearchedBtfs()));
        }
        in.imm = static_cast<int32_t>((*sym)->type_id);
        in.off = 0;
        if (const detail::ModuleBtf* m = (*sym)->module) {
          auto known = fd_index.find(m->obj_id);
          if (known == fd_index.end()) {
            auto fd = ModuleBtfFd(*m);
            if (!fd.ok()) return in_program(fd.status());
            if (fd_array->empty()) fd_array->push_back(-1);  // off 0 means vmlinux: never read
            if (fd_array->size() > INT16_MAX) {
              return absl::ResourceExhaustedError(absl::StrFormat(
                  "program '%s': kfunc '%s': more module BTFs than a call's off can index",
                  prog_name, f.name));
            }
            known = fd_index.emplace(m->obj_id, static_cast<int16_t>(fd_array->size())).first;
            fd_array->push_back(*fd);
          }
          in.off = known->second;
        }
        break;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace tether::detail
