// Holds a population of BPF objects for scripts/bench_graph_scan.sh: N
// program arrays, each with two target programs in its slots and one
// program that tail-calls through it (3N programs), all through fds of
// this process, nothing pinned. Made with raw bpf(2), nothing of tether,
// as another loader would. Prints "ready" and holds them until stdin
// closes.
//   scan_population [ARRAYS]   (default 100: 300 programs)
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

long Bpf(int cmd, union bpf_attr* attr) { return syscall(__NR_bpf, cmd, attr, sizeof(*attr)); }

int Load(const bpf_insn* insns, unsigned count, const char* name) {
  union bpf_attr a;
  memset(&a, 0, sizeof(a));
  a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
  a.insns = reinterpret_cast<uintptr_t>(insns);
  a.insn_cnt = count;
  a.license = reinterpret_cast<uintptr_t>("GPL");
  strncpy(a.prog_name, name, sizeof(a.prog_name) - 1);
  return static_cast<int>(Bpf(BPF_PROG_LOAD, &a));
}

}  // namespace

int main(int argc, char** argv) {
  int arrays = argc > 1 ? atoi(argv[1]) : 100;
  for (int i = 0; i < arrays; ++i) {
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.map_type = BPF_MAP_TYPE_PROG_ARRAY;
    a.key_size = 4;
    a.value_size = 4;
    a.max_entries = 4;
    snprintf(a.map_name, sizeof(a.map_name), "bench_jmp%d", i % 10000);
    int map = static_cast<int>(Bpf(BPF_MAP_CREATE, &a));
    bpf_insn ret[] = {{BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 1}, {BPF_JMP | BPF_EXIT, 0, 0, 0, 0}};
    bpf_insn caller[] = {
        {BPF_ALU64 | BPF_MOV | BPF_X, 6, 1, 0, 0},
        {BPF_ALU64 | BPF_MOV | BPF_X, 1, 6, 0, 0},
        {BPF_LD | BPF_DW | BPF_IMM, 2, BPF_PSEUDO_MAP_FD, 0, map},
        {0, 0, 0, 0, 0},
        {BPF_ALU64 | BPF_MOV | BPF_K, 3, 0, 0, 0},
        {BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_tail_call},
        {BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 7},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0}};
    int entry = Load(caller, 8, "bench_entry");
    if (map < 0 || entry < 0) {
      perror("scan_population: create");
      return 1;
    }
    for (unsigned slot = 0; slot < 2; ++slot) {
      int target = Load(ret, 2, "bench_target");
      int value = target;
      memset(&a, 0, sizeof(a));
      a.map_fd = static_cast<uint32_t>(map);
      a.key = reinterpret_cast<uintptr_t>(&slot);
      a.value = reinterpret_cast<uintptr_t>(&value);
      if (target < 0 || Bpf(BPF_MAP_UPDATE_ELEM, &a) != 0) {
        perror("scan_population: fill");
        return 1;
      }
    }
  }
  printf("ready\n");
  fflush(stdout);
  char c;
  while (read(0, &c, 1) > 0) {
  }
  return 0;
}
