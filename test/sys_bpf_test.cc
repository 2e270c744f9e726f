// The raw syscall layer: attr sizes, fd hygiene, retries and logs.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "sys/bpf.h"
#include "test_support.h"
#include "tether/insn.h"

using namespace tether;

namespace {

union bpf_attr ArrayAttr() {
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.map_type = BPF_MAP_TYPE_ARRAY;
  attr.key_size = 4;
  attr.value_size = 8;
  attr.max_entries = 4;
  return attr;
}

}  // namespace

TEST_CASE("bpf() accepts an attr smaller than the kernel's", "[sys]") {
  union bpf_attr attr = ArrayAttr();
  // Only up to max_entries: the kernel zero-fills the rest.
  unsigned size = offsetof(union bpf_attr, max_entries) + sizeof(attr.max_entries);
  long fd = sys::Bpf(BPF_MAP_CREATE, &attr, size);
  REQUIRE(fd >= 0);
  close(static_cast<int>(fd));
}

TEST_CASE("bpf() accepts a larger attr with a zero tail and refuses a dirty tail", "[sys]") {
  std::vector<uint8_t> big(sizeof(union bpf_attr) + 64, 0);
  union bpf_attr attr = ArrayAttr();
  memcpy(big.data(), &attr, sizeof(attr));
  long fd = sys::Bpf(BPF_MAP_CREATE, reinterpret_cast<union bpf_attr*>(big.data()),
                     static_cast<unsigned>(big.size()));
  REQUIRE(fd >= 0);
  close(static_cast<int>(fd));
  big.back() = 1;  // beyond this kernel's attr: must be refused, not ignored
  long bad = sys::Bpf(BPF_MAP_CREATE, reinterpret_cast<union bpf_attr*>(big.data()),
                      static_cast<unsigned>(big.size()));
  CHECK(bad == -E2BIG);
}

TEST_CASE("new fds are O_CLOEXEC and never 0", "[sys]") {
  int saved_stdin = dup(0);
  REQUIRE(saved_stdin >= 0);
  close(0);  // the kernel would now hand out fd 0
  sys::MapCreateRequest req;
  req.type = BPF_MAP_TYPE_ARRAY;
  req.key_size = 4;
  req.value_size = 4;
  req.max_entries = 1;
  auto fd = sys::MapCreate(req);
  dup2(saved_stdin, 0);
  close(saved_stdin);
  REQUIRE(fd.ok());
  CHECK(fd->get() > 2);
  int flags = fcntl(fd->get(), F_GETFD);
  CHECK((flags & FD_CLOEXEC) != 0);
}

TEST_CASE("an injected EINTR is retried transparently", "[sys][faults]") {
  sys::MapCreateRequest req;
  req.type = BPF_MAP_TYPE_ARRAY;
  req.key_size = 4;
  req.value_size = 4;
  req.max_entries = 1;
  sys::testing::InjectFault(1, EINTR);
  auto fd = sys::MapCreate(req);
  sys::testing::ClearFault();
  CHECK(fd.ok());
}

TEST_CASE("an injected errno comes back as a Status naming the command", "[sys][faults]") {
  sys::MapCreateRequest req;
  req.type = BPF_MAP_TYPE_ARRAY;
  req.key_size = 4;
  req.value_size = 4;
  req.max_entries = 1;
  sys::testing::InjectFault(1, ENOMEM);
  auto fd = sys::MapCreate(req);
  sys::testing::ClearFault();
  REQUIRE_FALSE(fd.ok());
  CHECK(fd.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK_THAT(std::string(fd.status().message()), Catch::Contains("BPF_MAP_CREATE") &&
                                                     Catch::Contains("ENOMEM"));
  CHECK(sys::StatusErrno(fd.status()) == ENOMEM);
}

TEST_CASE("PROG_LOAD retries EAGAIN a bounded number of times", "[sys][faults]") {
  bpf_insn prog[] = {insn::MovImm(BPF_REG_0, 0), insn::Exit()};
  sys::ProgLoadRequest req;
  req.type = BPF_PROG_TYPE_SOCKET_FILTER;
  req.insns = prog;
  req.name = "eagain";
  sys::testing::InjectFault(1, EAGAIN);  // one EAGAIN, then the real call
  auto ok = sys::ProgLoad(req);
  sys::testing::ClearFault();
  CHECK(ok.ok());

  sys::testing::InjectPersistentFault(1, EAGAIN);  // never stops: must give up
  auto bad = sys::ProgLoad(req);
  uint64_t calls = sys::testing::CallCount();
  sys::testing::ClearFault();
  REQUIRE_FALSE(bad.ok());
  CHECK(sys::StatusErrno(bad.status()) == EAGAIN);
  CHECK(calls >= 5);
  CHECK(calls <= 20);
}

TEST_CASE("a rejected program's Status carries the verifier log", "[sys]") {
  bpf_insn prog[] = {insn::Exit()};  // r0 never written
  sys::ProgLoadRequest req;
  req.type = BPF_PROG_TYPE_SOCKET_FILTER;
  req.insns = prog;
  req.name = "bad_exit";
  auto res = sys::ProgLoad(req);
  REQUIRE_FALSE(res.ok());
  std::string msg(res.status().message());
  CHECK_THAT(msg, Catch::Contains("bad_exit") && Catch::Contains("BPF_PROG_LOAD") &&
                      Catch::Contains("EACCES") && Catch::Contains("verifier log") &&
                      Catch::Contains("R0 !read_ok"));
}

TEST_CASE("the verifier log buffer grows until the log fits", "[sys]") {
  // A long straight-line program at log level 2 overflows the first buffer.
  std::vector<bpf_insn> prog;
  for (int i = 0; i < 3000; ++i) prog.push_back(insn::MovImm(BPF_REG_0, i));
  prog.push_back(insn::Exit());
  sys::ProgLoadRequest req;
  req.type = BPF_PROG_TYPE_SOCKET_FILTER;
  req.insns = prog;
  req.name = "long_log";
  req.log_level = 2;
  auto res = sys::ProgLoad(req);
  REQUIRE(res.ok());
  CHECK(res->log.size() > 64 * 1024);
  CHECK_THAT(res->log, Catch::Contains("processed"));
}

TEST_CASE("ids walk and info by fd agree", "[sys]") {
  sys::MapCreateRequest req;
  req.type = BPF_MAP_TYPE_HASH;
  req.key_size = 8;
  req.value_size = 16;
  req.max_entries = 7;
  req.name = "walk_me";
  auto fd = sys::MapCreate(req);
  REQUIRE(fd.ok());
  auto info = sys::GetMapInfo(fd->get());
  REQUIRE(info.ok());
  CHECK(std::string(info->name) == "walk_me");
  CHECK(info->max_entries == 7);
  bool seen = false;
  uint32_t id = 0;
  while (sys::GetNextId(sys::ObjectKind::kMap, id, &id) == 0) {
    if (id == info->id) seen = true;
  }
  CHECK(seen);
  auto again = sys::GetFdById(sys::ObjectKind::kMap, info->id);
  REQUIRE(again.ok());
  CHECK(sys::GetMapInfo(again->get())->id == info->id);
}

TEST_CASE("the fault hook refuses exactly the map and program types it is told to", "[sys][refusal]") {
  auto make = [](uint32_t type) {
    sys::MapCreateRequest r;
    r.type = type;
    r.key_size = 4;
    r.value_size = 4;
    r.max_entries = 1;
    return sys::MapCreate(r);
  };
  bpf_insn prog[] = {insn::MovImm(BPF_REG_0, 0), insn::Exit()};
  auto load = [&](uint32_t type) {
    sys::ProgLoadRequest req;
    req.type = type;
    req.insns = prog;
    return sys::ProgLoad(req);
  };
  // Two rules of different commands: both hold (BPF_MAP_CREATE is command 0).
  sys::testing::RefuseMapType(BPF_MAP_TYPE_HASH, EPERM);
  sys::testing::RefuseProgramType(BPF_PROG_TYPE_SOCKET_FILTER, sys::testing::kAnyAttachType, EACCES);
  auto hash = make(BPF_MAP_TYPE_HASH);
  auto array = make(BPF_MAP_TYPE_ARRAY);
  auto filter = load(BPF_PROG_TYPE_SOCKET_FILTER);
  auto xdp = load(BPF_PROG_TYPE_XDP);
  sys::testing::ClearRefusals();
  REQUIRE_FALSE(hash.ok());
  CHECK(sys::StatusErrno(hash.status()) == EPERM);
  CHECK(array.ok());
  REQUIRE_FALSE(filter.ok());
  CHECK(sys::StatusErrno(filter.status()) == EACCES);
  CHECK(xdp.ok());
  // Cleared: the kernel answers again.
  CHECK(make(BPF_MAP_TYPE_HASH).ok());
  CHECK(load(BPF_PROG_TYPE_SOCKET_FILTER).ok());
}
