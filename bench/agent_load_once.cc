// One loader's load of the agent-scale object (bench/gen_agent.py), for
// valgrind:
//
//   agent_load_once tether|libbpf [ROUNDS]
//
// bench/profile_agent_load.py runs it under callgrind with collection on
// for bench_agent_load_<loader> only: the instruction count is the
// loader's own user-space work (valgrind counts no kernel instructions, so
// the verifier is left out by construction). Under massif it gives the
// heap peak of a load and the allocation sites at the peak.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "load_common.h"

using namespace tether::bench;

extern "C" __attribute__((noinline)) int bench_agent_load_tether(int rounds, const char* dir) {
  int failed = 0;
  for (int r = 0; r < rounds; ++r) {
    absl::Status st = TetherLoadSerial(AgentObject(), dir);
    if (!st.ok()) fprintf(stderr, "tether: %s\n", st.ToString().c_str());
    failed += !st.ok();
  }
  return failed;
}

extern "C" __attribute__((noinline)) int bench_agent_load_libbpf(int rounds, const char* dir) {
  int failed = 0;
  for (int r = 0; r < rounds; ++r) {
    absl::Status st = LibbpfLoad(AgentObject(), dir);
    if (!st.ok()) fprintf(stderr, "libbpf: %s\n", st.ToString().c_str());
    failed += !st.ok();
  }
  return failed;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: agent_load_once tether|libbpf [ROUNDS]\n");
    return 2;
  }
  std::string which = argv[1];
  int rounds = argc > 2 ? atoi(argv[2]) : 1;
  AgentObject();  // read from disk before the measured call
  std::string dir = MakePinDir();
  int failed = which == "libbpf" ? bench_agent_load_libbpf(rounds, dir.c_str())
                                 : bench_agent_load_tether(rounds, dir.c_str());
  RemovePinDir(dir);
  printf("loads: %d, failed: %d\n", rounds, failed);
  return failed ? 1 : 0;
}
