// The errno -> absl::StatusCode table (sys::StatusCodeForErrno), first as a
// table, then through the public API with the kernel producing each errno.
#include <cerrno>
#include <string>

#include "map_test_support.h"
#include "sys/bpf.h"
#include "sys/uapi_compat.h"
#include "tether/map.h"
#include "tether/program.h"
#include "tether/insn.h"

using namespace tether;
using namespace tether::testing;

TEST_CASE("every errno has the code the table in docs/api.md gives", "[sys][errors]") {
  struct Row { int err; absl::StatusCode code; };
  const Row rows[] = {
      {E2BIG, absl::StatusCode::kResourceExhausted},
      {ENOMEM, absl::StatusCode::kResourceExhausted},
      {ENOSPC, absl::StatusCode::kResourceExhausted},
      {ENOENT, absl::StatusCode::kNotFound},
      {EEXIST, absl::StatusCode::kAlreadyExists},
      {EPERM, absl::StatusCode::kPermissionDenied},
      {EACCES, absl::StatusCode::kPermissionDenied},
      {EOPNOTSUPP, absl::StatusCode::kUnimplemented},
      {ENOSYS, absl::StatusCode::kUnimplemented},
      {sys::uapi::kEnotsupp, absl::StatusCode::kUnimplemented},
      {EINVAL, absl::StatusCode::kInvalidArgument},
      {EBUSY, absl::StatusCode::kUnavailable},
      {EAGAIN, absl::StatusCode::kUnavailable},
      {EINTR, absl::StatusCode::kUnavailable},
      {EBADF, absl::StatusCode::kFailedPrecondition},
      {4095, absl::StatusCode::kUnknown},
  };
  for (const Row& row : rows) {
    INFO(sys::ErrnoName(row.err));
    CHECK(sys::StatusCodeForErrno(row.err) == row.code);
    absl::Status st = sys::ErrnoStatus(row.err, "map 'x'", "op");
    CHECK(st.code() == row.code);
    CHECK(sys::StatusErrno(st) == row.err);
  }
}

TEST_CASE("the kernel's errnos arrive as the codes a caller tests for", "[map][errors]") {
  Map m = MustCreate(BPF_MAP_TYPE_HASH, 4, 8, 2, 0, "errno_codes");
  uint64_t v = 0;

  // ENOENT: a missing key.
  absl::Status missing = m.Lookup(uint32_t{7}, &v);
  CHECK(absl::IsNotFound(missing));
  CHECK_THAT(std::string(missing.message()), Catch::Contains("ENOENT"));
  CHECK(absl::IsNotFound(m.Delete(uint32_t{7})));
  CHECK(absl::IsNotFound(m.Update(uint32_t{7}, uint64_t{1}, UpdateFlag::kExist)));

  // EEXIST: BPF_NOEXIST on a key that is there.
  REQUIRE_OK(m.Update(uint32_t{1}, uint64_t{1}));
  absl::Status exists = m.Update(uint32_t{1}, uint64_t{2}, UpdateFlag::kNoExist);
  CHECK(absl::IsAlreadyExists(exists));
  CHECK_THAT(std::string(exists.message()), Catch::Contains("EEXIST"));

  // E2BIG: a full hash map refuses a new key.
  REQUIRE_OK(m.Update(uint32_t{2}, uint64_t{2}));
  absl::Status full = m.Update(uint32_t{3}, uint64_t{3});
  CHECK(absl::IsResourceExhausted(full));
  CHECK_THAT(std::string(full.message()), Catch::Contains("E2BIG") && Catch::Contains("errno_codes"));

  // EINVAL: flag bits the kernel does not know.
  CHECK(absl::IsInvalidArgument(m.Update(uint32_t{1}, uint64_t{1}, static_cast<UpdateFlag>(1u << 10))));

  // EPERM: a write to a frozen map.
  Map frozen = MustCreate(BPF_MAP_TYPE_ARRAY, 4, 4, 1, 0, "errno_frozen");
  REQUIRE_OK(frozen.Freeze());
  absl::Status refused = frozen.Update(uint32_t{0}, uint32_t{1});
  CHECK(absl::IsPermissionDenied(refused));
  CHECK_THAT(std::string(refused.message()), Catch::Contains("EPERM"));

  // ENOTSUPP (524) or EOPNOTSUPP: an array has no delete.
  Map array = MustCreate(BPF_MAP_TYPE_ARRAY, 4, 4, 1, 0, "errno_array");
  absl::Status no_delete = array.Delete(uint32_t{0});
  CHECK(absl::IsInvalidArgument(no_delete));  // the kernel says EINVAL here
  Map rb = MustCreate(BPF_MAP_TYPE_RINGBUF, 0, 0, 4096, 0, "errno_rb");
  absl::Status no_lookup = rb.Lookup(absl::Span<const uint8_t>(), absl::Span<uint8_t>());
  INFO(no_lookup.ToString());
  CHECK(absl::IsUnimplemented(no_lookup));
}

TEST_CASE("E2BIG from a program over the instruction limit is ResourceExhausted", "[program][errors]") {
  // BPF_COMPLEXITY_LIMIT_INSNS is 1M instructions; the kernel counts them
  // before it reads any, and says E2BIG.
  std::vector<bpf_insn> insns(1000001, insn::Exit());
  ProgramLoadOptions o;
  o.type = BPF_PROG_TYPE_SOCKET_FILTER;
  o.instructions = insns;
  o.name = "errno_toolong";
  auto p = Program::Load(o);
  INFO(p.status().ToString());
  CHECK(absl::IsResourceExhausted(p.status()));
  CHECK_THAT(std::string(p.status().message()), Catch::Contains("E2BIG"));
}
