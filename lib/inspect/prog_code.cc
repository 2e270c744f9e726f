// Which maps a program tail-calls through, from its translated code: the
// scan learns that a map is a program array without opening it (opening an
// array that just lost its last user reference can leak it; docs/repro/).
#include <linux/bpf.h>

#include <algorithm>
#include <cstring>

#include "base/status_macros.h"
#include "inspect/scan_internal.h"
#include "sys/bpf.h"

namespace tether::inspect {

absl::StatusOr<std::vector<uint32_t>> TailCallMapIds(int prog_fd, uint32_t xlated_len) {
  TETHER_ASSIGN_OR_RETURN(std::vector<bpf_insn> code, sys::GetTranslatedCode(prog_fd, xlated_len));
  // The map each register holds, followed straight through the code: the
  // compiler loads a tail call's array into R2 right before the call.
  uint32_t reg_map[MAX_BPF_REG] = {0};
  std::vector<uint32_t> ids;
  for (size_t i = 0; i < code.size(); ++i) {
    const bpf_insn& in = code[i];
    uint8_t cls = BPF_CLASS(in.code);
    if (in.code == (BPF_LD | BPF_IMM | BPF_DW)) {
      // The kernel dumps a map reference as its id with BPF_PSEUDO_MAP_FD.
      if (in.dst_reg < MAX_BPF_REG)
        reg_map[in.dst_reg] = in.src_reg == BPF_PSEUDO_MAP_FD ? static_cast<uint32_t>(in.imm) : 0;
      ++i;
    } else if (in.code == (BPF_ALU64 | BPF_MOV | BPF_X) && in.off == 0) {
      if (in.dst_reg < MAX_BPF_REG && in.src_reg < MAX_BPF_REG) reg_map[in.dst_reg] = reg_map[in.src_reg];
    } else if (in.code == (BPF_JMP | BPF_CALL)) {
      // Without raw dumps (kptr_restrict) the kernel zeroes helper ids.
      bool tail_call = in.src_reg == 0 && (in.imm == BPF_FUNC_tail_call || in.imm == 0);
      if (tail_call && reg_map[BPF_REG_2] != 0) ids.push_back(reg_map[BPF_REG_2]);
      for (int r = BPF_REG_0; r <= BPF_REG_5; ++r) reg_map[r] = 0;
    } else if ((cls == BPF_ALU || cls == BPF_ALU64 || cls == BPF_LDX || cls == BPF_LD) &&
               in.dst_reg < MAX_BPF_REG) {
      reg_map[in.dst_reg] = 0;
    }
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

}  // namespace tether::inspect
