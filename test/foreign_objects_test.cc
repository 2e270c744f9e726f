// Objects that tether did not make: bpftool (libbpf) loads and pins a
// tail-call chain and exits, so only the pins hold it. tether explain must
// say what the kernel then does when a pin goes, and the test makes it go.
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "cli_support.h"
#include "test_programs.h"
#include "test_support.h"
#include "tether/map.h"
#include "tether/program.h"

using namespace tether;

TEST_CASE("explain a chain that bpftool loaded and pinned: removing the array's pin breaks it",
          "[cli][bpftool]") {
  if (access("/usr/sbin/bpftool", X_OK) != 0) FAIL("bpftool is missing (Debian package bpftool)");
  testing::TempPinDir dir;
  const std::string progs = dir.Sub("progs"), maps = dir.Sub("maps");
  std::string load = "/usr/sbin/bpftool prog loadall " + testing::BpfObjectPath("tail_calls") + " " +
                     progs + " pinmaps " + maps + " 2>&1";
  REQUIRE(system(load.c_str()) == 0);
  std::string fill = "/usr/sbin/bpftool map update pinned " + maps + "/jmp_table key 0 0 0 0 value pinned " +
                     progs + "/target_q 2>&1";
  REQUIRE(system(fill.c_str()) == 0);

  auto caller = Program::LoadPinned(progs + "/caller_p");
  REQUIRE(caller.ok());
  CHECK(testing::RunValue(*caller) == 42);  // the tail call hits
  uint32_t array_id = 0;
  {
    auto array = Map::LoadPinned(maps + "/jmp_table");
    REQUIRE(array.ok());
    array->SetLifetimePolicy(LifetimePolicy::kIgnore);
    array_id = array->id();
  }  // our fd goes; the pin stays, so this is not the array's last reference

  testing::CliResult r = testing::RunCli("explain map " + std::to_string(array_id) + " --pinned " + dir.path());
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("the pin " + maps + "/jmp_table (the last user reference)") &&
                        Catch::Contains("tail calls from caller_p") &&
                        Catch::Contains("jmp_table[0] will miss"));
  CHECK_THAT(r.out, !Catch::Contains("so it keeps its entries"));

  // What the kernel does: the array is cleared, the tail call misses.
  REQUIRE(unlink((maps + "/jmp_table").c_str()) == 0);
  CHECK(testing::Eventually([&] { return testing::RunValue(*caller) == 7; }));
}
