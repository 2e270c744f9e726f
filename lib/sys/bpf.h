// The raw bpf(2) layer. Internal: nothing under include/ exposes it.
//
// Every command tether issues goes through Bpf(), so retries, fd hygiene
// and the test-only fault hook live in exactly one place. The typed
// wrappers fill only the attr fields that their command reads and pass the
// size up to the last of them, so the same binary runs on kernels whose
// union bpf_attr is smaller or larger than the header it was built with.
#ifndef TETHER_LIB_SYS_BPF_H_
#define TETHER_LIB_SYS_BPF_H_

#include <linux/bpf.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "sys/uapi_compat.h"

namespace tether::sys {

// Owns one file descriptor. Move-only; closes on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) Reset(std::exchange(other.fd_, -1));
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Issues bpf(cmd, attr, size). Returns the result (>= 0) or -errno.
// EINTR is retried here. The fault hook (below) is consulted first.
long Bpf(int cmd, union bpf_attr* attr, unsigned int size);

// Commands that return a new fd go through here: it rejects fd 0, which the
// UAPI reads as "no fd", by moving it above stderr, and checks O_CLOEXEC.
absl::StatusOr<Fd> BpfFd(int cmd, union bpf_attr* attr, unsigned int size);

// Name of a bpf command, for error messages ("BPF_MAP_CREATE").
absl::string_view CommandName(int cmd);

// The one errno -> absl::StatusCode table of the library (docs/api.md):
// E2BIG, ENOMEM, ENOSPC -> ResourceExhausted; ENOENT -> NotFound; EEXIST ->
// AlreadyExists; EPERM, EACCES -> PermissionDenied; EOPNOTSUPP, ENOSYS,
// ENOTSUPP (524) -> Unimplemented; EINVAL -> InvalidArgument; EBUSY,
// EAGAIN, EINTR -> Unavailable (worth a retry); any other errno as
// absl::ErrnoToStatusCode, Unknown for one it does not know.
absl::StatusCode StatusCodeForErrno(int err);
// Builds a Status from an errno: "<what>: <op>: EPERM (Operation not permitted)",
// with the code StatusCodeForErrno gives and the errno as a payload.
absl::Status ErrnoStatus(int err, absl::string_view what, absl::string_view op);
// Errno symbol ("ENOENT"), with the kernel-internal ENOTSUPP (524) handled.
absl::string_view ErrnoName(int err);
// The errno recorded in a Status made by ErrnoStatus, or 0.
int StatusErrno(const absl::Status& status);
// The kernel's policy refused the call (a lockdown, LSM, seccomp or
// capability rule), rather than the object: EPERM, or EACCES without the
// verifier log that ProgLoad attaches when the verifier rejects a program.
bool IsPolicyRefusal(const absl::Status& status);

// --- maps ---------------------------------------------------------------

struct MapCreateRequest {
  uint32_t type = 0;
  uint32_t key_size = 0;
  uint32_t value_size = 0;
  uint32_t max_entries = 0;
  uint32_t flags = 0;
  int inner_map_fd = -1;
  uint32_t numa_node = 0;  // used only with BPF_F_NUMA_NODE
  absl::string_view name;  // truncated to BPF_OBJ_NAME_LEN - 1
  uint32_t ifindex = 0;
  int btf_fd = -1;
  uint32_t btf_key_type_id = 0;
  uint32_t btf_value_type_id = 0;
  uint32_t btf_vmlinux_value_type_id = 0;
  uint64_t map_extra = 0;
};
absl::StatusOr<Fd> MapCreate(const MapCreateRequest& req);

// Element operations return 0 or -errno, and never allocate: they are the
// hot path under Map's typed accessors.
int MapLookupElem(int fd, const void* key, void* value, uint64_t flags);
int MapUpdateElem(int fd, const void* key, const void* value, uint64_t flags);
int MapDeleteElem(int fd, const void* key);
int MapGetNextKey(int fd, const void* key, void* next_key);
int MapLookupAndDeleteElem(int fd, const void* key, void* value, uint64_t flags);
int MapFreeze(int fd);

// Batch ops: *count is in/out. in_batch == nullptr starts from the beginning.
struct BatchArgs {
  const void* in_batch = nullptr;
  void* out_batch = nullptr;
  void* keys = nullptr;
  void* values = nullptr;
  uint32_t* count = nullptr;
  uint64_t elem_flags = 0;
  uint64_t flags = 0;
};
int MapLookupBatch(int fd, const BatchArgs& args);
int MapLookupAndDeleteBatch(int fd, const BatchArgs& args);
int MapUpdateBatch(int fd, const BatchArgs& args);
int MapDeleteBatch(int fd, const BatchArgs& args);

// --- programs -------------------------------------------------------------

struct ProgLoadRequest {
  uint32_t type = 0;
  absl::Span<const bpf_insn> insns;
  absl::string_view license = "GPL";
  absl::string_view name;
  uint32_t expected_attach_type = 0;
  uint32_t prog_flags = 0;
  uint32_t kern_version = 0;
  int prog_btf_fd = -1;
  const void* func_info = nullptr;
  uint32_t func_info_rec_size = 0;
  uint32_t func_info_cnt = 0;
  const void* line_info = nullptr;
  uint32_t line_info_rec_size = 0;
  uint32_t line_info_cnt = 0;
  uint32_t attach_btf_id = 0;
  int attach_prog_fd = -1;     // for freplace / fentry on BPF programs
  int attach_btf_obj_fd = -1;  // for module BTF targets
  // BTF fds that kfunc calls name by index (insn.off); index 0 is never
  // read, since off 0 means vmlinux.
  absl::Span<const int> fd_array;
  // 0: load without a log and retry with level 1 only on failure.
  // >0: always load with this log level and keep the log.
  uint32_t log_level = 0;
  uint32_t log_size_cap = 16u << 20;
};

struct ProgLoadResult {
  Fd fd;
  std::string log;  // filled when a log was requested
};

// Loads a program. On failure the Status carries the tail of the verifier
// log. EAGAIN (the verifier's "try again" under memory pressure) is retried
// a bounded number of times.
absl::StatusOr<ProgLoadResult> ProgLoad(const ProgLoadRequest& req);

struct TestRunRequest {
  int prog_fd = -1;
  absl::Span<const uint8_t> data_in;
  absl::Span<uint8_t> data_out;  // may be empty
  absl::Span<const uint8_t> ctx_in;
  absl::Span<uint8_t> ctx_out;
  uint32_t repeat = 1;
  uint32_t flags = 0;
  uint32_t cpu = 0;
  uint32_t batch_size = 0;
};
struct TestRunResult {
  uint32_t retval = 0;
  uint32_t data_size_out = 0;
  uint32_t ctx_size_out = 0;
  uint32_t duration_ns = 0;
};
// Returns 0 or -errno, filling *out.
int ProgTestRun(const TestRunRequest& req, TestRunResult* out);

int ProgAttach(int target_fd, int prog_fd, uint32_t attach_type, uint32_t flags,
               int replace_prog_fd = -1);
int ProgDetach(int target_fd, int prog_fd, uint32_t attach_type);
// The programs attached directly to a target (a cgroup fd, or an ifindex
// for tcx) at attach_type, in order: BPF_PROG_QUERY without
// BPF_F_QUERY_EFFECTIVE. Returns 0 or -errno; *ids is resized to the count.
int ProgQuery(int target, uint32_t attach_type, std::vector<uint32_t>* ids);

// --- objects, ids, info -----------------------------------------------------

int ObjPin(int fd, const char* path);
absl::StatusOr<Fd> ObjGet(const char* path, uint32_t file_flags = 0);

enum class ObjectKind { kProgram, kMap, kLink, kBtf };
absl::string_view ObjectKindName(ObjectKind kind);
// Next id after start_id, or -ENOENT at the end.
int GetNextId(ObjectKind kind, uint32_t start_id, uint32_t* next_id);
absl::StatusOr<Fd> GetFdById(ObjectKind kind, uint32_t id);
// Fills info (of info_len bytes, zeroed by the caller where it matters).
int ObjGetInfoByFd(int fd, void* info, uint32_t* info_len);

absl::StatusOr<bpf_map_info> GetMapInfo(int fd);
absl::StatusOr<bpf_prog_info> GetProgInfo(int fd);
// The program's code as the kernel keeps it after the verifier (map
// references as map ids), for a program whose xlated_prog_len is
// `xlated_len`. PermissionDenied when the kernel hides it (no
// CAP_SYS_ADMIN, or a lockdown).
absl::StatusOr<std::vector<bpf_insn>> GetTranslatedCode(int prog_fd, uint32_t xlated_len);
// GetProgInfo and the ids of the maps the program uses, in one syscall
// when it uses at most 16 maps.
absl::StatusOr<bpf_prog_info> GetProgInfoAndMapIds(int fd, std::vector<uint32_t>* ids);
absl::StatusOr<bpf_link_info> GetLinkInfo(int fd);
// The tracepoint a raw tracepoint link is attached to ("sys_enter"); the
// kernel copies it out only into a buffer the caller provides.
absl::StatusOr<std::string> GetRawTracepointLinkName(int fd);
// The ids of the maps a loaded program uses, from the kernel.
absl::Status GetProgMapIds(int fd, std::vector<uint32_t>* ids);

// What BPF_OBJ_GET_INFO_BY_FD says about a BTF object.
struct BtfObjectInfo {
  uint32_t id = 0;
  std::string name;         // "vmlinux", a module's name, or "" for a program's BTF
  bool kernel_btf = false;  // vmlinux or a module's (5.11+)
  uint32_t btf_size = 0;    // bytes of its raw BTF
};
// With `data`, also copies the raw BTF out (module BTF: split over vmlinux).
absl::StatusOr<BtfObjectInfo> GetBtfInfo(int fd, std::vector<uint8_t>* data = nullptr);

struct BtfLoadResult {
  Fd fd;
  std::string log;
};
absl::StatusOr<BtfLoadResult> BtfLoad(absl::Span<const uint8_t> btf,
                                      uint32_t log_level = 0);

// --- links -------------------------------------------------------------

struct LinkCreateRequest {
  int prog_fd = -1;
  int target_fd = -1;  // or ifindex, per attach type
  uint32_t attach_type = 0;
  uint32_t flags = 0;
  uint32_t target_btf_id = 0;
  // Attach-type specific tail of link_create, copied verbatim. It must fit
  // in the union that follows the flags field.
  const void* extra = nullptr;
  uint32_t extra_size = 0;
};
absl::StatusOr<Fd> LinkCreate(const LinkCreateRequest& req);
int LinkUpdate(int link_fd, int new_prog_fd, uint32_t flags, int old_prog_fd);
int LinkDetach(int link_fd);
absl::StatusOr<Fd> RawTracepointOpen(const char* name, int prog_fd);
absl::StatusOr<Fd> IterCreate(int link_fd);

// --- test-only fault injection -------------------------------------------
namespace testing {
// Fails the nth bpf() call from now on (1-based) with err, before it
// reaches the kernel, once. nth == 0 disarms. While armed, calls are counted.
void InjectFault(uint64_t nth, int err);
// Like InjectFault, but every call from the nth on fails.
void InjectPersistentFault(uint64_t nth, int err);
void ClearFault();
// Calls seen since the last InjectFault/ClearFault/StartCounting.
uint64_t CallCount();
// Counts calls without failing any.
void StartCounting();
// Fails the nth BPF_PROG_LOAD from now on (1-based) with err, once;
// other commands are neither failed nor counted. nth == 0 disarms.
// Independent of InjectFault.
void InjectProgLoadFault(uint64_t nth, int err);

// A kernel that refuses a feature it has, as a hardening policy, an LSM or
// a seccomp rule would: every BPF_MAP_CREATE of `map_type` fails with
// `err` (EPERM, say) before it reaches the kernel, until ClearRefusals().
// Independent of InjectFault, and not counted by it.
void RefuseMapType(uint32_t map_type, int err);
// Likewise for BPF_PROG_LOAD of `prog_type` with `expected_attach_type`,
// or with any attach type when it is kAnyAttachType.
constexpr uint32_t kAnyAttachType = ~0u;
void RefuseProgramType(uint32_t prog_type, uint32_t expected_attach_type, int err);
void ClearRefusals();

// What one BPF_PROG_LOAD was given, for tests of the loader's patching.
struct RecordedProgLoad {
  std::string name;
  std::vector<bpf_insn> insns;
  std::vector<int> fd_array;
  // BTF object id behind each fd_array entry (0 where it is no BTF fd),
  // read when the load is issued: the fds are closed by the time a test looks.
  std::vector<uint32_t> fd_array_btf_ids;
};
// While on, every ProgLoad is recorded (outside the fault hook's count).
void RecordProgLoads(bool on);
std::vector<RecordedProgLoad> TakeRecordedProgLoads();
}  // namespace testing

}  // namespace tether::sys

#endif  // TETHER_LIB_SYS_BPF_H_
