#include "tether/probe.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <linux/btf.h>

#include <cerrno>
#include <cstring>
#include <vector>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "sys/bpf.h"
#include "tether/insn.h"
#include "tether/map.h"
#include "tether/program.h"

namespace tether::probe {
namespace {

struct Cache {
  absl::Mutex mu;
  std::map<std::string, absl::Status> results ABSL_GUARDED_BY(mu);
};

Cache& TheCache() {
  static Cache* cache = new Cache();
  return *cache;
}

// The kernel version that brought each map type, for messages.
const char* MapTypeSince(uint32_t type) {
  switch (type) {
    case BPF_MAP_TYPE_RINGBUF: return "5.8";
    case BPF_MAP_TYPE_BLOOM_FILTER: return "5.16";
    case BPF_MAP_TYPE_USER_RINGBUF: return "6.1";
    case sys::uapi::kMapTypeCgrpStorage: return "6.2";
    case sys::uapi::kMapTypeArena: return "6.9";
    case BPF_MAP_TYPE_TASK_STORAGE: return "5.11";
    case BPF_MAP_TYPE_INODE_STORAGE: return "5.10";
    case BPF_MAP_TYPE_STRUCT_OPS: return "5.6";
    default: return "an earlier release";
  }
}

// Smallest valid attributes for each map type.
sys::MapCreateRequest MinimalMap(uint32_t type) {
  sys::MapCreateRequest r;
  r.type = type;
  r.key_size = 4;
  r.value_size = 4;
  r.max_entries = 1;
  switch (type) {
    case BPF_MAP_TYPE_QUEUE:
    case BPF_MAP_TYPE_STACK:
    case BPF_MAP_TYPE_BLOOM_FILTER:
      r.key_size = 0;
      break;
    case BPF_MAP_TYPE_RINGBUF:
    case BPF_MAP_TYPE_USER_RINGBUF:
      r.key_size = 0;
      r.value_size = 0;
      r.max_entries = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
      break;
    case BPF_MAP_TYPE_LPM_TRIE:
      r.key_size = 8;
      r.flags = BPF_F_NO_PREALLOC;
      break;
    case BPF_MAP_TYPE_CGROUP_STORAGE:
    case BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
      r.key_size = sizeof(struct bpf_cgroup_storage_key);
      r.max_entries = 0;
      break;
    case BPF_MAP_TYPE_SK_STORAGE:
    case BPF_MAP_TYPE_INODE_STORAGE:
    case BPF_MAP_TYPE_TASK_STORAGE:
    case sys::uapi::kMapTypeCgrpStorage:
      r.max_entries = 0;
      r.flags = BPF_F_NO_PREALLOC;
      break;
    case sys::uapi::kMapTypeArena:
      r.key_size = 0;
      r.value_size = 0;
      r.max_entries = 1;
      r.flags = BPF_F_MMAPABLE;
      break;
    default:
      break;
  }
  return r;
}

bool IsLocalStorage(uint32_t type) {
  return type == BPF_MAP_TYPE_SK_STORAGE || type == BPF_MAP_TYPE_INODE_STORAGE ||
         type == BPF_MAP_TYPE_TASK_STORAGE || type == sys::uapi::kMapTypeCgrpStorage;
}

// A BTF blob holding one type, `int` (id 1): local-storage maps insist on
// BTF ids for their key and value.
std::vector<uint8_t> IntOnlyBtf() {
  const char strings[] = "\0int";  // offsets 0 ("") and 1 ("int")
  uint32_t types[] = {1, static_cast<uint32_t>(BTF_KIND_INT) << 24, 4, 0x01000020};
  struct btf_header hdr = {};
  hdr.magic = BTF_MAGIC;
  hdr.version = BTF_VERSION;
  hdr.hdr_len = sizeof(hdr);
  hdr.type_off = 0;
  hdr.type_len = sizeof(types);
  hdr.str_off = sizeof(types);
  hdr.str_len = sizeof(strings);
  std::vector<uint8_t> blob(sizeof(hdr) + sizeof(types) + sizeof(strings));
  memcpy(blob.data(), &hdr, sizeof(hdr));
  memcpy(blob.data() + sizeof(hdr), types, sizeof(types));
  memcpy(blob.data() + sizeof(hdr) + sizeof(types), strings, sizeof(strings));
  return blob;
}

}  // namespace

absl::Status Cached(absl::string_view name, const std::function<absl::Status()>& probe) {
  Cache& c = TheCache();
  std::string key(name);
  {
    absl::MutexLock lock(&c.mu);
    auto it = c.results.find(key);
    if (it != c.results.end()) return it->second;
  }
  absl::Status result = probe();  // outside the lock: probes may nest
  absl::MutexLock lock(&c.mu);
  return c.results.emplace(key, result).first->second;
}

std::string Report() {
  Cache& c = TheCache();
  absl::MutexLock lock(&c.mu);
  std::string out;
  for (const auto& [name, st] : c.results) {
    absl::StrAppend(&out, name, ": ", st.ok() ? "OK" : st.ToString(), "\n");
  }
  return out;
}

std::string KernelRelease() {
  struct utsname u;
  if (uname(&u) != 0) return "unknown";
  return u.release;
}

absl::Status HaveMapType(uint32_t type) {
  return Cached(absl::StrCat("map_type:", MapTypeName(type)), [type]() -> absl::Status {
    sys::MapCreateRequest req = MinimalMap(type);
    if (type == BPF_MAP_TYPE_ARRAY_OF_MAPS || type == BPF_MAP_TYPE_HASH_OF_MAPS) {
      auto inner = sys::MapCreate(MinimalMap(BPF_MAP_TYPE_ARRAY));
      if (!inner.ok()) return inner.status();
      req.inner_map_fd = inner->get();
      auto fd = sys::MapCreate(req);
      return fd.ok() ? absl::OkStatus() : fd.status();
    }
    sys::Fd btf;
    if (IsLocalStorage(type)) {
      auto loaded = sys::BtfLoad(IntOnlyBtf());
      if (!loaded.ok()) return loaded.status();
      btf = std::move(loaded->fd);
      req.btf_fd = btf.get();
      req.btf_key_type_id = 1;
      req.btf_value_type_id = 1;
    }
    auto fd = sys::MapCreate(req);
    if (fd.ok()) return absl::OkStatus();
    int err = sys::StatusErrno(fd.status());
    // Storage maps need BTF for their value; EINVAL about BTF still means
    // the type exists, while an unknown type is EINVAL early. Tell them
    // apart by retrying with a type number past the UAPI's end.
    if (err == EINVAL || err == E2BIG || err == 524 || err == EOPNOTSUPP) {
      sys::MapCreateRequest bogus = req;
      bogus.type = 0xffff;
      auto b = sys::MapCreate(bogus);
      bool same = !b.ok() && sys::StatusErrno(b.status()) == err;
      if (same || err == 524 || err == EOPNOTSUPP) {
        return absl::UnimplementedError(absl::StrFormat(
            "map type %s is not supported by kernel %s (it needs %s)", MapTypeName(type),
            KernelRelease(), MapTypeSince(type)));
      }
      return absl::OkStatus();
    }
    return fd.status();
  });
}

absl::Status HaveProgramType(uint32_t type) {
  return Cached(absl::StrCat("prog_type:", ProgramTypeName(type)), [type]() -> absl::Status {
    bpf_insn prog[] = {insn::MovImm(BPF_REG_0, 0), insn::Exit()};
    sys::ProgLoadRequest req;
    req.type = type;
    req.insns = prog;
    req.name = "probe";
    req.log_level = 0;
    auto res = sys::ProgLoad(req);
    if (res.ok()) return absl::OkStatus();
    int err = sys::StatusErrno(res.status());
    // Types that need an attach target fail verification for that reason
    // (EINVAL/EACCES with a log) but are known; unknown types are EINVAL
    // with no verifier involvement. Compare with a type that cannot exist.
    sys::ProgLoadRequest bogus = req;
    bogus.type = 0xffff;
    auto b = sys::ProgLoad(bogus);
    bool unknown = !b.ok() && sys::StatusErrno(b.status()) == err &&
                   res.status().message().find("verifier log") == absl::string_view::npos;
    if (unknown) {
      return absl::UnimplementedError(absl::StrFormat(
          "program type %s is not supported by kernel %s", ProgramTypeName(type), KernelRelease()));
    }
    if (err == EPERM) return res.status();
    return absl::OkStatus();
  });
}

absl::Status HaveHelper(uint32_t prog_type, uint32_t helper) {
  return Cached(absl::StrCat("helper:", ProgramTypeName(prog_type), ":", helper),
                [prog_type, helper]() -> absl::Status {
                  bpf_insn prog[] = {insn::Call(static_cast<int32_t>(helper)),
                                     insn::MovImm(BPF_REG_0, 0), insn::Exit()};
                  sys::ProgLoadRequest req;
                  req.type = prog_type;
                  req.insns = prog;
                  req.name = "probe";
                  req.log_level = 1;
                  auto res = sys::ProgLoad(req);
                  if (res.ok()) return absl::OkStatus();
                  std::string msg(res.status().message());
                  if (msg.find("invalid func") != std::string::npos ||
                      msg.find("unknown func") != std::string::npos ||
                      msg.find("program of this type cannot use helper") != std::string::npos) {
                    return absl::UnimplementedError(absl::StrFormat(
                        "helper %u is not available to %s programs on kernel %s", helper,
                        ProgramTypeName(prog_type), KernelRelease()));
                  }
                  // Any other complaint is about arguments: the helper exists.
                  return absl::OkStatus();
                });
}

absl::Status HaveKprobes() {
  return Cached("kprobes", []() -> absl::Status {
    if (access("/sys/bus/event_source/devices/kprobe/type", R_OK) == 0) return absl::OkStatus();
    return absl::UnimplementedError(absl::StrFormat(
        "kprobes are not available on kernel %s (CONFIG_KPROBES is off: no "
        "/sys/bus/event_source/devices/kprobe)",
        KernelRelease()));
  });
}

absl::Status HaveVmlinuxBtf() {
  return Cached("vmlinux_btf", []() -> absl::Status {
    if (access("/sys/kernel/btf/vmlinux", R_OK) == 0) return absl::OkStatus();
    return absl::UnimplementedError(absl::StrFormat(
        "kernel %s exposes no BTF at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF, 5.4+)",
        KernelRelease()));
  });
}

}  // namespace tether::probe
