// USDT: tether reads .note.stapsdt and attaches BPF C written for libbpf's
// <bpf/usdt.bpf.h> (test/bpf/usdt.bpf.c) to the probes of a real program
// built with <sys/sdt.h> (test/usdt/usdt_target.c), which fires them on
// command. Each argument kind (register, memory at an offset from a
// register, constant) must read the value the target passed, and a probe
// with a semaphore must see it raised while attached.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "test_support.h"
#include "tether/collection.h"
#include "tether/collection_spec.h"
#include "tether/probe.h"
#include "tether/usdt.h"

using namespace tether;

namespace {

// The target process, driven line by line through pipes.
class Target {
 public:
  explicit Target(const std::string& path = TETHER_USDT_TARGET) {
    int in[2], out[2];
    REQUIRE(pipe2(in, O_CLOEXEC) == 0);
    REQUIRE(pipe2(out, O_CLOEXEC) == 0);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      execl(path.c_str(), path.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    to_ = in[1];
    from_ = fdopen(out[0], "r");
    REQUIRE(from_ != nullptr);
  }
  ~Target() {
    close(to_);  // EOF: the target exits
    fclose(from_);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  pid_t pid() const { return pid_; }

  std::string Ask(const std::string& command) {
    std::string line = command + "\n";
    REQUIRE(write(to_, line.data(), line.size()) == static_cast<ssize_t>(line.size()));
    char buf[128] = {0};
    REQUIRE(fgets(buf, sizeof(buf), from_) != nullptr);
    std::string answer(buf);
    if (!answer.empty() && answer.back() == '\n') answer.pop_back();
    return answer;
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1;
  FILE* from_ = nullptr;
};

// struct args_record of usdt.bpf.c.
struct ArgsRecord {
  int64_t in_register, in_memory, constant, in_memory64, arg_count, cookie;
};

Collection LoadUsdtObject() {
  auto spec = CollectionSpec::FromFile(testing::BpfObjectPath("usdt"));
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  auto coll = Collection::Load(*spec);
  INFO(coll.status().ToString());
  REQUIRE(coll.ok());
  return *std::move(coll);
}

uint64_t Count(const Collection& coll, uint32_t slot) {
  uint64_t v = 0;
  REQUIRE(coll.map("usdt_counts").Lookup(slot, &v).ok());
  return v;
}

const UsdtNote* FindNote(const std::vector<UsdtNote>& notes, const std::string& name) {
  for (const UsdtNote& n : notes) {
    if (n.provider == "tether_test" && n.name == name) return &n;
  }
  return nullptr;
}

// A copy of the target with `from` replaced by `to` (same length) in its
// bytes, for malformed notes.
std::string PatchedTarget(const std::string& dir, const std::string& from, const std::string& to) {
  REQUIRE(from.size() == to.size());
  std::vector<uint8_t> bytes = testing::ReadFileBytes(TETHER_USDT_TARGET);
  std::string s(bytes.begin(), bytes.end());
  size_t at = s.find(from);
  REQUIRE(at != std::string::npos);
  s.replace(at, from.size(), to);
  std::string path = dir + "/usdt_target_patched";
  std::ofstream(path, std::ios::binary) << s;
  REQUIRE(chmod(path.c_str(), 0755) == 0);
  return path;
}

#define REQUIRE_USDT_KERNEL()                                                  \
  TETHER_REQUIRE_FEATURE(probe::LinkKindName(probe::LinkKind::kUprobe),        \
                         probe::HaveLinkKind(probe::LinkKind::kUprobe))

}  // namespace

TEST_CASE("ReadUsdtNotes parses the sites, semaphores and argument specs that sys/sdt.h leaves",
          "[usdt]") {
  auto notes = ReadUsdtNotes(TETHER_USDT_TARGET);
  INFO(notes.status().ToString());
  REQUIRE(notes.ok());
  const UsdtNote* args = FindNote(*notes, "args");
  const UsdtNote* gated = FindNote(*notes, "gated");
  REQUIRE(args != nullptr);
  REQUIRE(gated != nullptr);
  INFO("args spec: " << args->args);
  CHECK(args->args_error.empty());
  REQUIRE(args->parsed_args.size() == 4);
  // The target is built at -O2 so that gcc places them this way; the
  // value checks below depend on each kind being present.
  CHECK(args->parsed_args[0].kind == UsdtArg::Kind::kRegister);
  CHECK(args->parsed_args[0].size == 4);
  CHECK(args->parsed_args[0].is_signed);
  CHECK(args->parsed_args[1].kind == UsdtArg::Kind::kMemory);
  CHECK(args->parsed_args[1].size == 2);
  CHECK(!args->parsed_args[1].reg.empty());
  CHECK(args->parsed_args[2].kind == UsdtArg::Kind::kConstant);
  CHECK(args->parsed_args[2].value == 42);
  CHECK(args->parsed_args[3].kind == UsdtArg::Kind::kMemory);
  CHECK(args->parsed_args[3].size == 8);
  CHECK(args->semaphore_address == 0);
  CHECK(args->file_offset != 0);
  CHECK(gated->semaphore_address != 0);
  CHECK(gated->semaphore_offset != 0);
  REQUIRE(gated->parsed_args.size() == 1);
  CHECK(gated->parsed_args[0].kind == UsdtArg::Kind::kRegister);

  // A shared library the toolchain ships (Debian builds libstdc++ with
  // sys/sdt.h probes for exceptions): every note parses.
  auto lib = ReadUsdtNotes("/usr/lib/x86_64-linux-gnu/libstdc++.so.6");
  INFO(lib.status().ToString());
  REQUIRE(lib.ok());
  REQUIRE(!lib->empty());
  for (const UsdtNote& n : *lib) {
    INFO(n.provider << ":" << n.name << " " << n.args);
    CHECK(n.args_error.empty());
    CHECK(n.file_offset != 0);
  }
}

TEST_CASE("a libbpf-style BPF_USDT program reads register, memory and constant arguments",
          "[usdt][attach]") {
  REQUIRE_USDT_KERNEL();
  Collection coll = LoadUsdtObject();
  Target target;
  size_t fds_before = testing::CountOpenFds();
  {
    constexpr uint64_t kCookie = 0xC00C1E5;
    auto att = AttachUsdt(coll.program("on_args"), TETHER_USDT_TARGET, "tether_test", "args",
                          target.pid(), kCookie);
    INFO(att.status().ToString());
    REQUIRE(att.ok());
    REQUIRE(att->links().size() == 1);
    REQUIRE(att->sites().size() == 1);
    REQUIRE(target.Ask("fire 5") == "fired 5");
    REQUIRE(Count(coll, 0) == 5);
    Map seen = coll.map("args_seen");
    for (uint32_t i = 0; i < 5; ++i) {
      ArgsRecord r{};
      REQUIRE(seen.Lookup(i, &r).ok());
      INFO("firing " << i);
      CHECK(r.in_register == 1000 + 3 * static_cast<int64_t>(i));
      CHECK(r.in_memory == -100 - static_cast<int64_t>(i));  // signed 2-byte, sign-extended
      CHECK(r.constant == 42);
      CHECK(r.in_memory64 == 0x123456789LL + i);
      CHECK(r.arg_count == 4);
      CHECK(r.cookie == static_cast<int64_t>(kCookie));
    }
  }
  // The attachment is gone: the probe no longer runs the program.
  REQUIRE(target.Ask("fire 2") == "fired 2");
  CHECK(Count(coll, 0) == 5);
  CHECK(testing::CountOpenFds() == fds_before);
}

TEST_CASE("a USDT probe with a semaphore: the semaphore is raised while attached", "[usdt][attach]") {
  REQUIRE_USDT_KERNEL();
  Collection coll = LoadUsdtObject();
  Target target;
  REQUIRE(target.Ask("sem") == "sem 0");
  REQUIRE(target.Ask("gated 5") == "gated 0");
  {
    // Every process (-1): the kernel raises the semaphore in processes
    // already running the binary too.
    auto att = AttachUsdt(coll.program("on_gated"), TETHER_USDT_TARGET, "tether_test", "gated");
    INFO(att.status().ToString());
    REQUIRE(att.ok());
    CHECK(target.Ask("sem") != "sem 0");
    REQUIRE(target.Ask("gated 77") == "gated 1");
    CHECK(Count(coll, 1) == 1);
    CHECK(Count(coll, 2) == 77);
  }
  CHECK(target.Ask("sem") == "sem 0");
  CHECK(target.Ask("gated 9") == "gated 0");
  CHECK(Count(coll, 1) == 1);
}

TEST_CASE("AttachUsdt errors name the binary, the probe and the note, and leak nothing",
          "[usdt][attach][errors]") {
  REQUIRE_USDT_KERNEL();
  Collection coll = LoadUsdtObject();
  size_t fds_before = testing::CountOpenFds();

  auto missing = AttachUsdt(coll.program("on_args"), TETHER_USDT_TARGET, "tether_test", "no_such");
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK_THAT(std::string(missing.status().message()),
             Catch::Contains(TETHER_USDT_TARGET) && Catch::Contains("tether_test:no_such"));

  auto no_notes = AttachUsdt(coll.program("on_args"), "/bin/sh", "tether_test", "args");
  CHECK(no_notes.status().code() == absl::StatusCode::kNotFound);
  CHECK_THAT(std::string(no_notes.status().message()), Catch::Contains(".note.stapsdt"));

  auto no_file = AttachUsdt(coll.program("on_args"), "/nonexistent/usdt", "tether_test", "args");
  CHECK(no_file.status().code() == absl::StatusCode::kNotFound);

  CHECK(AttachUsdt(Program(), TETHER_USDT_TARGET, "tether_test", "args").status().code() ==
        absl::StatusCode::kInvalidArgument);

  std::string dir = "/tmp/tether_usdt_test." + std::to_string(getpid());
  REQUIRE((mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST));
  // An argument spec naming a register x86-64 does not have.
  auto notes = ReadUsdtNotes(TETHER_USDT_TARGET);
  REQUIRE(notes.ok());
  const UsdtNote* args = FindNote(*notes, "args");
  REQUIRE(args != nullptr);
  std::string first_reg = args->args.substr(0, args->args.find(' '));  // e.g. "-4@%eax"
  std::string bad_reg = first_reg.substr(0, first_reg.find('%') + 1) +
                        std::string(first_reg.size() - first_reg.find('%') - 1, 'q');
  std::string patched = PatchedTarget(dir, args->args, bad_reg + args->args.substr(first_reg.size()));
  auto bad = AttachUsdt(coll.program("on_args"), patched, "tether_test", "args");
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(bad.status().message()),
             Catch::Contains("note ") && Catch::Contains(bad_reg) && Catch::Contains("register"));
  // The other probe of the same file still attaches.
  auto other = AttachUsdt(coll.program("on_gated"), patched, "tether_test", "gated");
  INFO(other.status().ToString());
  CHECK(other.ok());
  other = absl::InternalError("dropped");

  // A note whose descriptor size runs past the section: the note owner
  // "stapsdt" follows its header (namesz 8, descsz, type 3).
  std::vector<uint8_t> bytes = testing::ReadFileBytes(TETHER_USDT_TARGET);
  std::string s(bytes.begin(), bytes.end());
  std::string owner("stapsdt\0", 8);
  size_t at = s.find(owner);
  REQUIRE(at != std::string::npos);
  REQUIRE(at >= 8);
  s[at - 8] = '\x7f';  // descsz: 0x..7f, far past the section
  s[at - 7] = '\x7f';
  std::string truncated = dir + "/usdt_target_bad_note";
  std::ofstream(truncated, std::ios::binary) << s;
  auto bad_note = ReadUsdtNotes(truncated);
  CHECK(bad_note.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(bad_note.status().message()), Catch::Contains("note 0"));
  auto bad_attach = AttachUsdt(coll.program("on_args"), truncated, "tether_test", "args");
  CHECK(bad_attach.status().code() == absl::StatusCode::kInvalidArgument);

  {
    // A program that does not use usdt.bpf.h's maps.
    auto spec = CollectionSpec::FromFile(testing::BpfObjectPath("sampling"));
    REQUIRE(spec.ok());
    auto plain = Collection::Load(*spec);
    REQUIRE(plain.ok());
    auto no_maps =
        AttachUsdt(plain->program("count_samples"), TETHER_USDT_TARGET, "tether_test", "args");
    CHECK(no_maps.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(no_maps.status().message()), Catch::Contains("__bpf_usdt_specs"));
  }

  testing::RemoveTree(dir);
  CHECK(testing::CountOpenFds() == fds_before);
}

TEST_CASE("two USDT attachments sharing the spec map keep their own specs", "[usdt][attach]") {
  REQUIRE_USDT_KERNEL();
  Collection coll = LoadUsdtObject();
  Target target;
  // gated first: it takes spec id 0, so the args sites carry 1 in their
  // BPF cookie, and a cookie that did not reach the program would read
  // the gated spec (one argument) for them.
  auto gated = AttachUsdt(coll.program("on_gated"), TETHER_USDT_TARGET, "tether_test", "gated",
                          target.pid());
  REQUIRE(gated.ok());
  auto first = AttachUsdt(coll.program("on_args"), TETHER_USDT_TARGET, "tether_test", "args",
                          target.pid(), 1);
  REQUIRE(first.ok());
  REQUIRE(target.Ask("gated 3") == "gated 1");
  REQUIRE(target.Ask("fire 1") == "fired 1");
  ArgsRecord r{};
  REQUIRE(coll.map("args_seen").Lookup(uint32_t{0}, &r).ok());
  // Had the gated spec overwritten the args spec, or the cookie not
  // arrived, the count would be 1.
  CHECK(r.arg_count == 4);
  CHECK(r.in_register == 1000);
  CHECK(r.cookie == 1);
  CHECK(Count(coll, 2) == 3);
}

TEST_CASE("USDT argument specs: every operand form and register width", "[usdt]") {
  auto notes = ReadUsdtNotes(TETHER_USDT_TARGET);
  REQUIRE(notes.ok());
  const UsdtNote* args = FindNote(*notes, "args");
  REQUIRE(args != nullptr);
  // Rewritten in a copy of the target, padded to the original's length
  // (trailing spaces separate nothing).
  std::string wanted = "1@%dil -2@(%r15) -8@$-7 2@%r8w 4@-3(%bp)";
  if (wanted.size() > args->args.size()) wanted = "1@%dil -2@(%r15) -8@$-7 2@%r8w";
  REQUIRE(wanted.size() <= args->args.size());
  wanted.resize(args->args.size(), ' ');
  std::string dir = "/tmp/tether_usdt_forms." + std::to_string(getpid());
  REQUIRE((mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST));
  std::string patched = PatchedTarget(dir, args->args, wanted);
  auto forms = ReadUsdtNotes(patched);
  testing::RemoveTree(dir);
  INFO(forms.status().ToString());
  REQUIRE(forms.ok());
  const UsdtNote* n = FindNote(*forms, "args");
  REQUIRE(n != nullptr);
  INFO(n->args_error);
  REQUIRE(n->parsed_args.size() >= 4);
  const std::vector<UsdtArg>& a = n->parsed_args;
  CHECK((a[0].kind == UsdtArg::Kind::kRegister && a[0].size == 1 && !a[0].is_signed &&
         a[0].pt_regs_offset == 112));  // dil: the low byte of rdi
  CHECK((a[1].kind == UsdtArg::Kind::kMemory && a[1].size == 2 && a[1].is_signed &&
         a[1].value == 0 && a[1].pt_regs_offset == 0));  // (%r15): offset 0 from r15
  CHECK((a[2].kind == UsdtArg::Kind::kConstant && a[2].value == -7 && a[2].is_signed));
  CHECK((a[3].kind == UsdtArg::Kind::kRegister && a[3].size == 2 && a[3].pt_regs_offset == 72));
  if (a.size() == 5) {
    CHECK((a[4].kind == UsdtArg::Kind::kMemory && a[4].value == -3 && a[4].pt_regs_offset == 32));
  }
}

TEST_CASE("a USDT probe in a shared library fires in the process that loaded it", "[usdt][attach]") {
  REQUIRE_USDT_KERNEL();
  auto notes = ReadUsdtNotes(TETHER_USDT_LIB);
  INFO(notes.status().ToString());
  REQUIRE(notes.ok());
  REQUIRE(notes->size() == 1);
  CHECK((*notes)[0].provider == "tether_lib");
  Collection coll = LoadUsdtObject();
  Target target;
  REQUIRE(target.Ask("lib 1") == "lib 2");  // the library is mapped and run before the attach
  auto att = AttachUsdt(coll.program("on_lib"), TETHER_USDT_LIB, "tether_lib", "called", target.pid());
  INFO(att.status().ToString());
  REQUIRE(att.ok());
  REQUIRE(target.Ask("lib -21") == "lib -42");
  REQUIRE(target.Ask("lib 500") == "lib 1000");
  CHECK(Count(coll, 3) == 2);
  CHECK(static_cast<int64_t>(Count(coll, 4)) == 500);
  CHECK(static_cast<int64_t>(Count(coll, 5)) == 1000);
}
