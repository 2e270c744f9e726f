// Program: a cheap, copyable handle to one loaded BPF program.
#ifndef TETHER_PROGRAM_H_
#define TETHER_PROGRAM_H_

#include <linux/bpf.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "tether/handle.h"
#include "tether/ref_counted.h"

namespace tether {

// Kernel facts about a program, read once after load or adoption.
struct ProgramInfo {
  uint32_t id = 0;
  uint32_t type = BPF_PROG_TYPE_UNSPEC;
  std::string name;
  std::array<uint8_t, BPF_TAG_SIZE> tag{};
  uint32_t btf_id = 0;
  // The maps the program uses, as the kernel reports them (map_ids).
  std::vector<uint32_t> map_ids;
};

const char* ProgramTypeName(uint32_t type);

struct ProgramLoadOptions {
  uint32_t type = BPF_PROG_TYPE_UNSPEC;
  absl::Span<const bpf_insn> instructions;
  std::string name;
  std::string license = "GPL";
  uint32_t expected_attach_type = 0;
  uint32_t flags = 0;  // BPF_F_SLEEPABLE, BPF_F_XDP_HAS_FRAGS...
  uint32_t kernel_version = 0;
  uint32_t attach_btf_id = 0;
  int attach_prog_fd = -1;
  int attach_btf_obj_fd = -1;
  // BTF fds of kernel modules, for kfunc calls into them: a call's `off`
  // is an index here and its `imm` a type id in that BTF. off 0 means
  // vmlinux, so entry 0 is never read. The kernel takes its own reference
  // during the load; the fds may be closed once Load returns.
  absl::Span<const int> fd_array;
  // BTF for func_info / line_info (records in the kernel's layout).
  int btf_fd = -1;
  absl::Span<const uint8_t> func_info;
  uint32_t func_info_rec_size = 0;
  absl::Span<const uint8_t> line_info;
  uint32_t line_info_rec_size = 0;
  // 0: load without a log, and only on failure retry with level 1 so that
  // the error carries the verifier's explanation. >0: always log.
  uint32_t log_level = 0;
  uint32_t log_size_cap = 16u << 20;
  // Receives the verifier log when log_level > 0.
  std::string* log = nullptr;
};

struct RunOptions {
  absl::Span<const uint8_t> data;     // packet, for networking programs
  absl::Span<const uint8_t> context;  // ctx_in, e.g. a struct __sk_buff
  // Room for the data the program leaves behind. 0: as large as `data`
  // plus headroom the kernel may add (XDP can grow a packet).
  size_t data_out_capacity = 0;
  // Raw tracepoint and syscall programs run once whatever this says (the
  // kernel takes no count for them); more than 1 is refused.
  uint32_t repeat = 1;
  uint32_t flags = 0;
  uint32_t cpu = 0;
};

struct RunResult {
  uint32_t return_value = 0;
  std::vector<uint8_t> data_out;
  // Mean duration of one run, as the kernel measured it.
  std::chrono::nanoseconds duration{0};
};

namespace detail {

class ProgramObject : public RefCounted<ProgramObject> {
 public:
  ProgramObject(int fd, ProgramInfo info);
  ~ProgramObject();
  int fd() const { return fd_; }
  const ProgramInfo& info() const { return info_; }

 private:
  int fd_;
  ProgramInfo info_;
};

}  // namespace detail

class Program : public detail::HandleBase<Program, detail::ProgramObject> {
 public:
  Program() = default;

  // Loads raw instructions. On failure the Status names the program and
  // carries the tail of the verifier log.
  static absl::StatusOr<Program> Load(const ProgramLoadOptions& options);
  static absl::StatusOr<Program> FromFd(int fd);
  static absl::StatusOr<Program> FromId(uint32_t id);
  static absl::StatusOr<Program> LoadPinned(const std::string& path);
  absl::StatusOr<Program> Clone() const;

  // "" on an empty handle (see the contract in handle.h); Run, Pin, Unpin
  // and Clone return FailedPrecondition "program: <op>: the handle is
  // empty", PinPath() "", and the legacy-hook notes do nothing.
  const std::string& name() const { return info().name; }

  // BPF_PROG_TEST_RUN.
  absl::StatusOr<RunResult> Run(const RunOptions& options = {}) const;
  // Allocation-free form: data out goes to `data_out`, its size to
  // *data_out_size.
  absl::StatusOr<uint32_t> Run(const RunOptions& options, absl::Span<uint8_t> data_out,
                               size_t* data_out_size,
                               std::chrono::nanoseconds* duration = nullptr) const;

  absl::Status Pin(const std::string& path) const;
  absl::Status Unpin() const;
  std::string PinPath() const;

  // Records a legacy attachment (SO_ATTACH_BPF, netlink XDP, PROG_ATTACH)
  // in the graph: it holds the program until detached, cannot be pinned,
  // and outlives the process.
  void NoteLegacyHook(const std::string& description) const;
  void ForgetLegacyHook(const std::string& description) const;

 private:
  explicit Program(RefPtr<detail::ProgramObject> obj) : HandleBase(std::move(obj)) {}
  static absl::StatusOr<Program> Adopt(int fd, absl::string_view how);
};

}  // namespace tether

template <>
struct std::hash<tether::Program> {
  size_t operator()(const tether::Program& p) const noexcept {
    return std::hash<const void*>()(p.object());
  }
};

#endif  // TETHER_PROGRAM_H_
