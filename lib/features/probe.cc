#include "tether/probe.h"

#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <linux/btf.h>
#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <map>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/numbers.h"
#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "base/mutex_internal.h"
#include "sys/bpf.h"
#include "tether/insn.h"
#include "tether/map.h"
#include "tether/program.h"
#include "btf/kernel_btf.h"
#include "features/probe_internal.h"

namespace tether::probe {
namespace {

// Loads a probe program with the verifier log on, so that a refusal says
// why: probes tell a missing feature from a bad argument by that text.
absl::StatusOr<sys::ProgLoadResult> LoadWithLog(uint32_t type, absl::Span<const bpf_insn> insns) {
  sys::ProgLoadRequest req;
  req.type = type;
  req.insns = insns;
  req.name = "probe";
  req.log_level = 1;
  return sys::ProgLoad(req);
}

struct Cache {
  detail::Mutex mu;
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

// The kernel version that brought each program type, for messages.
const char* ProgramTypeSince(uint32_t type) {
  switch (type) {
    case BPF_PROG_TYPE_LIRC_MODE2: return "4.18 with CONFIG_BPF_LIRC_MODE2";
    case BPF_PROG_TYPE_SK_REUSEPORT: return "4.19";
    case BPF_PROG_TYPE_FLOW_DISSECTOR: return "4.20";
    case BPF_PROG_TYPE_CGROUP_SYSCTL: return "5.2";
    case BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE: return "5.2";
    case BPF_PROG_TYPE_CGROUP_SOCKOPT: return "5.3";
    case BPF_PROG_TYPE_TRACING: return "5.5";
    case BPF_PROG_TYPE_STRUCT_OPS: return "5.6";
    case BPF_PROG_TYPE_EXT: return "5.6";
    case BPF_PROG_TYPE_LSM: return "5.7 with CONFIG_BPF_LSM";
    case BPF_PROG_TYPE_SK_LOOKUP: return "5.9";
    case BPF_PROG_TYPE_SYSCALL: return "5.14";
    case sys::uapi::kProgTypeNetfilter: return "6.4";
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
    case BPF_MAP_TYPE_STACK_TRACE:
      r.value_size = 8;  // whole u64 frames
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

// Types the kernel refuses before verification without an expected
// attach type, with the same EINVAL an unknown type gets: give them one.
uint32_t ProbeAttachType(uint32_t prog_type) {
  switch (prog_type) {
    case BPF_PROG_TYPE_CGROUP_SOCK_ADDR: return BPF_CGROUP_INET4_CONNECT;
    case BPF_PROG_TYPE_CGROUP_SOCKOPT: return BPF_CGROUP_GETSOCKOPT;
    case BPF_PROG_TYPE_SK_LOOKUP: return BPF_SK_LOOKUP;
    case sys::uapi::kProgTypeNetfilter: return sys::uapi::kAttachNetfilter;
    default: return 0;
  }
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


// Writes small BTF blobs, one type at a time, for the BTF probes.
class BtfBlob {
 public:
  BtfBlob() { strings_.push_back('\0'); }

  uint32_t Str(absl::string_view s) {
    uint32_t off = static_cast<uint32_t>(strings_.size());
    strings_.append(s.data(), s.size());
    strings_.push_back('\0');
    return off;
  }

  // One struct btf_type plus the words its kind appends; returns its id.
  uint32_t Add(uint32_t name_off, uint32_t kind, uint32_t vlen, uint32_t size_or_type,
               std::initializer_list<uint32_t> tail = {}) {
    words_.push_back(name_off);
    words_.push_back((kind << 24) | (vlen & 0xffff));
    words_.push_back(size_or_type);
    words_.insert(words_.end(), tail.begin(), tail.end());
    return next_id_++;
  }

  uint32_t Int() { return Add(Str("int"), BTF_KIND_INT, 0, 4, {0x01000020}); }

  std::vector<uint8_t> Bytes() const {
    struct btf_header hdr = {};
    hdr.magic = BTF_MAGIC;
    hdr.version = BTF_VERSION;
    hdr.hdr_len = sizeof(hdr);
    hdr.type_off = 0;
    hdr.type_len = static_cast<uint32_t>(words_.size() * sizeof(uint32_t));
    hdr.str_off = hdr.type_len;
    hdr.str_len = static_cast<uint32_t>(strings_.size());
    std::vector<uint8_t> blob(sizeof(hdr) + hdr.type_len + hdr.str_len);
    memcpy(blob.data(), &hdr, sizeof(hdr));
    memcpy(blob.data() + sizeof(hdr), words_.data(), hdr.type_len);
    memcpy(blob.data() + sizeof(hdr) + hdr.type_len, strings_.data(), hdr.str_len);
    return blob;
  }

 private:
  std::vector<uint32_t> words_;
  std::string strings_;
  uint32_t next_id_ = 1;
};

const char* BtfKindName(uint32_t kind) {
  switch (kind) {
    case BTF_KIND_INT: return "INT";
    case BTF_KIND_PTR: return "PTR";
    case BTF_KIND_ARRAY: return "ARRAY";
    case BTF_KIND_STRUCT: return "STRUCT";
    case BTF_KIND_UNION: return "UNION";
    case BTF_KIND_ENUM: return "ENUM";
    case BTF_KIND_FWD: return "FWD";
    case BTF_KIND_TYPEDEF: return "TYPEDEF";
    case BTF_KIND_VOLATILE: return "VOLATILE";
    case BTF_KIND_CONST: return "CONST";
    case BTF_KIND_RESTRICT: return "RESTRICT";
    case BTF_KIND_FUNC: return "FUNC";
    case BTF_KIND_FUNC_PROTO: return "FUNC_PROTO";
    case BTF_KIND_VAR: return "VAR";
    case BTF_KIND_DATASEC: return "DATASEC";
    case BTF_KIND_FLOAT: return "FLOAT";
    case BTF_KIND_DECL_TAG: return "DECL_TAG";
    case BTF_KIND_TYPE_TAG: return "TYPE_TAG";
    case BTF_KIND_ENUM64: return "ENUM64";
    default: return nullptr;
  }
}

const char* BtfKindSince(uint32_t kind) {
  switch (kind) {
    case BTF_KIND_FUNC:
    case BTF_KIND_FUNC_PROTO: return "5.0";
    case BTF_KIND_VAR:
    case BTF_KIND_DATASEC: return "5.2";
    case BTF_KIND_FLOAT: return "5.13";
    case BTF_KIND_DECL_TAG: return "5.16";
    case BTF_KIND_TYPE_TAG: return "5.17";
    case BTF_KIND_ENUM64: return "6.0";
    default: return "4.18";
  }
}

// The smallest BTF that uses `kind` the way compilers emit it. The kernel
// checks references, so each kind comes with the types it points at.
std::vector<uint8_t> BtfUsingKind(uint32_t kind) {
  BtfBlob b;
  uint32_t i = b.Int();
  switch (kind) {
    case BTF_KIND_INT:
      break;
    case BTF_KIND_PTR:
      b.Add(0, BTF_KIND_PTR, 0, i);
      break;
    case BTF_KIND_ARRAY:
      b.Add(0, BTF_KIND_ARRAY, 0, 0, {i, i, 2});
      break;
    case BTF_KIND_STRUCT:
    case BTF_KIND_UNION:
      b.Add(b.Str("s"), kind, 1, 4, {b.Str("a"), i, 0});
      break;
    case BTF_KIND_ENUM:
      b.Add(b.Str("e"), BTF_KIND_ENUM, 1, 4, {b.Str("A"), 1});
      break;
    case BTF_KIND_FWD:
      b.Add(b.Str("f"), BTF_KIND_FWD, 0, 0);
      break;
    case BTF_KIND_TYPEDEF:
      b.Add(b.Str("t"), BTF_KIND_TYPEDEF, 0, i);
      break;
    case BTF_KIND_VOLATILE:
    case BTF_KIND_CONST:
      b.Add(0, kind, 0, i);
      break;
    case BTF_KIND_RESTRICT:  // only meaningful on a pointer
      b.Add(0, BTF_KIND_RESTRICT, 0, b.Add(0, BTF_KIND_PTR, 0, i));
      break;
    case BTF_KIND_FUNC_PROTO:
      b.Add(0, BTF_KIND_FUNC_PROTO, 1, i, {0, i});
      break;
    case BTF_KIND_FUNC:
      b.Add(b.Str("f"), BTF_KIND_FUNC, BTF_FUNC_STATIC, b.Add(0, BTF_KIND_FUNC_PROTO, 0, i));
      break;
    case BTF_KIND_VAR:
      b.Add(b.Str("v"), BTF_KIND_VAR, 0, i, {BTF_VAR_GLOBAL_ALLOCATED});
      break;
    case BTF_KIND_DATASEC: {
      uint32_t v = b.Add(b.Str("v"), BTF_KIND_VAR, 0, i, {BTF_VAR_GLOBAL_ALLOCATED});
      b.Add(b.Str(".data"), BTF_KIND_DATASEC, 1, 4, {v, 0, 4});
      break;
    }
    case BTF_KIND_FLOAT:
      b.Add(b.Str("float"), BTF_KIND_FLOAT, 0, 4);
      break;
    case BTF_KIND_DECL_TAG: {
      uint32_t st = b.Add(b.Str("s"), BTF_KIND_STRUCT, 1, 4, {b.Str("a"), i, 0});
      b.Add(b.Str("tag"), BTF_KIND_DECL_TAG, 0, st, {0xffffffffu});  // on the struct itself
      break;
    }
    case BTF_KIND_TYPE_TAG:  // kernels accept type tags only under a pointer
      b.Add(0, BTF_KIND_PTR, 0, b.Add(b.Str("tag"), BTF_KIND_TYPE_TAG, 0, i));
      break;
    case BTF_KIND_ENUM64:
      b.Add(b.Str("e"), BTF_KIND_ENUM64, 1, 8, {b.Str("A"), 1, 1});
      break;
  }
  return b.Bytes();
}

// The line of a BTF/verifier log that says why the kernel refused.
std::string LastLogLine(const absl::Status& st) {
  absl::string_view msg = st.message();
  while (!msg.empty() && msg.back() == '\n') msg.remove_suffix(1);
  size_t nl = msg.rfind('\n');
  return std::string(nl == absl::string_view::npos ? msg : msg.substr(nl + 1));
}

// CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON and CAP_NET_ADMIN: what every
// map and program type needs. An EPERM without them says nothing about the
// kernel; with them, it is the kernel refusing.
bool HoldsBpfPrivileges() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) != 0) continue;
    uint64_t caps = 0;
    if (!absl::SimpleHexAtoi(absl::StripAsciiWhitespace(line.substr(7)), &caps)) return false;
    auto has = [caps](int cap) { return (caps >> cap) & 1; };
    return has(21) || (has(39) && has(38) && has(12));
  }
  return false;
}

// Marks a probe's "refused here" answer, so that it cannot be mistaken for
// a PermissionDenied that only says the probe could not run.
constexpr char kAnswerPayload[] = "tether.dev/probe-answer";

absl::Status Refused(absl::string_view feature, absl::string_view since, absl::string_view op,
                     int err) {
  absl::Status st = absl::PermissionDeniedError(absl::StrFormat(
      "%s: kernel %s knows them (since %s) but refuses them here: %s fails with %s although "
      "this process holds CAP_SYS_ADMIN (or CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN); likely a "
      "lockdown or hardening policy, an LSM or seccomp rule, or a config option they need",
      feature, KernelRelease(), since, op, sys::ErrnoName(err)));
  st.SetPayload(kAnswerPayload, absl::Cord("refused"));
  return st;
}

// EPERM, or EACCES that no verifier log explains (the verifier says EACCES
// of programs it rejects): the kernel's policy, not the probe's object.
bool IsPolicyRefusal(const absl::Status& st) {
  int err = sys::StatusErrno(st);
  if (err == EPERM) return true;
  return err == EACCES && st.message().find("verifier log") == absl::string_view::npos;
}

// A probe step's failure, turned into "refused here" when it is one.
absl::Status RefusedOr(const absl::Status& st, absl::string_view feature, absl::string_view since,
                       absl::string_view op) {
  if (IsPolicyRefusal(st) && HoldsBpfPrivileges()) {
    return Refused(feature, since, op, sys::StatusErrno(st));
  }
  return st;
}

// Prefixes a status that is no answer with what it is, keeping its code
// and payloads (the errno).
absl::Status CouldNotRun(absl::string_view probe_name, const absl::Status& st) {
  if (absl::StartsWith(st.message(), "probe ")) return st;  // a nested probe's, already said
  absl::Status out(st.code(), absl::StrCat("probe ", probe_name, " could not run: ", st.message()));
  st.ForEachPayload([&out](absl::string_view key, const absl::Cord& value) {
    out.SetPayload(key, value);
  });
  return out;
}

struct VmlinuxType {
  uint32_t id = 0;
  uint32_t size_or_type = 0;
};

// The type of `kind` named `name` in the kernel's own BTF (shared cache).
absl::StatusOr<VmlinuxType> FindVmlinuxType(absl::string_view name, uint32_t want_kind) {
  auto id = detail::VmlinuxBtfTypeId(std::string(name), want_kind);
  if (!id.ok()) return id.status();
  auto btf = KernelBtf();
  return VmlinuxType{*id, (*btf)->TypeById(*id)->size_or_type};
}

}  // namespace

absl::Status Cached(absl::string_view name, const std::function<absl::Status()>& probe) {
  Cache& c = TheCache();
  std::string key(name);
  {
    detail::MutexLock lock(&c.mu);
    auto it = c.results.find(key);
    if (it != c.results.end()) return it->second;
  }
  absl::Status result = probe();  // outside the lock: probes may nest
  if (AnswerOf(result) == Answer::kCouldNotRun) result = CouldNotRun(key, result);
  detail::MutexLock lock(&c.mu);
  return c.results.emplace(key, result).first->second;
}

namespace testing {
void ForgetAnswers() {
  Cache& c = TheCache();
  detail::MutexLock lock(&c.mu);
  c.results.clear();
}
}  // namespace testing

std::string Report() {
  Cache& c = TheCache();
  detail::MutexLock lock(&c.mu);
  std::string out;
  for (const auto& [name, st] : c.results) {
    Answer answer = AnswerOf(st);
    absl::StrAppend(&out, name, ": ", AnswerName(answer));
    if (answer == Answer::kCouldNotRun) {
      absl::StrAppend(&out, ": ", st.ToString(absl::StatusToStringMode::kWithNoExtraData));
    } else if (answer != Answer::kPresent) {
      absl::StrAppend(&out, ": ", st.message());
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

Answer AnswerOf(const absl::Status& probe_result) {
  if (probe_result.ok()) return Answer::kPresent;
  if (absl::IsUnimplemented(probe_result)) return Answer::kMissing;
  if (absl::IsPermissionDenied(probe_result) && probe_result.GetPayload(kAnswerPayload)) {
    return Answer::kRefused;
  }
  return Answer::kCouldNotRun;
}

const char* AnswerName(Answer answer) {
  switch (answer) {
    case Answer::kPresent: return "present";
    case Answer::kMissing: return "missing";
    case Answer::kRefused: return "refused here";
    case Answer::kCouldNotRun: return "could not run";
  }
  return "?";
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
    if (type == BPF_MAP_TYPE_STRUCT_OPS) {
      // The value is a kernel struct that vmlinux BTF names; TCP congestion
      // control has been one since the map type exists.
      auto value = FindVmlinuxType("bpf_struct_ops_tcp_congestion_ops", BTF_KIND_STRUCT);
      if (value.ok()) {
        req.value_size = value->size_or_type;
        req.btf_vmlinux_value_type_id = value->id;
      }
    }
    sys::Fd btf;
    // Storage maps name their key and value in program BTF; struct_ops
    // maps must come with some program BTF even though their value is
    // described by the kernel's.
    if (IsLocalStorage(type) || type == BPF_MAP_TYPE_STRUCT_OPS) {
      auto loaded = sys::BtfLoad(IntOnlyBtf());
      if (!loaded.ok()) return loaded.status();
      btf = std::move(loaded->fd);
      req.btf_fd = btf.get();
      if (type != BPF_MAP_TYPE_STRUCT_OPS) {
        req.btf_key_type_id = 1;
        req.btf_value_type_id = 1;
      }
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
    return RefusedOr(fd.status(), absl::StrCat(MapTypeName(type), " maps"), MapTypeSince(type),
                     "BPF_MAP_CREATE of a minimal map");
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
    req.expected_attach_type = ProbeAttachType(type);
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
          "program type %s is not supported by kernel %s (it needs %s)", ProgramTypeName(type),
          KernelRelease(), ProgramTypeSince(type)));
    }
    // Hardened kernels refuse some types (those on trampolines, often)
    // with EPERM even to a process with every privilege.
    if (err == EPERM) {
      return RefusedOr(res.status(), absl::StrCat(ProgramTypeName(type), " programs"),
                       ProgramTypeSince(type), "BPF_PROG_LOAD of a minimal program");
    }
    return absl::OkStatus();
  });
}

absl::Status HaveHelper(uint32_t prog_type, uint32_t helper) {
  return Cached(absl::StrCat("helper:", ProgramTypeName(prog_type), ":", helper),
                [prog_type, helper]() -> absl::Status {
                  bpf_insn prog[] = {insn::Call(static_cast<int32_t>(helper)),
                                     insn::MovImm(BPF_REG_0, 0), insn::Exit()};
                  auto res = LoadWithLog(prog_type, prog);
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

absl::Status HaveKfunc(absl::string_view name) {
  std::string n(name);
  return Cached(absl::StrCat("kfunc:", n), [n]() -> absl::Status {
    absl::Status btf = HaveVmlinuxBtf();
    if (!btf.ok()) return btf;
    auto vmlinux = KernelBtf();
    if (!vmlinux.ok()) return vmlinux.status();
    if ((*vmlinux)->FindByNameKind(n, BtfKind::kFunc)) return absl::OkStatus();
    auto modules = detail::LoadedModuleBtfs();
    if (!modules.ok()) return modules.status();
    for (const detail::ModuleBtf& m : *modules) {
      if (m.btf->FindByNameKind(n, BtfKind::kFunc)) return absl::OkStatus();
    }
    return absl::UnimplementedError(absl::StrFormat(
        "kernel %s has no kfunc '%s' in its BTF (vmlinux and %u module BTFs)", KernelRelease(), n,
        modules->size()));
  });
}

absl::Status HaveTypedKsyms() {
  return Cached("typed_ksyms", []() -> absl::Status {
    absl::Status btf = HaveVmlinuxBtf();
    if (!btf.ok()) return btf;
    // bpf_prog_active: a per-CPU int every kernel with typed ksyms has.
    auto id = detail::VmlinuxBtfTypeId("bpf_prog_active", BTF_KIND_VAR);
    if (!id.ok()) return id.status();
    bpf_insn prog[4];
    prog[0] = {BPF_LD | BPF_IMM | BPF_DW, BPF_REG_1, BPF_PSEUDO_BTF_ID, 0, static_cast<int32_t>(*id)};
    prog[1] = {0, 0, 0, 0, 0};
    prog[2] = insn::MovImm(BPF_REG_0, 0);
    prog[3] = insn::Exit();
    auto res = LoadWithLog(BPF_PROG_TYPE_SOCKET_FILTER, prog);
    if (res.ok()) return absl::OkStatus();
    std::string msg(res.status().message());
    if (msg.find("failed to find the address") != std::string::npos) {
      return absl::UnimplementedError(absl::StrFormat(
          "kernel %s cannot resolve typed ksyms of variables: its kallsyms has no data symbols "
          "(CONFIG_KALLSYMS_ALL is off)",
          KernelRelease()));
    }
    if (msg.find("pseudo") != std::string::npos || sys::StatusErrno(res.status()) == EINVAL) {
      return absl::UnimplementedError(absl::StrFormat(
          "kernel %s has no typed ksyms (5.10): %s", KernelRelease(), msg.substr(0, 200)));
    }
    return res.status();
  });
}

namespace {

absl::Status Missing(LinkKind kind, absl::string_view detail = "") {
  return absl::UnimplementedError(absl::StrFormat(
      "%s: not supported by kernel %s (needs %s%s%s)", LinkKindName(kind), KernelRelease(),
      LinkKindSince(kind), detail.empty() ? "" : "; ", detail));
}

// A program that returns `ret`, of the given type and attach type.
absl::StatusOr<sys::Fd> MinimalProgram(uint32_t type, uint32_t attach_type = 0,
                                       uint32_t attach_btf_id = 0, int32_t ret = 0) {
  bpf_insn prog[] = {insn::MovImm(BPF_REG_0, ret), insn::Exit()};
  sys::ProgLoadRequest req;
  req.type = type;
  req.insns = prog;
  req.name = "probe";
  req.expected_attach_type = attach_type;
  req.attach_btf_id = attach_btf_id;
  auto res = sys::ProgLoad(req);
  if (!res.ok()) return res.status();
  return std::move(res->fd);
}

// Runs `fn` on a thread of its own in a fresh network namespace, so that
// a probe can attach to that namespace's loopback without touching the
// host's interfaces. The namespace goes when the thread ends.
absl::Status InPrivateNetns(const std::function<absl::Status()>& fn) {
  absl::Status result;
  std::thread t([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      // Not the kernel refusing BPF: the probe has no namespace to work in.
      result = absl::FailedPreconditionError(
          absl::StrCat("probe: unshare(CLONE_NEWNET): ", strerror(errno)));
      return;
    }
    result = fn();
  });
  t.join();
  return result;
}

// A LINK_CREATE whose target is fd -1: kernels that know the attach type
// get as far as looking the target up (EBADF); others stop at EINVAL.
absl::Status LinkCreateReachesTarget(LinkKind kind, uint32_t prog_type, uint32_t attach_type) {
  auto prog = MinimalProgram(prog_type, attach_type);
  if (!prog.ok()) {
    if (sys::StatusErrno(prog.status()) == EINVAL) return Missing(kind, "the program type is unknown");
    return prog.status();
  }
  sys::LinkCreateRequest req;
  req.prog_fd = prog->get();
  req.target_fd = -1;
  req.attach_type = attach_type;
  auto link = sys::LinkCreate(req);
  if (link.ok()) return absl::OkStatus();
  int err = sys::StatusErrno(link.status());
  if (err == EBADF || err == ENOENT) return absl::OkStatus();
  if (err == EINVAL || err == EOPNOTSUPP || err == 524) return Missing(kind);
  return link.status();
}

absl::Status ProbeLink(LinkKind kind) {
  switch (kind) {
    case LinkKind::kXdp:
    case LinkKind::kTcx:
      return InPrivateNetns([kind]() -> absl::Status {
        bool tcx = kind == LinkKind::kTcx;
        auto prog = MinimalProgram(tcx ? BPF_PROG_TYPE_SCHED_CLS : BPF_PROG_TYPE_XDP,
                                   tcx ? sys::uapi::kAttachTcxIngress : uint32_t{BPF_XDP}, 0,
                                   tcx ? 0 : XDP_PASS);
        if (!prog.ok()) return prog.status();
        sys::LinkCreateRequest req;
        req.prog_fd = prog->get();
        req.target_fd = 1;  // loopback, always ifindex 1 in a new namespace
        req.attach_type = tcx ? sys::uapi::kAttachTcxIngress : uint32_t{BPF_XDP};
        auto link = sys::LinkCreate(req);
        if (link.ok()) return absl::OkStatus();
        int err = sys::StatusErrno(link.status());
        if (err == EINVAL || err == EOPNOTSUPP || err == 524) return Missing(kind);
        return link.status();
      });
    case LinkKind::kCgroup:
      return LinkCreateReachesTarget(kind, BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_INGRESS);
    case LinkKind::kPerfEvent:
      return LinkCreateReachesTarget(kind, BPF_PROG_TYPE_TRACEPOINT, BPF_PERF_EVENT);
    case LinkKind::kKprobe: {
      absl::Status k = HaveKprobes();
      if (!k.ok()) return k;
      return HaveLinkKind(LinkKind::kPerfEvent);
    }
    case LinkKind::kUprobe: {
      if (access("/sys/bus/event_source/devices/uprobe/type", R_OK) != 0)
        return Missing(kind, "CONFIG_UPROBE_EVENTS; no /sys/bus/event_source/devices/uprobe");
      return HaveLinkKind(LinkKind::kPerfEvent);
    }
    case LinkKind::kKprobeMulti: {
      auto prog = MinimalProgram(BPF_PROG_TYPE_KPROBE, BPF_TRACE_KPROBE_MULTI);
      if (!prog.ok()) {
        if (sys::StatusErrno(prog.status()) == EINVAL) return Missing(kind);
        return prog.status();
      }
      // A real attachment to a function every kernel has, dropped at once.
      const char* sym = "vprintk";
      uint64_t syms = reinterpret_cast<uintptr_t>(&sym);
      struct {
        uint32_t flags, cnt;
        uint64_t syms, addrs, cookies;
      } multi = {0, 1, syms, 0, 0};
      sys::LinkCreateRequest req;
      req.prog_fd = prog->get();
      req.target_fd = 0;
      req.attach_type = BPF_TRACE_KPROBE_MULTI;
      req.extra = &multi;
      req.extra_size = sizeof(multi);
      auto link = sys::LinkCreate(req);
      if (link.ok()) return absl::OkStatus();
      int err = sys::StatusErrno(link.status());
      // The kernel got as far as resolving the symbol: the link kind exists.
      if (err == ENOENT || err == ESRCH) return absl::OkStatus();
      if (err == EINVAL || err == EOPNOTSUPP || err == 524)
        return Missing(kind, "and CONFIG_FPROBE");
      return link.status();
    }
    case LinkKind::kUprobeMulti: {
      auto prog = MinimalProgram(BPF_PROG_TYPE_KPROBE, sys::uapi::kAttachTraceUprobeMulti);
      if (!prog.ok()) {
        if (sys::StatusErrno(prog.status()) == EINVAL) return Missing(kind);
        return prog.status();
      }
      // "/" is not a regular file: a kernel with uprobe.multi says EBADF
      // after parsing everything else; older ones reject the attach type.
      uint64_t offset = 0;
      struct {
        uint64_t path, offsets, ref_ctr_offsets, cookies;
        uint32_t cnt, flags, pid;
      } multi = {reinterpret_cast<uintptr_t>("/"), reinterpret_cast<uintptr_t>(&offset), 0, 0, 1,
                 0, 0};
      sys::LinkCreateRequest req;
      req.prog_fd = prog->get();
      req.target_fd = 0;
      req.attach_type = sys::uapi::kAttachTraceUprobeMulti;
      req.extra = &multi;
      req.extra_size = sizeof(multi);
      auto link = sys::LinkCreate(req);
      int err = link.ok() ? 0 : sys::StatusErrno(link.status());
      if (err == EBADF || err == 0) return absl::OkStatus();
      if (err == EINVAL || err == EOPNOTSUPP || err == 524) return Missing(kind);
      return link.status();
    }
    case LinkKind::kRawTracepoint: {
      absl::Status t = HaveProgramType(BPF_PROG_TYPE_RAW_TRACEPOINT);
      if (absl::IsUnimplemented(t)) return Missing(kind);
      return t;
    }
    case LinkKind::kTpBtfLinkCreate: {
      absl::Status tp = HaveLinkKind(LinkKind::kTpBtf);
      if (!tp.ok()) return tp;
      auto id = detail::VmlinuxBtfTypeId("btf_trace_sys_enter", BTF_KIND_TYPEDEF);
      if (!id.ok()) return id.status();
      auto prog = MinimalProgram(BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP, *id);
      if (!prog.ok()) return prog.status();
      // A real attachment, dropped at once: older kernels send tp_btf to
      // the trampoline code, which refuses BPF_TRACE_RAW_TP with EINVAL.
      sys::LinkCreateRequest req;
      req.prog_fd = prog->get();
      req.target_fd = 0;
      req.attach_type = BPF_TRACE_RAW_TP;
      auto link = sys::LinkCreate(req);
      if (link.ok()) return absl::OkStatus();
      int err = sys::StatusErrno(link.status());
      if (err == EINVAL || err == EOPNOTSUPP || err == 524) return Missing(kind);
      return link.status();
    }
    case LinkKind::kTrampoline: {
      absl::Status st = HaveTrampolines();
      if (st.code() == absl::StatusCode::kUnimplemented) return Missing(kind, st.message());
      return st;
    }
    case LinkKind::kTpBtf:
    case LinkKind::kIter: {
      absl::Status btf = HaveVmlinuxBtf();
      if (!btf.ok()) return Missing(kind, btf.message());
      uint32_t attach = kind == LinkKind::kTpBtf ? BPF_TRACE_RAW_TP : BPF_TRACE_ITER;
      auto id = kind == LinkKind::kTpBtf
                    ? detail::VmlinuxBtfTypeId("btf_trace_sys_enter", BTF_KIND_TYPEDEF)
                    : detail::VmlinuxBtfTypeId("bpf_iter_bpf_map", BTF_KIND_FUNC);
      if (!id.ok()) return Missing(kind, id.status().message());
      auto prog = MinimalProgram(BPF_PROG_TYPE_TRACING, attach, *id);
      if (prog.ok()) return absl::OkStatus();
      int err = sys::StatusErrno(prog.status());
      if (err == EINVAL || err == EOPNOTSUPP || err == 524) {
        return Missing(kind, absl::StrCat("this kernel cannot load them: ",
                                          prog.status().message().substr(0, 200)));
      }
      return RefusedOr(prog.status(), LinkKindName(kind), LinkKindSince(kind),
                       "BPF_PROG_LOAD of a minimal program");
    }
    case LinkKind::kNetnsSkLookup:
      return LinkCreateReachesTarget(kind, BPF_PROG_TYPE_SK_LOOKUP, BPF_SK_LOOKUP);
    case LinkKind::kNetnsFlowDissector:
      return LinkCreateReachesTarget(kind, BPF_PROG_TYPE_FLOW_DISSECTOR, BPF_FLOW_DISSECTOR);
  }
  return absl::InvalidArgumentError("unknown link kind");
}

}  // namespace

const char* LinkKindName(LinkKind kind) {
  switch (kind) {
    case LinkKind::kXdp: return "XDP links";
    case LinkKind::kTcx: return "tcx links";
    case LinkKind::kCgroup: return "cgroup links";
    case LinkKind::kPerfEvent: return "perf_event links";
    case LinkKind::kKprobe: return "kprobe links";
    case LinkKind::kKprobeMulti: return "kprobe.multi links";
    case LinkKind::kUprobe: return "uprobe links";
    case LinkKind::kUprobeMulti: return "uprobe.multi links";
    case LinkKind::kRawTracepoint: return "raw tracepoints";
    case LinkKind::kTpBtfLinkCreate: return "tp_btf links through BPF_LINK_CREATE";
    case LinkKind::kTpBtf: return "tp_btf (BTF raw tracepoint) programs";
    case LinkKind::kTrampoline: return "trampoline programs (fentry/fexit/fmod_ret/freplace/lsm)";
    case LinkKind::kIter: return "BPF iterators";
    case LinkKind::kNetnsSkLookup: return "sk_lookup netns links";
    case LinkKind::kNetnsFlowDissector: return "flow_dissector netns links";
  }
  return "unknown link kind";
}

const char* LinkKindSince(LinkKind kind) {
  switch (kind) {
    case LinkKind::kXdp: return "5.9";
    case LinkKind::kTcx: return "6.6";
    case LinkKind::kCgroup: return "5.7";
    case LinkKind::kPerfEvent: return "5.15";
    case LinkKind::kKprobe: return "5.15 and CONFIG_KPROBES";
    case LinkKind::kKprobeMulti: return "5.18";
    case LinkKind::kUprobe: return "5.15";
    case LinkKind::kUprobeMulti: return "6.6";
    case LinkKind::kRawTracepoint: return "4.17";
    case LinkKind::kTpBtfLinkCreate: return "6.10";
    case LinkKind::kTpBtf: return "5.5";
    case LinkKind::kTrampoline: return "5.5";
    case LinkKind::kIter: return "5.8";
    case LinkKind::kNetnsSkLookup: return "5.9";
    case LinkKind::kNetnsFlowDissector: return "5.8";
  }
  return "?";
}

absl::Status HaveLinkKind(LinkKind kind) {
  return Cached(absl::StrCat("link:", LinkKindName(kind)), [kind] {
    return RefusedOr(ProbeLink(kind), LinkKindName(kind), LinkKindSince(kind),
                     "a minimal program or link of this kind");
  });
}

absl::Status HaveBtfKind(uint32_t kind) {
  const char* name = BtfKindName(kind);
  if (name == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat("BTF kind %u is not one tether knows", kind));
  }
  return Cached(absl::StrCat("btf_kind:", name), [kind, name]() -> absl::Status {
    auto loaded = sys::BtfLoad(BtfUsingKind(kind));
    if (loaded.ok()) return absl::OkStatus();
    int err = sys::StatusErrno(loaded.status());
    if (err != EINVAL && err != E2BIG) return loaded.status();
    return absl::UnimplementedError(absl::StrFormat(
        "BTF kind %s is not accepted by kernel %s (it needs %s): %s", name, KernelRelease(),
        BtfKindSince(kind), LastLogLine(loaded.status())));
  });
}

absl::Status HaveBtfFuncLinkage(uint32_t linkage) {
  static constexpr const char* kNames[] = {"static", "global", "extern"};
  if (linkage > BTF_FUNC_EXTERN) {
    return absl::InvalidArgumentError(absl::StrFormat("BTF func linkage %u is unknown", linkage));
  }
  return Cached(absl::StrCat("btf_func_linkage:", kNames[linkage]), [linkage]() -> absl::Status {
    BtfBlob b;
    uint32_t i = b.Int();
    b.Add(b.Str("f"), BTF_KIND_FUNC, linkage, b.Add(0, BTF_KIND_FUNC_PROTO, 0, i));
    auto loaded = sys::BtfLoad(b.Bytes());
    if (loaded.ok()) return absl::OkStatus();
    int err = sys::StatusErrno(loaded.status());
    if (err != EINVAL) return loaded.status();
    const char* since = linkage == BTF_FUNC_GLOBAL ? "5.6"
                        : linkage == BTF_FUNC_STATIC ? "5.0"
                                                     : "no release: loaders must rewrite it";
    return absl::UnimplementedError(absl::StrFormat(
        "BTF func linkage %s is not accepted by kernel %s (%s): %s", kNames[linkage],
        KernelRelease(), since, LastLogLine(loaded.status())));
  });
}

absl::Status HaveLogTrueSize() {
  return Cached("log_true_size", []() -> absl::Status {
    bpf_insn prog[] = {insn::MovImm(BPF_REG_0, 0), insn::Exit()};
    std::vector<char> log(4096);
    sys::uapi::AttrBuffer buf;
    memset(&buf, 0, sizeof(buf));
    buf.attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
    buf.attr.insn_cnt = 2;
    buf.attr.insns = reinterpret_cast<uintptr_t>(prog);
    buf.attr.license = reinterpret_cast<uintptr_t>("GPL");
    buf.attr.log_level = 1;
    buf.attr.log_buf = reinterpret_cast<uintptr_t>(log.data());
    buf.attr.log_size = static_cast<uint32_t>(log.size());
    // Older kernels take the zeroed field (it is past their last one) and
    // ignore it; newer ones fill it. So the answer is in the value.
    unsigned size = sys::uapi::kProgLoadLogTrueSizeOffset + sizeof(uint32_t);
    long ret = sys::Bpf(BPF_PROG_LOAD, &buf.attr, size);
    if (ret < 0) return sys::ErrnoStatus(static_cast<int>(-ret), "log_true_size probe", "BPF_PROG_LOAD");
    sys::Fd fd(static_cast<int>(ret));
    uint32_t true_size = 0;
    memcpy(&true_size, buf.bytes + sys::uapi::kProgLoadLogTrueSizeOffset, sizeof(true_size));
    if (true_size > 0) return absl::OkStatus();
    return absl::UnimplementedError(absl::StrFormat(
        "kernel %s does not report the verifier log's true size (log_true_size in "
        "BPF_PROG_LOAD needs 6.4): a short log buffer is grown by guessing",
        KernelRelease()));
  });
}

absl::Status HaveTokens() {
  return Cached("tokens", []() -> absl::Status {
    // fd -1 is never a bpffs: a kernel that knows the command says EBADF,
    // one that does not rejects the command itself with EINVAL.
    sys::uapi::AttrBuffer buf;
    memset(&buf, 0, sizeof(buf));
    uint32_t words[2] = {0, static_cast<uint32_t>(-1)};  // flags, bpffs_fd
    memcpy(buf.bytes, words, sizeof(words));
    long ret = sys::Bpf(sys::uapi::kCmdTokenCreate, &buf.attr, sys::uapi::kTokenCreateSize);
    if (ret >= 0) {
      sys::Fd fd(static_cast<int>(ret));
      return absl::OkStatus();
    }
    int err = static_cast<int>(-ret);
    if (err == EINVAL) {
      return absl::UnimplementedError(absl::StrFormat(
          "BPF tokens (BPF_TOKEN_CREATE, BPF_F_TOKEN_FD) are not supported by kernel %s (they "
          "need 6.9)",
          KernelRelease()));
    }
    if (err == EPERM) return sys::ErrnoStatus(err, "token probe", "BPF_TOKEN_CREATE");
    return absl::OkStatus();
  });
}

absl::Status HaveTrampolines() {
  return Cached("trampolines", []() -> absl::Status {
    absl::Status btf = HaveVmlinuxBtf();
    if (!btf.ok()) {
      return absl::UnimplementedError(absl::StrCat(
          "trampolines need the kernel's BTF to name their target: ", btf.message()));
    }
    absl::Status tracing = HaveProgramType(BPF_PROG_TYPE_TRACING);
    if (!tracing.ok()) return tracing;
    // bpf_fentry_test1 exists for exactly this (BPF_PROG_TEST_RUN calls it).
    auto target = FindVmlinuxType("bpf_fentry_test1", BTF_KIND_FUNC);
    if (!target.ok()) return target.status();
    bpf_insn prog[] = {insn::MovImm(BPF_REG_0, 0), insn::Exit()};
    sys::ProgLoadRequest req;
    req.type = BPF_PROG_TYPE_TRACING;
    req.expected_attach_type = BPF_TRACE_FENTRY;
    req.attach_btf_id = target->id;
    req.insns = prog;
    req.name = "probe_fentry";
    auto loaded = sys::ProgLoad(req);
    absl::Status st = loaded.status();
    const char* step = "load";
    if (loaded.ok()) {
      // The trampoline itself is built at attach time.
      auto link = sys::RawTracepointOpen(nullptr, loaded->fd.get());
      if (link.ok()) return absl::OkStatus();
      st = link.status();
      step = "attach";
    }
    int err = sys::StatusErrno(st);
    if (IsPolicyRefusal(st) && HoldsBpfPrivileges()) {
      return Refused("BPF trampolines (fentry, fexit, freplace, lsm)", "5.5",
                     absl::StrCat("an fentry program on bpf_fentry_test1: ", step), err);
    }
    if (err == 524 || err == EOPNOTSUPP || err == ENODEV) {
      return absl::UnimplementedError(absl::StrFormat(
          "kernel %s cannot build BPF trampolines (%s at %s): it needs 5.5 on x86-64 with "
          "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS",
          KernelRelease(), sys::ErrnoName(err), step));
    }
    return st;
  });
}

namespace {
// The release that brought each iterator target that tether's tests, docs
// or library paths use.
const char* IteratorSince(absl::string_view target) {
  static const std::pair<const char*, const char*> kSince[] = {
      {"bpf_map", "5.8"},       {"bpf_prog", "5.8"},   {"task", "5.8"},
      {"task_file", "5.8"},     {"netlink", "5.8"},    {"ipv6_route", "5.8"},
      {"bpf_map_elem", "5.9"},  {"tcp", "5.9"},        {"udp", "5.9"},
      {"bpf_sk_storage_map", "5.9"}, {"sockmap", "5.10"}, {"task_vma", "5.12"},
      {"unix", "5.17"},         {"bpf_link", "5.19"},  {"ksym", "6.0"},
      {"cgroup", "6.1"},
  };
  for (const auto& [name, since] : kSince) {
    if (target == name) return since;
  }
  return "a release that tether does not know";
}
}  // namespace

absl::Status HaveIterator(absl::string_view target) {
  std::string t(target);
  return Cached(absl::StrCat("iterator:", t), [t]() -> absl::Status {
    std::string feature = absl::StrCat("BPF iterators over ", t);
    if (absl::Status btf = HaveVmlinuxBtf(); !btf.ok()) {
      return absl::UnimplementedError(absl::StrCat(feature, ": ", btf.message()));
    }
    auto id = detail::VmlinuxBtfTypeId(absl::StrCat("bpf_iter_", t), BTF_KIND_FUNC);
    if (!id.ok()) {
      return absl::UnimplementedError(absl::StrFormat(
          "%s: not supported by kernel %s (its BTF has no bpf_iter_%s; the target came in %s)",
          feature, KernelRelease(), t, IteratorSince(t)));
    }
    auto prog = MinimalProgram(BPF_PROG_TYPE_TRACING, BPF_TRACE_ITER, *id);
    if (prog.ok()) return absl::OkStatus();
    int err = sys::StatusErrno(prog.status());
    if (err == EINVAL || err == EOPNOTSUPP || err == 524) {
      return absl::UnimplementedError(absl::StrFormat(
          "%s: not supported by kernel %s (needs %s): %s", feature, KernelRelease(),
          IteratorSince(t), prog.status().message().substr(0, 200)));
    }
    return RefusedOr(prog.status(), feature, IteratorSince(t),
                     "BPF_PROG_LOAD of a minimal iterator program");
  });
}

absl::Status HaveBatchOps() {
  return Cached("batch_ops", []() -> absl::Status {
    auto map = sys::MapCreate(MinimalMap(BPF_MAP_TYPE_HASH));
    if (!map.ok()) return map.status();
    uint32_t out_batch = 0, keys = 0, values = 0, count = 1;
    sys::BatchArgs args;
    args.out_batch = &out_batch;
    args.keys = &keys;
    args.values = &values;
    args.count = &count;
    // An empty map has nothing to give: ENOENT from a kernel that knows
    // the command, EINVAL for the command from one that does not.
    int ret = sys::MapLookupBatch(map->get(), args);
    if (ret == 0 || ret == -ENOENT) return absl::OkStatus();
    if (ret == -EINVAL) {
      return absl::UnimplementedError(absl::StrFormat(
          "batch map operations are not supported by kernel %s (they need 5.6)", KernelRelease()));
    }
    return sys::ErrnoStatus(-ret, "batch probe", "BPF_MAP_LOOKUP_BATCH");
  });
}

absl::Status HaveLookupAndDelete(uint32_t map_type) {
  return Cached(absl::StrCat("lookup_and_delete:", MapTypeName(map_type)), [map_type]() -> absl::Status {
    if (absl::Status have = HaveMapType(map_type); !have.ok()) return have;
    auto map = sys::MapCreate(MinimalMap(map_type));
    if (!map.ok()) return map.status();
    uint32_t key = 0;
    uint64_t value[2] = {0, 0};  // MinimalMap values are at most 8 bytes
    // An empty map has nothing to take: ENOENT from a map that supports
    // the command, ENOTSUPP (or EINVAL) from one that does not.
    int ret = sys::MapLookupAndDeleteElem(map->get(), &key, value, 0);
    if (ret == 0 || ret == -ENOENT) return absl::OkStatus();
    if (ret == -524 || ret == -EOPNOTSUPP || ret == -EINVAL) {
      return absl::UnimplementedError(absl::StrFormat(
          "BPF_MAP_LOOKUP_AND_DELETE_ELEM on %s maps is not supported by kernel %s (%s)",
          MapTypeName(map_type), KernelRelease(), sys::ErrnoName(-ret)));
    }
    return sys::ErrnoStatus(-ret, "lookup_and_delete probe", "BPF_MAP_LOOKUP_AND_DELETE_ELEM");
  });
}

absl::Status HaveModifyReturn() {
  return Cached("modify_return", []() -> absl::Status {
    absl::Status tramp = HaveTrampolines();
    if (!tramp.ok()) return tramp;
    auto target = FindVmlinuxType("bpf_modify_return_test", BTF_KIND_FUNC);
    if (!target.ok()) return absl::UnimplementedError(absl::StrCat("fmod_ret: ", target.status().message()));
    bpf_insn prog[] = {insn::MovImm(BPF_REG_0, 0), insn::Exit()};
    sys::ProgLoadRequest req;
    req.type = BPF_PROG_TYPE_TRACING;
    req.expected_attach_type = BPF_MODIFY_RETURN;
    req.attach_btf_id = target->id;
    req.insns = prog;
    req.name = "probe_fmod_ret";
    auto loaded = sys::ProgLoad(req);
    if (loaded.ok()) return absl::OkStatus();
    if (loaded.status().message().find("is not modifiable") != absl::string_view::npos) {
      return absl::UnimplementedError(absl::StrFormat(
          "kernel %s does not let fmod_ret programs change bpf_modify_return_test's return "
          "(\"not modifiable\": it needs CONFIG_FUNCTION_ERROR_INJECTION)",
          KernelRelease()));
    }
    return loaded.status();
  });
}

void ProbeAll() {
  for (uint32_t t = 1; t <= sys::uapi::kMapTypeArena; ++t) {
    if (absl::string_view(MapTypeName(t)) != "unknown") (void)HaveMapType(t);
  }
  for (uint32_t t = 1; t <= sys::uapi::kProgTypeNetfilter; ++t) {
    if (absl::string_view(ProgramTypeName(t)) != "unknown") (void)HaveProgramType(t);
  }
  for (uint32_t k = BTF_KIND_INT; k <= BTF_KIND_ENUM64; ++k) (void)HaveBtfKind(k);
  for (uint32_t l = BTF_FUNC_STATIC; l <= BTF_FUNC_EXTERN; ++l) (void)HaveBtfFuncLinkage(l);
  (void)HaveKprobes();
  (void)HaveVmlinuxBtf();
  (void)HaveLogTrueSize();
  (void)HaveTokens();
  (void)HaveTrampolines();
  (void)HaveBatchOps();
  (void)HaveLookupAndDelete(BPF_MAP_TYPE_STACK_TRACE);
  (void)HaveModifyReturn();
  (void)HaveTypedKsyms();
  // Two kfuncs of vmlinux that the tests use (6.2+).
  (void)HaveKfunc("bpf_task_from_pid");
  (void)HaveKfunc("bpf_rcu_read_lock");
  // The iterator targets that the tests and the map dump path use.
  for (const char* target : {"bpf_map", "bpf_map_elem", "task"}) (void)HaveIterator(target);
  for (int k = static_cast<int>(LinkKind::kXdp); k <= static_cast<int>(LinkKind::kNetnsFlowDissector); ++k) {
    (void)HaveLinkKind(static_cast<LinkKind>(k));
  }
}

}  // namespace tether::probe
