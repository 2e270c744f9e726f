#include "sys/bpf.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/cord.h"

// Size of attr up to and including `field`: what the kernel must read.
#define TETHER_ATTR_SIZE(field) \
  static_cast<unsigned>(offsetof(union bpf_attr, field) + sizeof(((union bpf_attr*)0)->field))

namespace tether::sys {
namespace {

constexpr int kProgLoadEagainRetries = 5;
// Heads the verifier log that a failed ProgLoad's Status carries.
constexpr absl::string_view kVerifierLogHeading = "verifier log";

// Fault hook state. `g_hooks` is the only thing the hot path reads: a bit
// per kind of hook that is on.
constexpr uint32_t kHookFault = 1;   // fail the nth call (InjectFault)
constexpr uint32_t kHookRefuse = 2;  // refuse object types (RefuseMapType...)
constexpr uint32_t kHookProgLoadFault = 4;  // fail the nth BPF_PROG_LOAD
std::atomic<uint64_t> g_prog_load_fault_calls{0};
std::atomic<uint64_t> g_prog_load_fault_nth{0};
std::atomic<int> g_prog_load_fault_errno{0};
std::atomic<uint32_t> g_hooks{0};
std::atomic<uint64_t> g_fault_calls{0};
std::atomic<uint64_t> g_fault_nth{0};
std::atomic<int> g_fault_errno{0};
std::atomic<bool> g_fault_persistent{false};

// A kernel that refuses one kind of object as a policy would: the type
// (and, for programs, the expected attach type or kAnyAttachType) and the
// errno. Set by tests before the objects they affect are made.
constexpr int kUnusedSlot = -1;  // BPF_MAP_CREATE is command 0
struct Refusal {
  std::atomic<int> command{kUnusedSlot};  // BPF_MAP_CREATE or BPF_PROG_LOAD
  std::atomic<uint32_t> type{0};
  std::atomic<uint32_t> attach_type{0};
  std::atomic<int> err{0};
};
constexpr size_t kMaxRefusals = 8;
Refusal g_refusals[kMaxRefusals];

// The errno a refusal rule gives this call, or 0.
int RefusalFor(int cmd, const union bpf_attr* attr) {
  if (cmd != BPF_MAP_CREATE && cmd != BPF_PROG_LOAD) return 0;
  for (const Refusal& r : g_refusals) {
    if (r.command.load(std::memory_order_acquire) != cmd) continue;
    if (cmd == BPF_MAP_CREATE) {
      if (attr->map_type == r.type.load(std::memory_order_relaxed)) return r.err.load();
      continue;
    }
    uint32_t attach = r.attach_type.load(std::memory_order_relaxed);
    if (attr->prog_type == r.type.load(std::memory_order_relaxed) &&
        (attach == testing::kAnyAttachType || attr->expected_attach_type == attach)) {
      return r.err.load();
    }
  }
  return 0;
}

void AddRefusal(int cmd, uint32_t type, uint32_t attach_type, int err) {
  for (Refusal& r : g_refusals) {
    if (r.command.load() != kUnusedSlot) continue;
    r.type.store(type);
    r.attach_type.store(attach_type);
    r.err.store(err);
    r.command.store(cmd, std::memory_order_release);
    g_hooks.fetch_or(kHookRefuse);
    return;
  }
  abort();  // more rules than any test needs: a test bug
}

std::atomic<bool> g_record_prog_loads{false};
std::mutex g_recorded_mu;
std::vector<testing::RecordedProgLoad>* g_recorded = nullptr;

inline uint64_t Ptr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

long RawBpf(int cmd, union bpf_attr* attr, unsigned int size) {
  long ret;
  do {
    ret = syscall(__NR_bpf, cmd, attr, size);
  } while (ret < 0 && errno == EINTR);
  return ret < 0 ? -errno : ret;
}

}  // namespace

void Fd::Reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

bool IsPolicyRefusal(const absl::Status& status) {
  int err = StatusErrno(status);
  if (err == EPERM) return true;
  return err == EACCES && status.message().find(kVerifierLogHeading) == absl::string_view::npos;
}

long Bpf(int cmd, union bpf_attr* attr, unsigned int size) {
  uint32_t hooks = g_hooks.load(std::memory_order_relaxed);
  if (__builtin_expect(hooks != 0, 0)) {
    if (hooks & kHookRefuse) {
      if (int err = RefusalFor(cmd, attr)) return -err;
    }
    if ((hooks & kHookProgLoadFault) && cmd == BPF_PROG_LOAD &&
        g_prog_load_fault_calls.fetch_add(1) + 1 == g_prog_load_fault_nth.load()) {
      return -g_prog_load_fault_errno.load();
    }
  }
  if (__builtin_expect(hooks & kHookFault, 0)) {
    uint64_t n = g_fault_calls.fetch_add(1, std::memory_order_relaxed) + 1;
    uint64_t nth = g_fault_nth.load(std::memory_order_relaxed);
    bool persistent = g_fault_persistent.load(std::memory_order_relaxed);
    if (nth != 0 && (n == nth || (persistent && n > nth))) {
      int err = g_fault_errno.load(std::memory_order_relaxed);
      // An injected EINTR behaves like a real one: the call is retried.
      if (err != EINTR) return -err;
    }
  }
  return RawBpf(cmd, attr, size);
}

namespace {
// Takes ownership of a fresh fd from the kernel. fd 0 means "none" to
// several attrs (inner_map_fd, btf_fd...), so it is moved above stderr.
absl::StatusOr<Fd> AdoptNewFd(long ret, absl::string_view op) {
  Fd fd(static_cast<int>(ret));
  if (fd.get() == 0) {
    int moved = fcntl(fd.get(), F_DUPFD_CLOEXEC, 3);
    if (moved < 0) return ErrnoStatus(errno, "bpf", absl::StrCat(op, ": moving fd 0 above 2"));
    fd.Reset(moved);
  }
  return fd;
}
}  // namespace

absl::StatusOr<Fd> BpfFd(int cmd, union bpf_attr* attr, unsigned int size) {
  long ret = Bpf(cmd, attr, size);
  if (ret < 0) return ErrnoStatus(static_cast<int>(-ret), "bpf", CommandName(cmd));
  return AdoptNewFd(ret, CommandName(cmd));
}

absl::string_view CommandName(int cmd) {
  switch (cmd) {
    case BPF_MAP_CREATE: return "BPF_MAP_CREATE";
    case BPF_MAP_LOOKUP_ELEM: return "BPF_MAP_LOOKUP_ELEM";
    case BPF_MAP_UPDATE_ELEM: return "BPF_MAP_UPDATE_ELEM";
    case BPF_MAP_DELETE_ELEM: return "BPF_MAP_DELETE_ELEM";
    case BPF_MAP_GET_NEXT_KEY: return "BPF_MAP_GET_NEXT_KEY";
    case BPF_PROG_LOAD: return "BPF_PROG_LOAD";
    case BPF_OBJ_PIN: return "BPF_OBJ_PIN";
    case BPF_OBJ_GET: return "BPF_OBJ_GET";
    case BPF_PROG_ATTACH: return "BPF_PROG_ATTACH";
    case BPF_PROG_DETACH: return "BPF_PROG_DETACH";
    case BPF_PROG_TEST_RUN: return "BPF_PROG_TEST_RUN";
    case BPF_PROG_GET_NEXT_ID: return "BPF_PROG_GET_NEXT_ID";
    case BPF_MAP_GET_NEXT_ID: return "BPF_MAP_GET_NEXT_ID";
    case BPF_PROG_GET_FD_BY_ID: return "BPF_PROG_GET_FD_BY_ID";
    case BPF_MAP_GET_FD_BY_ID: return "BPF_MAP_GET_FD_BY_ID";
    case BPF_OBJ_GET_INFO_BY_FD: return "BPF_OBJ_GET_INFO_BY_FD";
    case BPF_RAW_TRACEPOINT_OPEN: return "BPF_RAW_TRACEPOINT_OPEN";
    case BPF_BTF_LOAD: return "BPF_BTF_LOAD";
    case BPF_BTF_GET_FD_BY_ID: return "BPF_BTF_GET_FD_BY_ID";
    case BPF_MAP_LOOKUP_AND_DELETE_ELEM: return "BPF_MAP_LOOKUP_AND_DELETE_ELEM";
    case BPF_MAP_FREEZE: return "BPF_MAP_FREEZE";
    case BPF_BTF_GET_NEXT_ID: return "BPF_BTF_GET_NEXT_ID";
    case BPF_MAP_LOOKUP_BATCH: return "BPF_MAP_LOOKUP_BATCH";
    case BPF_MAP_LOOKUP_AND_DELETE_BATCH: return "BPF_MAP_LOOKUP_AND_DELETE_BATCH";
    case BPF_MAP_UPDATE_BATCH: return "BPF_MAP_UPDATE_BATCH";
    case BPF_MAP_DELETE_BATCH: return "BPF_MAP_DELETE_BATCH";
    case BPF_LINK_CREATE: return "BPF_LINK_CREATE";
    case BPF_LINK_UPDATE: return "BPF_LINK_UPDATE";
    case BPF_LINK_GET_FD_BY_ID: return "BPF_LINK_GET_FD_BY_ID";
    case BPF_LINK_GET_NEXT_ID: return "BPF_LINK_GET_NEXT_ID";
    case BPF_ITER_CREATE: return "BPF_ITER_CREATE";
    case BPF_LINK_DETACH: return "BPF_LINK_DETACH";
    default: return "BPF_(unknown command)";
  }
}

absl::string_view ErrnoName(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case E2BIG: return "E2BIG";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case EXDEV: return "EXDEV";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENFILE: return "ENFILE";
    case EMFILE: return "EMFILE";
    case ENOSPC: return "ENOSPC";
    case ERANGE: return "ERANGE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOSYS: return "ENOSYS";
    case ELOOP: return "ELOOP";
    case ENOTSUP: return "EOPNOTSUPP";
    case ENXIO: return "ENXIO";
    case ETIMEDOUT: return "ETIMEDOUT";
    case uapi::kEnotsupp: return "ENOTSUPP";
    default: return "E?";
  }
}

absl::StatusCode StatusCodeForErrno(int err) {
  switch (err) {
    case 0: return absl::StatusCode::kOk;
    // absl says InvalidArgument; for bpf(2) E2BIG is mostly "no room": a
    // full hash map, a program over the instruction limit, an attr larger
    // than this kernel knows.
    case E2BIG:
    case ENOMEM:
    case ENOSPC: return absl::StatusCode::kResourceExhausted;
    case ENOENT: return absl::StatusCode::kNotFound;
    case EEXIST: return absl::StatusCode::kAlreadyExists;
    case EPERM:
    case EACCES: return absl::StatusCode::kPermissionDenied;
    case EOPNOTSUPP:
    case ENOSYS:
    case uapi::kEnotsupp: return absl::StatusCode::kUnimplemented;
    case EINVAL: return absl::StatusCode::kInvalidArgument;
    // Transient: a hash bucket lock held by a program on this CPU, a
    // verifier short of memory. Retrying may succeed, which is what
    // Unavailable tells a caller.
    case EBUSY:
    case EAGAIN:
    case EINTR: return absl::StatusCode::kUnavailable;
    default: {
      // absl's table for the rest (EBADF -> FailedPrecondition, EFAULT ->
      // InvalidArgument...); an errno it does not know is Unknown.
      return absl::ErrnoToStatusCode(err);
    }
  }
}

absl::Status ErrnoStatus(int err, absl::string_view what, absl::string_view op) {
  absl::StatusCode code = StatusCodeForErrno(err);
  const char* text = err == uapi::kEnotsupp ? "Operation not supported by the kernel" : strerror(err);
  absl::Status status(code, absl::StrFormat("%s: %s: %s (%s)", what, op, ErrnoName(err), text));
  // Keep the raw errno machine-readable for callers that branch on it.
  status.SetPayload("tether/errno", absl::Cord(absl::StrCat(err)));
  return status;
}

int StatusErrno(const absl::Status& status) {
  auto payload = status.GetPayload("tether/errno");
  if (!payload) return 0;
  int err = 0;
  if (!absl::SimpleAtoi(std::string(*payload), &err)) return 0;
  return err;
}

// --- maps --------------------------------------------------------------------

absl::StatusOr<Fd> MapCreate(const MapCreateRequest& req) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.map_type = req.type;
  attr.key_size = req.key_size;
  attr.value_size = req.value_size;
  attr.max_entries = req.max_entries;
  attr.map_flags = req.flags;
  attr.inner_map_fd = req.inner_map_fd >= 0 ? req.inner_map_fd : 0;
  attr.numa_node = req.numa_node;
  size_t n = std::min(req.name.size(), sizeof(attr.map_name) - 1);
  if (n > 0) memcpy(attr.map_name, req.name.data(), n);
  attr.map_ifindex = req.ifindex;
  attr.btf_fd = req.btf_fd >= 0 ? req.btf_fd : 0;
  attr.btf_key_type_id = req.btf_key_type_id;
  attr.btf_value_type_id = req.btf_value_type_id;
  attr.btf_vmlinux_value_type_id = req.btf_vmlinux_value_type_id;
  attr.map_extra = req.map_extra;
  // Older kernels reject a non-zero tail they do not know; send only what is used.
  unsigned size = req.map_extra ? TETHER_ATTR_SIZE(map_extra)
                                : TETHER_ATTR_SIZE(btf_vmlinux_value_type_id);
  return BpfFd(BPF_MAP_CREATE, &attr, size);
}

namespace {
inline int ElemOp(int cmd, int fd, const void* key, const void* value, uint64_t flags) {
  union bpf_attr attr;
  memset(&attr, 0, TETHER_ATTR_SIZE(flags));
  attr.map_fd = fd;
  attr.key = Ptr(key);
  attr.value = Ptr(value);
  attr.flags = flags;
  return static_cast<int>(Bpf(cmd, &attr, TETHER_ATTR_SIZE(flags)));
}

int BatchOp(int cmd, int fd, const BatchArgs& a) {
  union bpf_attr attr;
  memset(&attr, 0, TETHER_ATTR_SIZE(batch.flags));
  attr.batch.in_batch = Ptr(a.in_batch);
  attr.batch.out_batch = Ptr(a.out_batch);
  attr.batch.keys = Ptr(a.keys);
  attr.batch.values = Ptr(a.values);
  attr.batch.count = *a.count;
  attr.batch.map_fd = fd;
  attr.batch.elem_flags = a.elem_flags;
  attr.batch.flags = a.flags;
  long ret = Bpf(cmd, &attr, TETHER_ATTR_SIZE(batch.flags));
  // The kernel reports how many elements it processed even on error.
  *a.count = attr.batch.count;
  return static_cast<int>(ret);
}
}  // namespace

int MapLookupElem(int fd, const void* key, void* value, uint64_t flags) {
  return ElemOp(BPF_MAP_LOOKUP_ELEM, fd, key, value, flags);
}
int MapUpdateElem(int fd, const void* key, const void* value, uint64_t flags) {
  return ElemOp(BPF_MAP_UPDATE_ELEM, fd, key, value, flags);
}
int MapDeleteElem(int fd, const void* key) {
  return ElemOp(BPF_MAP_DELETE_ELEM, fd, key, nullptr, 0);
}
int MapLookupAndDeleteElem(int fd, const void* key, void* value, uint64_t flags) {
  return ElemOp(BPF_MAP_LOOKUP_AND_DELETE_ELEM, fd, key, value, flags);
}
int MapGetNextKey(int fd, const void* key, void* next_key) {
  union bpf_attr attr;
  memset(&attr, 0, TETHER_ATTR_SIZE(next_key));
  attr.map_fd = fd;
  attr.key = Ptr(key);
  attr.next_key = Ptr(next_key);
  return static_cast<int>(Bpf(BPF_MAP_GET_NEXT_KEY, &attr, TETHER_ATTR_SIZE(next_key)));
}
int MapFreeze(int fd) {
  union bpf_attr attr;
  memset(&attr, 0, TETHER_ATTR_SIZE(map_fd));
  attr.map_fd = fd;
  return static_cast<int>(Bpf(BPF_MAP_FREEZE, &attr, TETHER_ATTR_SIZE(map_fd)));
}
int MapLookupBatch(int fd, const BatchArgs& a) { return BatchOp(BPF_MAP_LOOKUP_BATCH, fd, a); }
int MapLookupAndDeleteBatch(int fd, const BatchArgs& a) {
  return BatchOp(BPF_MAP_LOOKUP_AND_DELETE_BATCH, fd, a);
}
int MapUpdateBatch(int fd, const BatchArgs& a) { return BatchOp(BPF_MAP_UPDATE_BATCH, fd, a); }
int MapDeleteBatch(int fd, const BatchArgs& a) { return BatchOp(BPF_MAP_DELETE_BATCH, fd, a); }

// --- programs ------------------------------------------------------------------

namespace {

void FillProgLoad(const ProgLoadRequest& req, union bpf_attr* attr) {
  memset(attr, 0, sizeof(*attr));
  attr->prog_type = req.type;
  attr->insn_cnt = static_cast<uint32_t>(req.insns.size());
  attr->insns = Ptr(req.insns.data());
  // license must be NUL-terminated; string_view may not be.
  attr->kern_version = req.kern_version;
  attr->prog_flags = req.prog_flags;
  size_t n = std::min(req.name.size(), sizeof(attr->prog_name) - 1);
  if (n > 0) memcpy(attr->prog_name, req.name.data(), n);
  attr->expected_attach_type = req.expected_attach_type;
  if (req.prog_btf_fd >= 0) {
    attr->prog_btf_fd = req.prog_btf_fd;
    attr->func_info_rec_size = req.func_info_rec_size;
    attr->func_info = Ptr(req.func_info);
    attr->func_info_cnt = req.func_info_cnt;
    attr->line_info_rec_size = req.line_info_rec_size;
    attr->line_info = Ptr(req.line_info);
    attr->line_info_cnt = req.line_info_cnt;
  }
  attr->attach_btf_id = req.attach_btf_id;
  if (req.attach_prog_fd >= 0) {
    attr->attach_prog_fd = req.attach_prog_fd;
  } else if (req.attach_btf_obj_fd >= 0) {
    attr->attach_btf_obj_fd = req.attach_btf_obj_fd;
  }
  attr->fd_array = req.fd_array.empty() ? 0 : Ptr(req.fd_array.data());
}

// The last lines of a verifier log are where it says why it gave up.
std::string LogTail(absl::string_view log, size_t max_bytes = 4096) {
  while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.remove_suffix(1);
  if (log.size() <= max_bytes) return std::string(log);
  absl::string_view tail = log.substr(log.size() - max_bytes);
  size_t nl = tail.find('\n');
  if (nl != absl::string_view::npos) tail.remove_prefix(nl + 1);
  return absl::StrCat("...\n", tail);
}

// One BPF_PROG_LOAD. With a log, the attr reaches up to log_true_size:
// kernels since 6.4 report there how large the whole log is, and older
// ones accept the zeroed field and leave it 0, which tells them apart
// without a probe. Without a log, the attr stops at fd_array as before.
long LoadOnce(const ProgLoadRequest& req, const std::string& license, uint32_t log_level,
              std::vector<char>* log, uint32_t* log_true_size) {
  uapi::AttrBuffer buf;
  memset(&buf, 0, sizeof(buf));
  union bpf_attr& attr = buf.attr;
  FillProgLoad(req, &attr);
  attr.license = Ptr(license.c_str());
  unsigned size = TETHER_ATTR_SIZE(fd_array);
  if (log_level > 0) {
    attr.log_level = log_level;
    attr.log_buf = Ptr(log->data());
    attr.log_size = static_cast<uint32_t>(log->size());
    (*log)[0] = '\0';
    size = uapi::kProgLoadLogTrueSizeOffset + sizeof(uint32_t);
  }
  long ret;
  int tries = 0;
  do {
    ret = Bpf(BPF_PROG_LOAD, &attr, size);
  } while (ret == -EAGAIN && ++tries < kProgLoadEagainRetries);
  if (log_true_size) {
    memcpy(log_true_size, buf.bytes + uapi::kProgLoadLogTrueSizeOffset, sizeof(uint32_t));
  }
  return ret;
}

}  // namespace

namespace {

// The BTF object id behind `fd`, asked past the fault hook so that
// recording does not shift the call counts fault tests rely on.
uint32_t BtfIdOfFd(int fd) {
  bpf_btf_info info;
  memset(&info, 0, sizeof(info));
  union bpf_attr attr;
  memset(&attr, 0, TETHER_ATTR_SIZE(info.info));
  attr.info.bpf_fd = fd;
  attr.info.info_len = sizeof(info);
  attr.info.info = Ptr(&info);
  return RawBpf(BPF_OBJ_GET_INFO_BY_FD, &attr, TETHER_ATTR_SIZE(info.info)) == 0 ? info.id : 0;
}

void Record(const ProgLoadRequest& req) {
  testing::RecordedProgLoad r;
  r.name = std::string(req.name);
  r.insns.assign(req.insns.begin(), req.insns.end());
  r.fd_array.assign(req.fd_array.begin(), req.fd_array.end());
  for (int fd : r.fd_array) r.fd_array_btf_ids.push_back(fd >= 0 ? BtfIdOfFd(fd) : 0);
  std::lock_guard<std::mutex> lock(g_recorded_mu);
  if (!g_recorded) g_recorded = new std::vector<testing::RecordedProgLoad>;
  g_recorded->push_back(std::move(r));
}

}  // namespace

absl::StatusOr<ProgLoadResult> ProgLoad(const ProgLoadRequest& req) {
  if (__builtin_expect(g_record_prog_loads.load(std::memory_order_relaxed), 0)) Record(req);
  std::string license(req.license);
  std::vector<char> log;
  uint32_t level = req.log_level;
  size_t log_size = 64 * 1024;
  long ret;
  if (level == 0) {
    // The fast path: most loads succeed, and a log costs the verifier time.
    ret = LoadOnce(req, license, 0, &log, nullptr);
    if (ret >= 0) {
      auto fd = AdoptNewFd(ret, "BPF_PROG_LOAD");
      if (!fd.ok()) return fd.status();
      ProgLoadResult result;
      result.fd = std::move(*fd);
      return result;
    }
    if (ret == -ENOMEM || ret == -EMFILE || ret == -ENFILE || ret == -EPERM || ret == -E2BIG) {
      // Not the verifier's verdict: a log would not explain it.
      return ErrnoStatus(static_cast<int>(-ret), absl::StrCat("program '", req.name, "'"),
                         "BPF_PROG_LOAD");
    }
    level = 1;
  }
  for (;;) {
    log.assign(log_size, '\0');
    uint32_t true_size = 0;
    ret = LoadOnce(req, license, level, &log, &true_size);
    if (ret != -ENOSPC || log_size >= req.log_size_cap) break;
    // The kernel said how much it needs (6.4+): one more try fits the log.
    // Before 6.4 it cannot say, so the buffer grows until the log fits.
    size_t wanted = true_size > log_size ? true_size : log_size * 4;
    log_size = std::min<size_t>(wanted, req.log_size_cap);
  }
  std::string log_text(log.data(), strnlen(log.data(), log.size()));
  if (ret < 0) {
    absl::Status st = ErrnoStatus(static_cast<int>(-ret), absl::StrCat("program '", req.name, "'"),
                                  "BPF_PROG_LOAD");
    if (!log_text.empty()) {
      st = absl::Status(st.code(), absl::StrCat(st.message(), "\n", kVerifierLogHeading, ":\n", LogTail(log_text)));
      st.SetPayload("tether/errno", absl::Cord(absl::StrCat(-ret)));
    }
    return st;
  }
  auto fd = AdoptNewFd(ret, "BPF_PROG_LOAD");
  if (!fd.ok()) return fd.status();
  ProgLoadResult result;
  result.fd = std::move(*fd);
  if (req.log_level > 0) result.log = std::move(log_text);
  return result;
}

int ProgTestRun(const TestRunRequest& req, TestRunResult* out) {
  union bpf_attr attr;
  memset(&attr, 0, TETHER_ATTR_SIZE(test.batch_size));
  attr.test.prog_fd = req.prog_fd;
  attr.test.data_in = Ptr(req.data_in.data());
  attr.test.data_size_in = static_cast<uint32_t>(req.data_in.size());
  attr.test.data_out = Ptr(req.data_out.data());
  attr.test.data_size_out = static_cast<uint32_t>(req.data_out.size());
  attr.test.ctx_in = Ptr(req.ctx_in.data());
  attr.test.ctx_size_in = static_cast<uint32_t>(req.ctx_in.size());
  attr.test.ctx_out = Ptr(req.ctx_out.data());
  attr.test.ctx_size_out = static_cast<uint32_t>(req.ctx_out.size());
  attr.test.repeat = req.repeat;
  attr.test.flags = req.flags;
  attr.test.cpu = req.cpu;
  attr.test.batch_size = req.batch_size;
  long ret = Bpf(BPF_PROG_TEST_RUN, &attr, TETHER_ATTR_SIZE(test.batch_size));
  if (ret < 0) return static_cast<int>(ret);
  out->retval = attr.test.retval;
  out->data_size_out = attr.test.data_size_out;
  out->ctx_size_out = attr.test.ctx_size_out;
  out->duration_ns = attr.test.duration;
  return 0;
}

int ProgAttach(int target_fd, int prog_fd, uint32_t attach_type, uint32_t flags,
               int replace_prog_fd) {
  union bpf_attr attr;
  memset(&attr, 0, TETHER_ATTR_SIZE(replace_bpf_fd));
  attr.target_fd = target_fd;
  attr.attach_bpf_fd = prog_fd;
  attr.attach_type = attach_type;
  attr.attach_flags = flags;
  if (replace_prog_fd >= 0) attr.replace_bpf_fd = replace_prog_fd;
  return static_cast<int>(Bpf(BPF_PROG_ATTACH, &attr, TETHER_ATTR_SIZE(replace_bpf_fd)));
}

int ProgDetach(int target_fd, int prog_fd, uint32_t attach_type) {
  union bpf_attr attr;
  memset(&attr, 0, TETHER_ATTR_SIZE(attach_type));
  attr.target_fd = target_fd;
  attr.attach_bpf_fd = prog_fd >= 0 ? prog_fd : 0;
  attr.attach_type = attach_type;
  return static_cast<int>(Bpf(BPF_PROG_DETACH, &attr, TETHER_ATTR_SIZE(attach_type)));
}

int ProgQuery(int target, uint32_t attach_type, std::vector<uint32_t>* ids) {
  // Room for 64 ids first; the kernel reports the real count on ENOSPC.
  ids->resize(64);
  for (int attempt = 0; attempt < 3; ++attempt) {
    union bpf_attr attr;
    memset(&attr, 0, TETHER_ATTR_SIZE(query.prog_cnt));
    attr.query.target_fd = static_cast<uint32_t>(target);
    attr.query.attach_type = attach_type;
    attr.query.prog_ids = Ptr(ids->data());
    attr.query.prog_cnt = static_cast<uint32_t>(ids->size());
    long err = Bpf(BPF_PROG_QUERY, &attr, TETHER_ATTR_SIZE(query.prog_cnt));
    if (err == -ENOSPC && attr.query.prog_cnt > ids->size()) {
      ids->resize(attr.query.prog_cnt);
      continue;
    }
    if (err < 0) {
      ids->clear();
      return static_cast<int>(err);
    }
    ids->resize(std::min<size_t>(attr.query.prog_cnt, ids->size()));
    return 0;
  }
  ids->clear();
  return -EAGAIN;
}

// --- objects ---------------------------------------------------------------------

int ObjPin(int fd, const char* path) {
  union bpf_attr attr;
  memset(&attr, 0, TETHER_ATTR_SIZE(file_flags));
  attr.pathname = Ptr(path);
  attr.bpf_fd = fd;
  return static_cast<int>(Bpf(BPF_OBJ_PIN, &attr, TETHER_ATTR_SIZE(file_flags)));
}

absl::StatusOr<Fd> ObjGet(const char* path, uint32_t file_flags) {
  union bpf_attr attr;
  memset(&attr, 0, TETHER_ATTR_SIZE(file_flags));
  attr.pathname = Ptr(path);
  attr.file_flags = file_flags;
  return BpfFd(BPF_OBJ_GET, &attr, TETHER_ATTR_SIZE(file_flags));
}

absl::string_view ObjectKindName(ObjectKind kind) {
  switch (kind) {
    case ObjectKind::kProgram: return "program";
    case ObjectKind::kMap: return "map";
    case ObjectKind::kLink: return "link";
    case ObjectKind::kBtf: return "btf";
  }
  return "object";
}

int GetNextId(ObjectKind kind, uint32_t start_id, uint32_t* next_id) {
  static constexpr int kCmd[] = {BPF_PROG_GET_NEXT_ID, BPF_MAP_GET_NEXT_ID,
                                 BPF_LINK_GET_NEXT_ID, BPF_BTF_GET_NEXT_ID};
  union bpf_attr attr;
  memset(&attr, 0, TETHER_ATTR_SIZE(open_flags));
  attr.start_id = start_id;
  long ret = Bpf(kCmd[static_cast<int>(kind)], &attr, TETHER_ATTR_SIZE(open_flags));
  if (ret < 0) return static_cast<int>(ret);
  *next_id = attr.next_id;
  return 0;
}

absl::StatusOr<Fd> GetFdById(ObjectKind kind, uint32_t id) {
  static constexpr int kCmd[] = {BPF_PROG_GET_FD_BY_ID, BPF_MAP_GET_FD_BY_ID,
                                 BPF_LINK_GET_FD_BY_ID, BPF_BTF_GET_FD_BY_ID};
  union bpf_attr attr;
  memset(&attr, 0, TETHER_ATTR_SIZE(open_flags));
  attr.prog_id = id;  // prog_id, map_id, btf_id and link_id share this slot
  return BpfFd(kCmd[static_cast<int>(kind)], &attr, TETHER_ATTR_SIZE(open_flags));
}

int ObjGetInfoByFd(int fd, void* info, uint32_t* info_len) {
  union bpf_attr attr;
  memset(&attr, 0, TETHER_ATTR_SIZE(info.info));
  attr.info.bpf_fd = fd;
  attr.info.info_len = *info_len;
  attr.info.info = Ptr(info);
  long ret = Bpf(BPF_OBJ_GET_INFO_BY_FD, &attr, TETHER_ATTR_SIZE(info.info));
  if (ret < 0) return static_cast<int>(ret);
  *info_len = attr.info.info_len;
  return 0;
}

absl::StatusOr<std::vector<bpf_insn>> GetTranslatedCode(int prog_fd, uint32_t xlated_len) {
  std::vector<bpf_insn> code(xlated_len / sizeof(bpf_insn));
  bpf_prog_info info;
  memset(&info, 0, sizeof(info));
  info.xlated_prog_len = static_cast<uint32_t>(code.size() * sizeof(bpf_insn));
  info.xlated_prog_insns = Ptr(code.data());
  uint32_t len = sizeof(info);
  int err = ObjGetInfoByFd(prog_fd, &info, &len);
  if (err < 0) return ErrnoStatus(-err, "program", "BPF_OBJ_GET_INFO_BY_FD (xlated code)");
  if (info.xlated_prog_len == 0 && !code.empty())
    return absl::PermissionDeniedError("program: the kernel gave no translated code");
  code.resize(std::min<size_t>(code.size(), info.xlated_prog_len / sizeof(bpf_insn)));
  return code;
}

namespace {
template <typename Info>
absl::StatusOr<Info> GetInfo(int fd, absl::string_view what) {
  Info info;
  memset(&info, 0, sizeof(info));
  uint32_t len = sizeof(info);
  int err = ObjGetInfoByFd(fd, &info, &len);
  if (err < 0) return ErrnoStatus(-err, what, "BPF_OBJ_GET_INFO_BY_FD");
  return info;
}
}  // namespace

absl::StatusOr<bpf_map_info> GetMapInfo(int fd) { return GetInfo<bpf_map_info>(fd, "map"); }
absl::StatusOr<bpf_prog_info> GetProgInfo(int fd) { return GetInfo<bpf_prog_info>(fd, "program"); }
absl::StatusOr<bpf_link_info> GetLinkInfo(int fd) { return GetInfo<bpf_link_info>(fd, "link"); }

absl::StatusOr<std::string> GetRawTracepointLinkName(int fd) {
  char name[256] = {0};
  bpf_link_info info;
  memset(&info, 0, sizeof(info));
  info.raw_tracepoint.tp_name = Ptr(name);
  info.raw_tracepoint.tp_name_len = sizeof(name);
  uint32_t len = sizeof(info);
  int err = ObjGetInfoByFd(fd, &info, &len);
  if (err < 0) return ErrnoStatus(-err, "link", "BPF_OBJ_GET_INFO_BY_FD(tp_name)");
  return std::string(name, strnlen(name, sizeof(name)));
}

absl::StatusOr<bpf_prog_info> GetProgInfoAndMapIds(int fd, std::vector<uint32_t>* ids) {
  // Room for the map ids goes with the first call, so that a program with
  // up to 16 maps costs one syscall, not three (a load of 100 programs
  // spent about 1 ms on the other two). The room is on the stack, and
  // `ids` gets exactly the ids: one allocation of their size, none for a
  // program without maps.
  uint32_t room[16];
  uint32_t* buf = room;
  uint32_t capacity = 16;
  std::vector<uint32_t> more;
  for (int attempt = 0; attempt < 3; ++attempt) {
    bpf_prog_info info;
    memset(&info, 0, sizeof(info));
    info.nr_map_ids = capacity;
    info.map_ids = Ptr(buf);
    uint32_t len = sizeof(info);
    int err = ObjGetInfoByFd(fd, &info, &len);
    if (err < 0) {
      ids->clear();
      return ErrnoStatus(-err, "program", "BPF_OBJ_GET_INFO_BY_FD");
    }
    if (info.nr_map_ids <= capacity) {
      ids->assign(buf, buf + info.nr_map_ids);
      info.map_ids = 0;  // pointed at the room
      return info;
    }
    more.resize(info.nr_map_ids);
    buf = more.data();
    capacity = info.nr_map_ids;
  }
  ids->clear();
  return absl::InternalError("program: map_ids kept changing while being read");
}

absl::Status GetProgMapIds(int fd, std::vector<uint32_t>* ids) {
  return GetProgInfoAndMapIds(fd, ids).status();
}

absl::StatusOr<BtfObjectInfo> GetBtfInfo(int fd, std::vector<uint8_t>* data) {
  // Module names are at most MODULE_NAME_LEN (56 on 64-bit) bytes.
  char name[64] = {0};
  bpf_btf_info info;
  memset(&info, 0, sizeof(info));
  info.name = Ptr(name);
  info.name_len = sizeof(name);
  uint32_t len = sizeof(info);
  int err = ObjGetInfoByFd(fd, &info, &len);
  if (err < 0) return ErrnoStatus(-err, "BTF", "BPF_OBJ_GET_INFO_BY_FD");
  BtfObjectInfo out;
  out.id = info.id;
  out.name.assign(name, strnlen(name, sizeof(name)));
  out.kernel_btf = info.kernel_btf != 0;
  out.btf_size = info.btf_size;
  if (data) {
    // A second call with room for the bytes: the first one sized them.
    data->assign(out.btf_size, 0);
    memset(&info, 0, sizeof(info));
    info.btf = Ptr(data->data());
    info.btf_size = out.btf_size;
    len = sizeof(info);
    err = ObjGetInfoByFd(fd, &info, &len);
    if (err < 0) {
      return ErrnoStatus(-err, absl::StrCat("BTF id ", out.id), "BPF_OBJ_GET_INFO_BY_FD(btf)");
    }
    if (info.btf_size != out.btf_size) {
      return absl::InternalError(absl::StrFormat("BTF id %u: BPF_OBJ_GET_INFO_BY_FD: size %u, then %u",
                                                 out.id, out.btf_size, info.btf_size));
    }
  }
  return out;
}

absl::StatusOr<BtfLoadResult> BtfLoad(absl::Span<const uint8_t> btf, uint32_t log_level) {
  std::vector<char> log;
  for (uint32_t level = log_level;; level = 1) {
    union bpf_attr attr;
    memset(&attr, 0, TETHER_ATTR_SIZE(btf_log_level));
    attr.btf = Ptr(btf.data());
    attr.btf_size = static_cast<uint32_t>(btf.size());
    if (level > 0) {
      log.assign(1 << 20, '\0');
      attr.btf_log_buf = Ptr(log.data());
      attr.btf_log_size = static_cast<uint32_t>(log.size());
      attr.btf_log_level = level;
    }
    auto fd = BpfFd(BPF_BTF_LOAD, &attr, TETHER_ATTR_SIZE(btf_log_level));
    if (fd.ok()) {
      BtfLoadResult result;
      result.fd = std::move(*fd);
      if (level > 0 && !log.empty()) result.log.assign(log.data(), strnlen(log.data(), log.size()));
      return result;
    }
    int err = StatusErrno(fd.status());
    if (level > 0 || err == ENOMEM || err == EPERM || err == EMFILE) {
      absl::Status st = ErrnoStatus(err, "BTF", "BPF_BTF_LOAD");
      std::string text = log.empty() ? std::string() : std::string(log.data(), strnlen(log.data(), log.size()));
      if (!text.empty()) {
        st = absl::Status(st.code(), absl::StrCat(st.message(), "\nBTF log:\n", LogTail(text)));
        st.SetPayload("tether/errno", absl::Cord(absl::StrCat(err)));
      }
      return st;
    }
  }
}

// --- links -----------------------------------------------------------------------

absl::StatusOr<Fd> LinkCreate(const LinkCreateRequest& req) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.link_create.prog_fd = req.prog_fd;
  attr.link_create.target_fd = req.target_fd;
  attr.link_create.attach_type = req.attach_type;
  attr.link_create.flags = req.flags;
  unsigned size = TETHER_ATTR_SIZE(link_create.flags);
  if (req.target_btf_id) {
    attr.link_create.target_btf_id = req.target_btf_id;
    size = TETHER_ATTR_SIZE(link_create.target_btf_id);
  }
  if (req.extra_size > 0) {
    size_t off = offsetof(union bpf_attr, link_create.target_btf_id);
    if (off + req.extra_size > sizeof(attr)) {
      return absl::InvalidArgumentError("link: BPF_LINK_CREATE: attach options too large");
    }
    memcpy(reinterpret_cast<char*>(&attr) + off, req.extra, req.extra_size);
    size = static_cast<unsigned>(std::max<size_t>(size, off + req.extra_size));
  }
  return BpfFd(BPF_LINK_CREATE, &attr, size);
}

int LinkUpdate(int link_fd, int new_prog_fd, uint32_t flags, int old_prog_fd) {
  union bpf_attr attr;
  memset(&attr, 0, TETHER_ATTR_SIZE(link_update.old_prog_fd));
  attr.link_update.link_fd = link_fd;
  attr.link_update.new_prog_fd = new_prog_fd;
  attr.link_update.flags = flags;
  if (old_prog_fd >= 0) attr.link_update.old_prog_fd = old_prog_fd;
  return static_cast<int>(Bpf(BPF_LINK_UPDATE, &attr, TETHER_ATTR_SIZE(link_update.old_prog_fd)));
}

int LinkDetach(int link_fd) {
  union bpf_attr attr;
  memset(&attr, 0, TETHER_ATTR_SIZE(link_detach.link_fd));
  attr.link_detach.link_fd = link_fd;
  return static_cast<int>(Bpf(BPF_LINK_DETACH, &attr, TETHER_ATTR_SIZE(link_detach.link_fd)));
}

absl::StatusOr<Fd> RawTracepointOpen(const char* name, int prog_fd) {
  union bpf_attr attr;
  memset(&attr, 0, TETHER_ATTR_SIZE(raw_tracepoint.prog_fd));
  attr.raw_tracepoint.name = Ptr(name);
  attr.raw_tracepoint.prog_fd = prog_fd;
  return BpfFd(BPF_RAW_TRACEPOINT_OPEN, &attr, TETHER_ATTR_SIZE(raw_tracepoint.prog_fd));
}

absl::StatusOr<Fd> IterCreate(int link_fd) {
  union bpf_attr attr;
  memset(&attr, 0, TETHER_ATTR_SIZE(iter_create.flags));
  attr.iter_create.link_fd = link_fd;
  return BpfFd(BPF_ITER_CREATE, &attr, TETHER_ATTR_SIZE(iter_create.flags));
}

// --- fault injection -------------------------------------------------------------

namespace testing {
void InjectFault(uint64_t nth, int err) {
  g_fault_calls.store(0);
  g_fault_nth.store(nth);
  g_fault_errno.store(err);
  g_fault_persistent.store(false);
  if (nth != 0) {
    g_hooks.fetch_or(kHookFault);
  } else {
    g_hooks.fetch_and(~kHookFault);
  }
}
void InjectPersistentFault(uint64_t nth, int err) {
  InjectFault(nth, err);
  g_fault_persistent.store(true);
}
void InjectProgLoadFault(uint64_t nth, int err) {
  g_prog_load_fault_calls.store(0);
  g_prog_load_fault_nth.store(nth);
  g_prog_load_fault_errno.store(err);
  if (nth != 0) {
    g_hooks.fetch_or(kHookProgLoadFault);
  } else {
    g_hooks.fetch_and(~kHookProgLoadFault);
  }
}

void ClearFault() {
  g_hooks.fetch_and(~kHookFault);
  g_fault_nth.store(0);
  g_fault_calls.store(0);
}
uint64_t CallCount() { return g_fault_calls.load(); }
void StartCounting() {
  g_fault_calls.store(0);
  g_fault_nth.store(0);
  g_hooks.fetch_or(kHookFault);
}
void RefuseMapType(uint32_t map_type, int err) { AddRefusal(BPF_MAP_CREATE, map_type, 0, err); }
void RefuseProgramType(uint32_t prog_type, uint32_t expected_attach_type, int err) {
  AddRefusal(BPF_PROG_LOAD, prog_type, expected_attach_type, err);
}
void ClearRefusals() {
  g_hooks.fetch_and(~kHookRefuse);
  for (Refusal& r : g_refusals) r.command.store(kUnusedSlot);
}
void RecordProgLoads(bool on) { g_record_prog_loads.store(on); }
std::vector<RecordedProgLoad> TakeRecordedProgLoads() {
  std::lock_guard<std::mutex> lock(g_recorded_mu);
  std::vector<RecordedProgLoad> out;
  if (g_recorded) out.swap(*g_recorded);
  return out;
}
}  // namespace testing

}  // namespace tether::sys
