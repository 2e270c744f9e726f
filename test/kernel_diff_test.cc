// Behaviour that differs between the kernels CI runs on (the host's recent
// one and Debian's 6.1 in a VM). Each case checks the kernel it runs on
// against what the probes claim, so a wrong probe fails on one of them.
#include <fcntl.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <linux/btf.h>
#include <sys/utsname.h>
#include <net/if.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "sys/bpf.h"
#include "test_programs.h"
#include "test_support.h"
#include "tether/insn.h"
#include "tether/map.h"
#include "tether/attach.h"
#include "tether/probe.h"
#include "tether/program.h"

using namespace tether;

namespace {

// The running kernel is at least major.minor.
bool KernelAtLeast(int major, int minor) {
  int have_major = 0, have_minor = 0;
  if (sscanf(probe::KernelRelease().c_str(), "%d.%d", &have_major, &have_minor) != 2) return false;
  return have_major > major || (have_major == major && have_minor >= minor);
}

// Counts the CPUs in a sysfs list such as "0-3,6", read independently of
// the library's own parser.
uint32_t CountCpuList(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  std::getline(in, text);
  uint32_t count = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    std::string part = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    unsigned lo = 0, hi = 0;
    int n = sscanf(part.c_str(), "%u-%u", &lo, &hi);
    if (n == 1) hi = lo;
    if (n >= 1 && hi >= lo) count += hi - lo + 1;
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return count;
}

// A socket filter of about `n` instructions whose last one reads an
// uninitialised register: the verifier walks all of it, logging every
// instruction at level 1, and then refuses.
std::vector<bpf_insn> LongRefusedProgram(size_t n) {
  std::vector<bpf_insn> prog;
  prog.push_back(insn::MovImm(BPF_REG_0, 0));
  for (size_t i = 0; i < n; ++i) prog.push_back(insn::AddImm(BPF_REG_0, 1));
  prog.push_back(insn::LoadReg64(BPF_REG_0, BPF_REG_5, 0));
  prog.push_back(insn::Exit());
  return prog;
}

}  // namespace

// From the release that brought a feature on, a probe says "present" or,
// on a kernel whose policy forbids it, "refused here"; before it, "missing".
bool AgreesWithVersion(const absl::Status& st, bool at_least) {
  probe::Answer a = probe::AnswerOf(st);
  return at_least ? (a == probe::Answer::kPresent || a == probe::Answer::kRefused)
                  : a == probe::Answer::kMissing;
}

TEST_CASE("probes agree with the kernel version for version-bound features", "[kernel_diff][probe]") {
  INFO("kernel " << probe::KernelRelease());
  struct Case {
    absl::Status st;
    int major, minor;
  } cases[] = {
      {probe::HaveLogTrueSize(), 6, 4},
      {probe::HaveTokens(), 6, 9},
      {probe::HaveBatchOps(), 5, 6},
      {probe::HaveMapType(sys::uapi::kMapTypeCgrpStorage), 6, 2},
      {probe::HaveMapType(sys::uapi::kMapTypeArena), 6, 9},
      {probe::HaveProgramType(sys::uapi::kProgTypeNetfilter), 6, 4},
      {probe::HaveBtfKind(BTF_KIND_FLOAT), 5, 13},
      {probe::HaveBtfKind(BTF_KIND_DECL_TAG), 5, 16},
      {probe::HaveBtfKind(BTF_KIND_TYPE_TAG), 5, 17},
      {probe::HaveBtfKind(BTF_KIND_ENUM64), 6, 0},
      {probe::HaveBtfFuncLinkage(BTF_FUNC_GLOBAL), 5, 6},
      {probe::HaveIterator("bpf_map_elem"), 5, 9},
  };
  for (const Case& c : cases) {
    INFO(c.major << "." << c.minor << ": " << c.st.ToString());
    CHECK(AgreesWithVersion(c.st, KernelAtLeast(c.major, c.minor)));
  }
  // No kernel takes extern functions in program BTF: loaders rewrite them.
  CHECK(probe::HaveBtfFuncLinkage(BTF_FUNC_EXTERN).code() == absl::StatusCode::kUnimplemented);
  CHECK(probe::HaveBtfKind(0x7f).code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("a missing feature's probe names it and the release that brought it", "[kernel_diff][probe]") {
  struct Expect {
    absl::Status st;
    const char* feature;
    const char* since;
  };
  Expect cases[] = {
      {probe::HaveLogTrueSize(), "log_true_size", "6.4"},
      {probe::HaveTokens(), "BPF_TOKEN_CREATE", "6.9"},
      {probe::HaveBtfKind(BTF_KIND_ENUM64), "ENUM64", "6.0"},
      {probe::HaveBtfKind(BTF_KIND_DECL_TAG), "DECL_TAG", "5.16"},
      {probe::HaveMapType(sys::uapi::kMapTypeArena), "arena", "6.9"},
  };
  for (const auto& c : cases) {
    if (c.st.ok()) continue;
    INFO(c.st.ToString());
    // Missing or refused here; either way the message names the feature,
    // the release that brought it and this kernel. A refusal also names
    // the errno.
    CHECK(probe::Unusable(c.st));
    CHECK_THAT(std::string(c.st.message()), Catch::Contains(c.feature) && Catch::Contains(c.since) &&
                                                 Catch::Contains(probe::KernelRelease()));
    if (probe::AnswerOf(c.st) == probe::Answer::kRefused) {
      CHECK_THAT(std::string(c.st.message()),
                 Catch::Contains("refuses") && (Catch::Contains("EPERM") || Catch::Contains("EACCES")));
    }
  }
}

TEST_CASE("BPF_F_TOKEN_FD: unknown before 6.9, checked as a token from 6.9", "[kernel_diff]") {
  bpf_insn prog[] = {insn::MovImm(BPF_REG_0, 0), insn::Exit()};
  sys::uapi::AttrBuffer buf;
  memset(&buf, 0, sizeof(buf));
  buf.attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
  buf.attr.insn_cnt = 2;
  buf.attr.insns = reinterpret_cast<uintptr_t>(prog);
  buf.attr.license = reinterpret_cast<uintptr_t>("GPL");
  buf.attr.prog_flags = sys::uapi::kFlagTokenFd;
  int32_t bad_token = -1;
  memcpy(buf.bytes + sys::uapi::kProgLoadTokenFdOffset, &bad_token, sizeof(bad_token));
  long ret = sys::Bpf(BPF_PROG_LOAD, &buf.attr, sys::uapi::kProgLoadTokenFdOffset + sizeof(int32_t));
  if (ret >= 0) close(static_cast<int>(ret));
  REQUIRE(ret < 0);
  if (probe::HaveTokens().ok()) {
    // The flag is known, so the kernel looks up fd -1 as a token.
    CHECK(ret == -EBADF);
    // A token in the initial user namespace is pointless, and refused.
    int bpffs = open("/sys/fs/bpf", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(bpffs >= 0);
    memset(&buf, 0, sizeof(buf));
    uint32_t words[2] = {0, static_cast<uint32_t>(bpffs)};
    memcpy(buf.bytes, words, sizeof(words));
    long tok = sys::Bpf(sys::uapi::kCmdTokenCreate, &buf.attr, sys::uapi::kTokenCreateSize);
    if (tok >= 0) close(static_cast<int>(tok));
    close(bpffs);
    CHECK(tok < 0);
    CHECK(tok != -EINVAL);
  } else {
    // The kernel's union bpf_attr ends before prog_token_fd, and it
    // refuses a non-zero byte past its end.
    CHECK(ret == -E2BIG);
    // Without the field, the flag itself is unknown to it.
    long flag_only = sys::Bpf(BPF_PROG_LOAD, &buf.attr, sys::uapi::kProgLoadTokenFdOffset);
    if (flag_only >= 0) close(static_cast<int>(flag_only));
    CHECK(flag_only == -EINVAL);
    CHECK_THAT(probe::HaveTokens().ToString(), Catch::Contains("6.9"));
  }
}

TEST_CASE("a long verifier log is sized from log_true_size, or grown without it", "[kernel_diff][sys]") {
  // ~20000 instructions log far more than the first 64 KiB buffer takes
  // and than its first 4x growth.
  std::vector<bpf_insn> prog = LongRefusedProgram(20000);
  sys::ProgLoadRequest req;
  req.type = BPF_PROG_TYPE_SOCKET_FILTER;
  req.insns = prog;
  req.name = "long_log";
  sys::testing::StartCounting();
  auto res = sys::ProgLoad(req);
  uint64_t calls = sys::testing::CallCount();
  sys::testing::ClearFault();
  REQUIRE_FALSE(res.ok());
  INFO(res.status().message().substr(0, 300));
  // The whole log arrived: its tail is the verifier's reason, not a cut.
  CHECK_THAT(std::string(res.status().message()), Catch::Contains("R5 !read_ok"));
  INFO("bpf() calls: " << calls);
  if (probe::HaveLogTrueSize().ok()) {
    // without a log, with 64 KiB (too short), with exactly what it needs
    CHECK(calls == 3);
  } else {
    // without a log, then 64 KiB, 256 KiB, 1 MiB... until it fits
    CHECK(calls >= 4);
  }
}

TEST_CASE("a verifier log that outgrows the cap comes back truncated, not lost", "[kernel_diff][sys]") {
  std::vector<bpf_insn> prog = LongRefusedProgram(20000);
  sys::ProgLoadRequest req;
  req.type = BPF_PROG_TYPE_SOCKET_FILTER;
  req.insns = prog;
  req.name = "capped_log";
  req.log_size_cap = 64 * 1024;
  auto res = sys::ProgLoad(req);
  REQUIRE_FALSE(res.ok());
  CHECK(sys::StatusErrno(res.status()) == ENOSPC);
  CHECK_THAT(std::string(res.status().message()), Catch::Contains("verifier log"));
}

TEST_CASE("per-CPU values span the possible CPUs, not the online ones", "[kernel_diff][map]") {
  uint32_t possible = CountCpuList("/sys/devices/system/cpu/possible");
  uint32_t online = CountCpuList("/sys/devices/system/cpu/online");
  INFO("possible " << possible << ", online " << online);
  REQUIRE(possible >= 1);
  CHECK(PossibleCpus() == possible);
  // The VM boots with more possible than online vCPUs, where sizing by the
  // online count would let the kernel write past the buffer.
  CHECK(online <= possible);

  auto fd = sys::MapCreate([] {
    sys::MapCreateRequest r;
    r.type = BPF_MAP_TYPE_PERCPU_ARRAY;
    r.key_size = 4;
    r.value_size = 4;  // rounded up to 8 per CPU
    r.max_entries = 1;
    return r;
  }());
  REQUIRE(fd.ok());
  std::vector<uint8_t> in(8 * possible, 0);
  for (uint32_t c = 0; c < possible; ++c) in[8 * c] = static_cast<uint8_t>(0x10 + c);
  uint32_t key = 0;
  REQUIRE(sys::MapUpdateElem(fd->get(), &key, in.data(), BPF_ANY) == 0);
  // A guard past the end shows how much the kernel wrote.
  std::vector<uint8_t> out(8 * possible + 64, 0xee);
  REQUIRE(sys::MapLookupElem(fd->get(), &key, out.data(), 0) == 0);
  for (uint32_t c = 0; c < possible; ++c) CHECK(out[8 * c] == 0x10 + c);
  for (size_t i = 8 * possible; i < out.size(); ++i) CHECK(out[i] == 0xee);
}

TEST_CASE("fentry: a trampoline program runs when its target does", "[kernel_diff][trampoline]") {
  TETHER_REQUIRE_FEATURE("trampolines", probe::HaveTrampolines());

  auto counter = sys::MapCreate([] {
    sys::MapCreateRequest r;
    r.type = BPF_MAP_TYPE_ARRAY;
    r.key_size = 4;
    r.value_size = 8;
    r.max_entries = 1;
    r.name = "fentry_hits";
    return r;
  }());
  REQUIRE(counter.ok());
  // key 0 on the stack; count one hit in the array.
  bpf_insn prog[11];
  prog[0] = insn::StoreImm32(BPF_REG_10, -4, 0);
  prog[1] = insn::MovReg(BPF_REG_2, BPF_REG_10);
  prog[2] = insn::AddImm(BPF_REG_2, -4);
  insn::LdMapFd(BPF_REG_1, counter->get(), &prog[3]);
  prog[5] = insn::Call(BPF_FUNC_map_lookup_elem);
  prog[6] = insn::JeqImm(BPF_REG_0, 0, 2);
  prog[7] = insn::MovImm(BPF_REG_1, 1);
  prog[8] = insn::AtomicAdd64(BPF_REG_0, 0, BPF_REG_1);
  prog[9] = insn::MovImm(BPF_REG_0, 0);
  prog[10] = insn::Exit();

  // BPF_PROG_TEST_RUN of an fentry program calls bpf_fentry_test1, which
  // is where this one attaches. Its BTF id is looked up here with a walk
  // of our own, so that the probe's walk is not checking itself.
  std::vector<uint8_t> btf = testing::ReadFileBytes("/sys/kernel/btf/vmlinux");
  struct btf_header hdr;
  memcpy(&hdr, btf.data(), sizeof(hdr));
  const uint8_t* types = btf.data() + hdr.hdr_len + hdr.type_off;
  const char* strs = reinterpret_cast<const char*>(btf.data() + hdr.hdr_len + hdr.str_off);
  uint32_t target = 0;
  size_t off = 0;
  for (uint32_t id = 1; off + 12 <= hdr.type_len && target == 0; ++id) {
    uint32_t w[3];
    memcpy(w, types + off, 12);
    uint32_t kind = (w[1] >> 24) & 0x1f, vlen = w[1] & 0xffff;
    if (kind == BTF_KIND_FUNC && strcmp(strs + w[0], "bpf_fentry_test1") == 0) target = id;
    off += 12;
    if (kind == BTF_KIND_INT || kind == BTF_KIND_VAR || kind == BTF_KIND_DECL_TAG) off += 4;
    if (kind == BTF_KIND_ARRAY) off += 12;
    if (kind == BTF_KIND_STRUCT || kind == BTF_KIND_UNION || kind == BTF_KIND_DATASEC ||
        kind == BTF_KIND_ENUM64) off += 12 * vlen;
    if (kind == BTF_KIND_ENUM || kind == BTF_KIND_FUNC_PROTO) off += 8 * vlen;
  }
  REQUIRE(target != 0);

  sys::ProgLoadRequest req;
  req.type = BPF_PROG_TYPE_TRACING;
  req.expected_attach_type = BPF_TRACE_FENTRY;
  req.attach_btf_id = target;
  req.insns = prog;
  req.name = "fentry_count";
  auto loaded = sys::ProgLoad(req);
  REQUIRE(loaded.ok());
  auto link = sys::RawTracepointOpen(nullptr, loaded->fd.get());
  REQUIRE(link.ok());

  sys::TestRunRequest run;
  run.prog_fd = loaded->fd.get();
  sys::TestRunResult result;
  REQUIRE(sys::ProgTestRun(run, &result) == 0);
  uint32_t key = 0;
  uint64_t hits = 0;
  REQUIRE(sys::MapLookupElem(counter->get(), &key, &hits, 0) == 0);
  CHECK(hits >= 1);
}

TEST_CASE("every probe asks the kernel once per process", "[kernel_diff][probe]") {
  probe::ProbeAll();
  sys::testing::StartCounting();
  probe::ProbeAll();
  uint64_t calls = sys::testing::CallCount();
  sys::testing::ClearFault();
  CHECK(calls == 0);
  std::string report = probe::Report();
  for (const char* name : {"log_true_size: ", "tokens: ", "trampolines: ", "batch_ops: ",
                           "btf_kind:ENUM64: ", "btf_kind:DECL_TAG: ", "btf_func_linkage:global: "}) {
    CHECK_THAT(report, Catch::Contains(name));
  }
}

TEST_CASE("kprobe: a program on a kernel function counts its calls", "[kernel_diff][kprobe]") {
  TETHER_REQUIRE_FEATURE("kprobes", probe::HaveKprobes());

  int pmu_type = 0;
  {
    std::ifstream in("/sys/bus/event_source/devices/kprobe/type");
    in >> pmu_type;
  }
  REQUIRE(pmu_type > 0);
  auto counter = sys::MapCreate([] {
    sys::MapCreateRequest r;
    r.type = BPF_MAP_TYPE_ARRAY;
    r.key_size = 4;
    r.value_size = 8;
    r.max_entries = 1;
    r.name = "kprobe_hits";
    return r;
  }());
  REQUIRE(counter.ok());
  bpf_insn prog[11];
  prog[0] = insn::StoreImm32(BPF_REG_10, -4, 0);
  prog[1] = insn::MovReg(BPF_REG_2, BPF_REG_10);
  prog[2] = insn::AddImm(BPF_REG_2, -4);
  insn::LdMapFd(BPF_REG_1, counter->get(), &prog[3]);
  prog[5] = insn::Call(BPF_FUNC_map_lookup_elem);
  prog[6] = insn::JeqImm(BPF_REG_0, 0, 2);
  prog[7] = insn::MovImm(BPF_REG_1, 1);
  prog[8] = insn::AtomicAdd64(BPF_REG_0, 0, BPF_REG_1);
  prog[9] = insn::MovImm(BPF_REG_0, 0);
  prog[10] = insn::Exit();
  sys::ProgLoadRequest req;
  req.type = BPF_PROG_TYPE_KPROBE;
  req.insns = prog;
  req.name = "kprobe_count";
  auto loaded = sys::ProgLoad(req);
  REQUIRE(loaded.ok());

  // do_sys_openat2 is behind open(2) on x86-64 since 5.6.
  static const char kFunc[] = "do_sys_openat2";
  struct perf_event_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.size = sizeof(attr);
  attr.type = static_cast<uint32_t>(pmu_type);
  attr.config1 = reinterpret_cast<uintptr_t>(kFunc);  // kprobe_func
  attr.sample_period = 1;
  attr.wakeup_events = 1;
  int pfd = static_cast<int>(syscall(__NR_perf_event_open, &attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC));
  REQUIRE(pfd >= 0);
  sys::Fd perf(pfd);
  REQUIRE(ioctl(perf.get(), PERF_EVENT_IOC_SET_BPF, loaded->fd.get()) == 0);
  REQUIRE(ioctl(perf.get(), PERF_EVENT_IOC_ENABLE, 0) == 0);
  for (int i = 0; i < 3; ++i) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) close(fd);
  }
  uint32_t key = 0;
  uint64_t hits = 0;
  REQUIRE(sys::MapLookupElem(counter->get(), &key, &hits, 0) == 0);
  CHECK(hits >= 3);
}

// 6.1 has neither tcx nor uprobe.multi links: the API must say so, naming the
// feature and the release, rather than pass on a bare EINVAL.
TEST_CASE("tcx and uprobe.multi links: Unimplemented naming 6.6 where the kernel lacks them",
          "[kernel_diff][link]") {
  Program tc = testing::LoadReturning(0, "diff_tcx", BPF_PROG_TYPE_SCHED_CLS);
  int lo = static_cast<int>(if_nametoindex("lo"));
  REQUIRE(lo > 0);
  auto tcx = AttachTcx(tc, lo, TcxDirection::kIngress);
  if (probe::HaveLinkKind(probe::LinkKind::kTcx).ok()) {
    // Returning TC_ACT_OK on lo changes nothing; the link goes at scope end.
    INFO(tcx.status().ToString());
    REQUIRE(tcx.ok());
    CHECK(tcx->type() == sys::uapi::kLinkTypeTcx);
  } else {
    INFO(tcx.status().ToString());
    CHECK(absl::IsUnimplemented(tcx.status()));
    CHECK_THAT(std::string(tcx.status().message()),
               Catch::Contains("diff_tcx") && Catch::Contains("tcx") && Catch::Contains("6.6"));
  }

  if (!probe::HaveLinkKind(probe::LinkKind::kUprobeMulti).ok()) {
    // Without the 6.6 attach type the program loads as a plain kprobe; the
    // link is what the kernel lacks.
    Program up = testing::LoadReturning(0, "diff_umulti", BPF_PROG_TYPE_KPROBE);
    std::vector<UprobeTarget> targets = {{"main", 0}};
    auto link = AttachUprobeMulti(up, "/proc/self/exe", targets);
    INFO(link.status().ToString());
    CHECK(absl::IsUnimplemented(link.status()));
    CHECK_THAT(std::string(link.status().message()), Catch::Contains("6.6"));
  }
}
