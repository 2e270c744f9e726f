// The body of the elf_open benchmark, once per loader, for callgrind:
//
//   elf_open_once tether|libbpf [ROUNDS]
//
// bench/callgrind_elf_open.py runs it under valgrind with collection
// toggled on for bench_elf_open_<loader> only, so the instruction counts
// are the parse alone, over the same object set as elf_open/*.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "load_common.h"

using namespace tether::bench;

extern "C" __attribute__((noinline)) int bench_elf_open_tether(int rounds) {
  int failed = 0;
  for (int r = 0; r < rounds; ++r)
    for (const auto& o : ElfOpenSet()) failed += !TetherOpen(o).ok();
  return failed;
}

extern "C" __attribute__((noinline)) int bench_elf_open_libbpf(int rounds) {
  int failed = 0;
  for (int r = 0; r < rounds; ++r)
    for (const auto& o : ElfOpenSet()) failed += !LibbpfOpen(o).ok();
  return failed;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: elf_open_once tether|libbpf [ROUNDS]\n");
    return 2;
  }
  std::string which = argv[1];
  int rounds = argc > 2 ? atoi(argv[2]) : 1;
  // Built (and filtered through both loaders) before the measured call.
  printf("objects: %zu\n", ElfOpenSet().size());
  int failed = which == "libbpf" ? bench_elf_open_libbpf(rounds) : bench_elf_open_tether(rounds);
  return failed ? 1 : 0;
}
