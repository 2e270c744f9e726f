// Reproducer: a program array opened by id and closed again while the
// kernel's deferred clear of it is still queued is never freed.
//
//   gcc -O1 -o reopen_leak prog_array_reopen_leak.c && sudo ./reopen_leak 20 1
//   usage: reopen_leak ROUNDS REOPENS [USLEEP_BEFORE_REOPEN]
//
// Each round makes a program array, a program that tail-calls through it
// and one entry, closes the array's only fd (its last user reference, so
// the kernel queues prog_array_map_clear_deferred, taking a map reference
// for the work), opens it by id and closes it REOPENS times, and drops the
// programs. Two seconds later it counts the arrays that still exist.
// Every array leaks when the reopen comes at once; none does with
// REOPENS 0, or when the process yields first (USLEEP_BEFORE_REOPEN 0
// is enough), which lets the queued work run. Each leaked array stays
// until reboot (`bpftool map show name leak_probe`).
#include <linux/bpf.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>
#include <stdlib.h>

static long bpf(int cmd, union bpf_attr *a) { return syscall(__NR_bpf, cmd, a, sizeof(*a)); }

static int load(struct bpf_insn *insns, int n) {
  union bpf_attr a; memset(&a, 0, sizeof(a));
  a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER; a.insns = (unsigned long)insns; a.insn_cnt = n;
  a.license = (unsigned long)"GPL";
  return bpf(BPF_PROG_LOAD, &a);
}
static unsigned map_id(int fd) {
  struct bpf_map_info info; memset(&info, 0, sizeof(info));
  union bpf_attr a; memset(&a, 0, sizeof(a));
  a.info.bpf_fd = fd; a.info.info_len = sizeof(info); a.info.info = (unsigned long)&info;
  bpf(BPF_OBJ_GET_INFO_BY_FD, &a); return info.id;
}
static int by_id(unsigned id) { union bpf_attr a; memset(&a, 0, sizeof(a)); a.map_id = id; return bpf(BPF_MAP_GET_FD_BY_ID, &a); }

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 20, reopen = argc > 2 ? atoi(argv[2]) : 1;
  unsigned ids[1000]; int n = 0;
  for (int r = 0; r < rounds; r++) {
    union bpf_attr a; memset(&a, 0, sizeof(a));
    a.map_type = BPF_MAP_TYPE_PROG_ARRAY; a.key_size = 4; a.value_size = 4; a.max_entries = 2;
    strcpy(a.map_name, "leak_probe");
    int map = bpf(BPF_MAP_CREATE, &a);
    struct bpf_insn ret1[] = {{.code = BPF_ALU64|BPF_MOV|BPF_K, .dst_reg = 0, .imm = 1}, {.code = BPF_JMP|BPF_EXIT}};
    int target = load(ret1, 2);
    struct bpf_insn caller[] = {
      {.code = BPF_ALU64|BPF_MOV|BPF_X, .dst_reg = 6, .src_reg = 1},
      {.code = BPF_ALU64|BPF_MOV|BPF_X, .dst_reg = 1, .src_reg = 6},
      {.code = BPF_LD|BPF_DW|BPF_IMM, .dst_reg = 2, .src_reg = BPF_PSEUDO_MAP_FD, .imm = map}, {0},
      {.code = BPF_ALU64|BPF_MOV|BPF_K, .dst_reg = 3, .imm = 0},
      {.code = BPF_JMP|BPF_CALL, .imm = BPF_FUNC_tail_call},
      {.code = BPF_ALU64|BPF_MOV|BPF_K, .dst_reg = 0, .imm = 7},
      {.code = BPF_JMP|BPF_EXIT}};
    int prog = load(caller, 8);
    if (map < 0 || target < 0 || prog < 0) { perror("setup"); return 2; }
    unsigned key = 0; int val = target;
    memset(&a, 0, sizeof(a)); a.map_fd = map; a.key = (unsigned long)&key; a.value = (unsigned long)&val;
    if (bpf(BPF_MAP_UPDATE_ELEM, &a)) { perror("update"); return 2; }
    unsigned id = map_id(map);
    close(map);                       // last uref: the kernel queues the clear
    if (argc > 3) usleep(atoi(argv[3]));
    for (int i = 0; i < reopen; i++) { int fd = by_id(id); if (fd >= 0) close(fd); }  // uref 1 -> 0 again
    close(prog); close(target);
    ids[n++] = id;
  }
  sleep(2);
  int leaked = 0;
  for (int i = 0; i < n; i++) { int fd = by_id(ids[i]); if (fd >= 0) { leaked++; close(fd); } }
  printf("rounds %d, reopen %d: %d prog arrays still exist 2 s after their last user went\n", n, reopen, leaked);
  return 0;
}
