#include "tether/program.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "graph/graph_internal.h"
#include "handles/pin_internal.h"
#include "sys/bpf.h"
#include "sys/uapi_names.h"
#include "tether/graph.h"
#include "tether/pin.h"

namespace tether {

const char* ProgramTypeName(uint32_t type) { return sys::ProgramTypeName(type); }

namespace {

std::string Describe(const ProgramInfo& info) {
  return absl::StrFormat("program '%s' (id %u)", info.name, info.id);
}

absl::StatusOr<ProgramInfo> ReadInfo(int fd) {
  ProgramInfo info;
  auto k = sys::GetProgInfoAndMapIds(fd, &info.map_ids);
  if (!k.ok()) return k.status();
  info.id = k->id;
  info.type = k->type;
  info.name = std::string(k->name, strnlen(k->name, sizeof(k->name)));
  memcpy(info.tag.data(), k->tag, BPF_TAG_SIZE);
  info.btf_id = k->btf_id;
  return info;
}

// ReadInfo, with the program named for an error by `how()`: a load names
// the program it just made, and that text is only built when it is needed.
template <typename How>
absl::StatusOr<ProgramInfo> ReadInfoOf(int fd, const How& how) {
  auto info = ReadInfo(fd);
  if (!info.ok()) {
    return sys::ErrnoStatus(sys::StatusErrno(info.status()), absl::StrCat("program ", how()),
                            "BPF_OBJ_GET_INFO_BY_FD");
  }
  return info;
}

}  // namespace

namespace detail {

ProgramObject::ProgramObject(int fd, ProgramInfo info) : fd_(fd), info_(std::move(info)) {
  GraphOnProgramCreated(info_.id, info_.name, info_.type, info_.map_ids);
}

ProgramObject::~ProgramObject() {
  GraphOnProgramReleased(info_.id);
  if (fd_ >= 0) close(fd_);
}

}  // namespace detail

absl::StatusOr<Program> Program::Adopt(int raw_fd, absl::string_view how) {
  sys::Fd fd(raw_fd);
  auto info = ReadInfoOf(fd.get(), [how] { return how; });
  if (!info.ok()) return info.status();
  return Program(RefPtr<detail::ProgramObject>(
      new detail::ProgramObject(fd.Release(), std::move(*info))));
}

absl::StatusOr<Program> Program::Load(const ProgramLoadOptions& o) {
  if (o.instructions.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("program '", o.name, "': load: no instructions"));
  }
  if (o.name.size() >= BPF_OBJ_NAME_LEN) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "program '%s': load: name is %u bytes; the kernel allows at most %u", o.name,
        o.name.size(), BPF_OBJ_NAME_LEN - 1));
  }
  sys::ProgLoadRequest req;
  req.type = o.type;
  req.insns = o.instructions;
  req.license = o.license;
  req.name = o.name;
  req.expected_attach_type = o.expected_attach_type;
  req.prog_flags = o.flags;
  req.kern_version = o.kernel_version;
  req.attach_btf_id = o.attach_btf_id;
  req.attach_prog_fd = o.attach_prog_fd;
  req.attach_btf_obj_fd = o.attach_btf_obj_fd;
  req.fd_array = o.fd_array;
  req.prog_btf_fd = o.btf_fd;
  if (o.btf_fd >= 0) {
    req.func_info = o.func_info.data();
    req.func_info_rec_size = o.func_info_rec_size;
    req.func_info_cnt = o.func_info_rec_size ? o.func_info.size() / o.func_info_rec_size : 0;
    req.line_info = o.line_info.data();
    req.line_info_rec_size = o.line_info_rec_size;
    req.line_info_cnt = o.line_info_rec_size ? o.line_info.size() / o.line_info_rec_size : 0;
  }
  req.log_level = o.log_level;
  req.log_size_cap = o.log_size_cap;
  auto loaded = sys::ProgLoad(req);
  if (!loaded.ok()) {
    absl::Status st = loaded.status();
    if (o.type == BPF_PROG_TYPE_UNSPEC) {
      return absl::Status(st.code(), absl::StrCat(st.message(),
                                                  " (the program type is unspecified: set "
                                                  "ProgramLoadOptions::type)"));
    }
    return st;
  }
  if (o.log) *o.log = std::move(loaded->log);
  sys::Fd fd = std::move(loaded->fd);
  auto info = ReadInfoOf(fd.get(), [&o] { return absl::StrCat("'", o.name, "' (just loaded)"); });
  if (!info.ok()) return info.status();
  return Program(RefPtr<detail::ProgramObject>(
      new detail::ProgramObject(fd.Release(), std::move(*info))));
}

absl::StatusOr<Program> Program::FromFd(int fd) {
  if (fd < 0) return absl::InvalidArgumentError(absl::StrCat("program from fd ", fd, ": not an fd"));
  return Adopt(fd, absl::StrCat("from fd ", fd));
}

absl::StatusOr<Program> Program::FromId(uint32_t id) {
  auto fd = sys::GetFdById(sys::ObjectKind::kProgram, id);
  if (!fd.ok()) {
    return sys::ErrnoStatus(sys::StatusErrno(fd.status()), absl::StrCat("program id ", id),
                            "BPF_PROG_GET_FD_BY_ID");
  }
  return Adopt(fd->Release(), absl::StrCat("id ", id));
}

absl::StatusOr<Program> Program::LoadPinned(const std::string& path) {
  auto fd = detail::OpenPinned(path, "prog");
  if (!fd.ok()) return fd.status();
  auto prog = Adopt(fd->Release(), absl::StrCat("pinned at ", path));
  // The pin is a reference the graph should know, even if another process made it.
  if (prog.ok()) detail::GraphAddPin(NodeOf(*prog), path);
  return prog;
}

absl::StatusOr<Program> Program::Clone() const {
  if (!obj_) return absl::FailedPreconditionError("program: clone: the handle is empty");
  int dup = fcntl(obj_->fd(), F_DUPFD_CLOEXEC, 3);
  if (dup < 0) return sys::ErrnoStatus(errno, Describe(info()), "clone (dup)");
  return Adopt(dup, "clone");
}

absl::StatusOr<uint32_t> Program::Run(const RunOptions& o, absl::Span<uint8_t> data_out,
                                      size_t* data_out_size,
                                      std::chrono::nanoseconds* duration) const {
  if (!obj_) return absl::FailedPreconditionError("program: run: the handle is empty");
  sys::TestRunRequest req;
  req.prog_fd = obj_->fd();
  req.data_in = o.data;
  req.data_out = data_out;
  req.ctx_in = o.context;
  req.repeat = o.repeat;
  if (type() == BPF_PROG_TYPE_RAW_TRACEPOINT || type() == BPF_PROG_TYPE_SYSCALL) {
    // These run exactly once a test run, and the kernel refuses any repeat
    // count with EINVAL, 1 included.
    if (o.repeat > 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          Describe(info()), ": BPF_PROG_TEST_RUN: ", ProgramTypeName(type()),
          " programs run once a test run; repeat ", o.repeat, " is refused by the kernel"));
    }
    req.repeat = 0;
  }
  req.flags = o.flags;
  req.cpu = o.cpu;
  sys::TestRunResult result;
  int ret = sys::ProgTestRun(req, &result);
  if (ret < 0) {
    absl::Status st = sys::ErrnoStatus(-ret, Describe(info()), "BPF_PROG_TEST_RUN");
    if (ret == -ENOSPC) {
      return absl::Status(st.code(), absl::StrCat(st.message(), " (data_out is too small)"));
    }
    if (ret == -ENOTSUP || ret == -sys::uapi::kEnotsupp || ret == -EINVAL) {
      return absl::Status(st.code(),
                          absl::StrCat(st.message(), " (", ProgramTypeName(type()),
                                       " programs may not support test runs, or need data/context)"));
    }
    return st;
  }
  if (data_out_size) *data_out_size = result.data_size_out;
  if (duration) *duration = std::chrono::nanoseconds(result.duration_ns);
  return result.retval;
}

absl::StatusOr<RunResult> Program::Run(const RunOptions& o) const {
  RunResult out;
  // XDP may grow the packet by its headroom; leave room for that.
  size_t capacity = o.data_out_capacity ? o.data_out_capacity : (o.data.empty() ? 0 : o.data.size() + 256);
  out.data_out.resize(capacity);
  size_t size = 0;
  auto ret = Run(o, absl::MakeSpan(out.data_out), &size, &out.duration);
  if (!ret.ok()) return ret.status();
  out.return_value = *ret;
  out.data_out.resize(std::min(size, capacity));
  return out;
}

absl::Status Program::Pin(const std::string& path) const {
  if (!obj_) return absl::FailedPreconditionError("program: pin: the handle is empty");
  return detail::PinTracked(obj_->fd(), NodeOf(*this), Describe(info()), path);
}

absl::Status Program::Unpin() const {
  if (!obj_) return absl::FailedPreconditionError("program: unpin: the handle is empty");
  return detail::UnpinTracked(NodeOf(*this), Describe(info()));
}

NodeRef NodeOf(const Program& program) { return NodeRef{NodeKind::kProgram, program.id()}; }
Explanation ObjectGraph::Explain(const Program& program) const { return Explain(NodeOf(program)); }
std::vector<std::string> ObjectGraph::WhatBreaks(const Program& program) const {
  return WhatBreaks(NodeOf(program));
}

std::string Program::PinPath() const {
  if (!obj_) return "";
  return detail::GraphPinPathOf(NodeOf(*this));
}

void Program::NoteLegacyHook(const std::string& description) const {
  if (obj_) detail::GraphAddLegacyHook(NodeOf(*this), description);
}

void Program::ForgetLegacyHook(const std::string& description) const {
  if (obj_) detail::GraphRemoveLegacyHook(NodeOf(*this), description);
}

}  // namespace tether
