// The `tether` command, run as a real binary against objects this test
// process creates: the CLI sees them as another process's.
#include <sys/socket.h>
#include <sys/wait.h>

#include <array>
#include <sstream>
#include <fstream>
#include <iterator>
#include <cstdio>

#include "cli_support.h"
#include "test_programs.h"
#include "test_support.h"
#include "tether/attach.h"
#include "tether/graph.h"
#include "tether/insn.h"
#include "tether/program.h"
#include "sys/bpf.h"
#include "tether/probe.h"
#include "tether/prog_array.h"

using namespace tether;

namespace {

using Result = testing::CliResult;
using testing::RunCli;

}  // namespace

TEST_CASE("tether with no or bad arguments explains its usage", "[cli]") {
  Result none = RunCli("");
  CHECK(none.exit_code == 2);
  CHECK_THAT(none.err, Catch::Contains("usage: tether"));
  Result help = RunCli("--help");
  CHECK(help.exit_code == 0);
  CHECK_THAT(help.out, Catch::Contains("graph") && Catch::Contains("explain"));
  CHECK(RunCli("frobnicate").exit_code == 2);
  for (const char* sub : {"graph --help", "explain -h", "help inspect", "load --help"}) {
    Result r = RunCli(sub);
    INFO(sub);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("usage: tether"));
  }
  CHECK(RunCli("graph --format png").exit_code == 2);
  CHECK(RunCli("explain map notanumber").exit_code == 2);
}

TEST_CASE("tether probe lists every probe with one of its answers", "[cli][probe]") {
  Result r = RunCli("probe");
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::StartsWith("kernel: " + probe::KernelRelease() + "\n") &&
                        Catch::Contains("map_type:hash: present\n") &&
                        Catch::Contains("iterator:bpf_map_elem: ") &&
                        Catch::Contains("trampolines: "));
  // Each line is one probe's answer, in the process's own words.
  size_t lines = 0, answered = 0;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("kernel: ", 0) == 0) continue;
    ++lines;
    for (const char* a : {": present", ": missing: ", ": refused here: "}) {
      if (line.find(a) != std::string::npos) {
        ++answered;
        break;
      }
    }
  }
  CHECK(lines > 100);
  CHECK(answered == lines);
  CHECK(RunCli("probe extra").exit_code == 2);
}

TEST_CASE("tether graph shows this process's arrays, entries, fds and hazards", "[cli]") {
  auto array = ProgramArray::Create("cli_jmp", 4, LifetimePolicy::kIgnore);
  REQUIRE(array.ok());
  Program target = testing::LoadReturning(5, "cli_target");
  Program caller = testing::LoadTailCaller(array->map(), 0, 9, "cli_caller");
  REQUIRE(array->Set(0, target).ok());
  uint32_t array_id = array->map().id();

  Result json = RunCli("graph --format json");
  REQUIRE(json.exit_code == 0);
  std::string key = "\"key\": \"map:" + std::to_string(array_id) + "\"";
  CHECK_THAT(json.out, Catch::Contains(key));
  CHECK_THAT(json.out, Catch::Contains("\"from\": \"map:" + std::to_string(array_id) +
                                       "\", \"to\": \"program:" + std::to_string(target.id()) +
                                       "\", \"kind\": \"tail_call\", \"slot\": 0"));
  // This process holds the array's fd, and the CLI sees it.
  CHECK_THAT(json.out, Catch::Contains("pid " + std::to_string(getpid())));

  Result dot = RunCli("graph --format dot");
  REQUIRE(dot.exit_code == 0);
  CHECK_THAT(dot.out, Catch::StartsWith("digraph tether") && Catch::Contains("cli_jmp"));
  Result svg = RunCli("graph --format svg");
  REQUIRE(svg.exit_code == 0);
  CHECK_THAT(svg.out, Catch::Contains("<svg"));
  std::string svg_file = "/tmp/tether-cli-test-" + std::to_string(getpid()) + ".svg";
  REQUIRE(RunCli("graph --format svg -o " + svg_file).exit_code == 0);
  std::ifstream svg_in(svg_file);
  std::string svg_text((std::istreambuf_iterator<char>(svg_in)), {});
  unlink(svg_file.c_str());
  CHECK_THAT(svg_text, Catch::Contains("<svg") && Catch::Contains("cli_jmp"));

  // Drop the array: the kernel clears it, and the system graph marks the
  // hazard: an array held only by the kernel, which tail calls miss.
  *array = ProgramArray();
  REQUIRE(testing::Eventually([&] { return testing::RunValue(caller) == 9; }));
  Result text = RunCli("graph");
  REQUIRE(text.exit_code == 0);
  // Nobody holds the array any more, so the scan does not open it (that
  // could leak it in the kernel, docs/repro/): it knows the array from the
  // caller's code, without its name.
  std::string block = testing::BlockOf(text.out, "program array '?' (id " + std::to_string(array_id) + ")");
  INFO(text.out);
  CHECK_THAT(block, Catch::Contains("cleared by the kernel") && Catch::Contains("held only by the kernel") &&
                        Catch::Contains("cli_caller"));
}

TEST_CASE("tether explain names the holders and what breaks", "[cli]") {
  auto array = ProgramArray::Create("cli_explain", 2, LifetimePolicy::kIgnore);
  REQUIRE(array.ok());
  Program target = testing::LoadReturning(5, "cli_t2");
  Program caller = testing::LoadTailCaller(array->map(), 0, 9, "cli_c2");
  REQUIRE(array->Set(0, target).ok());
  Result r = RunCli("explain map " + std::to_string(array->map().id()));
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("an open fd in pid " + std::to_string(getpid())));
  CHECK_THAT(r.out, Catch::Contains("used by program 'cli_c2'"));
  CHECK_THAT(r.out, Catch::Contains("the last user reference") &&
                        Catch::Contains("tail calls from cli_c2"));
  Result prog = RunCli("explain prog " + std::to_string(target.id()));
  REQUIRE(prog.exit_code == 0);
  CHECK_THAT(prog.out, Catch::Contains("entry [0] of program array 'cli_explain'"));
  Result missing = RunCli("explain map 4000000000");
  CHECK(missing.exit_code == 1);
  CHECK_THAT(missing.err, Catch::Contains("no map with id 4000000000"));
}

TEST_CASE("tether inspect describes an object without loading it", "[cli]") {
  Result text = RunCli("inspect " + testing::BpfObjectPath("collection"));
  REQUIRE(text.exit_code == 0);
  CHECK_THAT(text.out, Catch::Contains("entry") && Catch::Contains("jmp_table") &&
                           Catch::Contains("[0] = stage_one") && Catch::Contains("by_name"));
  Result json = RunCli("inspect --json " + testing::BpfObjectPath("collection"));
  REQUIRE(json.exit_code == 0);
  CHECK_THAT(json.out, Catch::Contains("{\"slot\": 1, \"name\": \"stage_two\"}"));
  CHECK_THAT(json.out, Catch::Contains("\"name\": \"entry\", \"section\": \"socket\", \"type\": \"socket_filter\""));
  Result bad = RunCli("inspect /etc/hostname");
  CHECK(bad.exit_code == 1);
  CHECK_THAT(bad.err, Catch::Contains("hostname"));
  CHECK(RunCli("inspect /nonexistent.o").exit_code == 1);
}

TEST_CASE("tether load loads, pins on request, and reports verifier failures", "[cli]") {
  testing::TempPinDir dir;
  Result ok = RunCli("load --json --pin-dir " + dir.path() + " " + testing::BpfObjectPath("collection"));
  INFO(ok.err);
  REQUIRE(ok.exit_code == 0);
  CHECK_THAT(ok.out, Catch::Contains("\"name\": \"entry\"") && Catch::Contains("\"pinned\": true"));
  // The CLI exited; its pins keep the chain alive and working.
  auto entry = Program::LoadPinned(dir.Sub("prog_entry"));
  REQUIRE(entry.ok());
  CHECK(testing::RunValue(*entry) == 42);

  Result transient = RunCli("load " + testing::BpfObjectPath("collection"));
  CHECK(transient.exit_code == 1);  // pinning by name needs --pin-dir
  CHECK_THAT(transient.err, Catch::Contains("shared_counter") && Catch::Contains("pin"));

  Result rejected = RunCli("load " + testing::BpfObjectPath("verifier_reject"));
  CHECK(rejected.exit_code == 1);
  CHECK_THAT(rejected.err, Catch::Contains("reads_too_far") && Catch::Contains("verifier log"));
  // Unpin everything the CLI pinned (TempPinDir removes the files too).
  for (const char* name : {"prog_entry", "prog_stage_one", "prog_stage_two"}) {
    auto p = Program::LoadPinned(dir.Sub(name));
    if (p.ok()) REQUIRE(p->Unpin().ok());
  }
}

TEST_CASE("the getting-started example loads, attaches and counts", "[cli][example]") {
  // docs/getting-started.md walks through this program line by line.
  FILE* p = popen(TETHER_GETTING_STARTED " 2>&1", "r");
  REQUIRE(p != nullptr);
  std::string out;
  std::array<char, 512> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = pclose(p);
  INFO(out);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK_THAT(out, Catch::Contains("count_getpid saw 3 getpid() calls"));
}

TEST_CASE("tether load loads every corpus object marked loadable here", "[cli][corpus]") {
  std::string dir = std::string(TETHER_SOURCE_DIR) + "/test/corpus";
  std::ifstream tsv(dir + "/EXPECTED.tsv");
  std::string line;
  std::getline(tsv, line);
  int loaded = 0;
  while (std::getline(tsv, line)) {
    std::stringstream row(line);
    std::string file, parse, load;
    std::getline(row, file, '\t');
    std::getline(row, parse, '\t');
    std::getline(row, load, '\t');
    if (load != "ok") continue;
    if (file == "arena-el.elf" && !probe::HaveMapType(sys::uapi::kMapTypeArena).ok()) {
      WARN("SKIPPED (probe map_type:arena) " << file);
      continue;
    }
    testing::TempPinDir pins;
    Result r = RunCli("load --pin-dir " + pins.path() + " " + dir + "/" + file);
    INFO(file << ": " << r.err);
    CHECK(r.exit_code == 0);
    if (r.exit_code == 0) ++loaded;
  }
  CHECK(loaded >= 16);
}

TEST_CASE("tether graph shows links with their programs and targets, and pins under --pinned",
          "[cli][link][pin]") {
  Program prog = testing::LoadReturning(0, "cli_rawtp", BPF_PROG_TYPE_RAW_TRACEPOINT);
  auto link = AttachRawTracepoint(prog, "sys_enter");
  INFO(link.status().ToString());
  REQUIRE(link.ok());
  uint32_t link_id = link->id();

  testing::TempPinDir dir;
  auto map = Map::Create({.type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 8,
                          .max_entries = 1, .name = "cli_pinned"});
  REQUIRE(map.ok());
  std::string pin = dir.Sub("cli_pinned");
  REQUIRE(map->Pin(pin).ok());

  Result json = RunCli("graph --format json --pinned " + dir.path());
  REQUIRE(json.exit_code == 0);
  std::string link_key = "link:" + std::to_string(link_id);
  CHECK_THAT(json.out, Catch::Contains("\"key\": \"" + link_key + "\""));
  CHECK_THAT(json.out, Catch::Contains("\"from\": \"" + link_key + "\", \"to\": \"program:" +
                                       std::to_string(prog.id()) + "\", \"kind\": \"link_holds\""));
  CHECK_THAT(json.out, Catch::Contains("sys_enter"));  // the link's target
  CHECK_THAT(json.out, Catch::Contains(pin));
  CHECK_THAT(json.out, Catch::Contains("\"to\": \"map:" + std::to_string(map->id()) +
                                       "\", \"kind\": \"pin_holds\""));
  // Outside --pinned the pin is not looked for.
  Result elsewhere = RunCli("graph --format json --pinned " + dir.path() + "/nonexistent");
  CHECK_THAT(elsewhere.out, !Catch::Contains(pin));

  Result why = RunCli("explain link " + std::to_string(link_id));
  INFO(why.err);
  REQUIRE(why.exit_code == 0);
  CHECK_THAT(why.out, Catch::Contains("cli_rawtp"));
  REQUIRE(map->Unpin().ok());
}

TEST_CASE("tether graph marks cycles and programs held only by a legacy hook", "[cli]") {
  // A program that tail-calls the array it sits in.
  auto array = ProgramArray::Create("cli_cycle", 1, LifetimePolicy::kIgnore);
  REQUIRE(array.ok());
  Program loop = testing::LoadTailCaller(array->map(), 0, 3, "cli_loop");
  REQUIRE(array->Set(0, loop).ok());
  // A socket filter whose only holder, once the handle goes, is the socket.
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(sock >= 0);
  uint32_t hooked_id = 0;
  {
    Program hooked = testing::LoadReturning(0, "cli_hooked");
    REQUIRE(AttachSocketFilter(hooked, sock).ok());
    hooked_id = hooked.id();
  }
  Result text = RunCli("graph");
  close(sock);
  REQUIRE(text.exit_code == 0);
  CHECK_THAT(text.out, Catch::Contains("cycle: program " + std::to_string(loop.id()) + " -> map " +
                                       std::to_string(array->map().id()) + " -> program " +
                                       std::to_string(loop.id())));
  // The hooked program's own line carries the note.
  std::string marker = "program 'cli_hooked' (id " + std::to_string(hooked_id) + ")";
  size_t at = text.out.find(marker);
  REQUIRE(at != std::string::npos);
  // Its block: its own line and the indented ones under it.
  size_t next = at;
  while ((next = text.out.find('\n', next + 1)) != std::string::npos &&
         next + 1 < text.out.size() && text.out[next + 1] == ' ') {
  }
  std::string block = text.out.substr(at, next == std::string::npos ? std::string::npos : next - at);
  INFO(block);
  CHECK_THAT(block, Catch::Contains("held by nothing but a legacy hook"));
  REQUIRE(array->Clear().ok());
}
