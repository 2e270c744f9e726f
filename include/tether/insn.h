// Builders for raw BPF instructions, for programs written in C++ rather
// than compiled from C: tests, probes and tiny helpers.
#ifndef TETHER_INSN_H_
#define TETHER_INSN_H_

#include <linux/bpf.h>

#include <cstdint>

namespace tether::insn {

constexpr bpf_insn Make(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn i{};
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}

// dst = imm (64-bit move of a sign-extended 32-bit immediate).
constexpr bpf_insn MovImm(uint8_t dst, int32_t imm) {
  return Make(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm);
}
constexpr bpf_insn MovReg(uint8_t dst, uint8_t src) {
  return Make(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0);
}
constexpr bpf_insn AddImm(uint8_t dst, int32_t imm) {
  return Make(BPF_ALU64 | BPF_ADD | BPF_K, dst, 0, 0, imm);
}
// dst = (u32)imm, zero-extended: the way to get 0xffffffff without the
// sign extension of MovImm (e.g. BPF_F_CURRENT_CPU).
constexpr bpf_insn Mov32Imm(uint8_t dst, int32_t imm) {
  return Make(BPF_ALU | BPF_MOV | BPF_K, dst, 0, 0, imm);
}
constexpr bpf_insn AndImm(uint8_t dst, int32_t imm) {
  return Make(BPF_ALU64 | BPF_AND | BPF_K, dst, 0, 0, imm);
}
constexpr bpf_insn Call(int32_t helper) { return Make(BPF_JMP | BPF_CALL, 0, 0, 0, helper); }
constexpr bpf_insn Exit() { return Make(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }
// if dst == imm goto +off
constexpr bpf_insn JeqImm(uint8_t dst, int32_t imm, int16_t off) {
  return Make(BPF_JMP | BPF_JEQ | BPF_K, dst, 0, off, imm);
}
// if dst != imm goto +off
constexpr bpf_insn JneImm(uint8_t dst, int32_t imm, int16_t off) {
  return Make(BPF_JMP | BPF_JNE | BPF_K, dst, 0, off, imm);
}
constexpr bpf_insn Ja(int16_t off) { return Make(BPF_JMP | BPF_JA, 0, 0, off, 0); }
// *(u32 *)(dst + off) = imm
constexpr bpf_insn StoreImm32(uint8_t dst, int16_t off, int32_t imm) {
  return Make(BPF_ST | BPF_MEM | BPF_W, dst, 0, off, imm);
}
// *(u64 *)(dst + off) = imm (sign-extended)
constexpr bpf_insn StoreImm64(uint8_t dst, int16_t off, int32_t imm) {
  return Make(BPF_ST | BPF_MEM | BPF_DW, dst, 0, off, imm);
}
// *(u32 *)(dst + off) = src
constexpr bpf_insn StoreReg32(uint8_t dst, int16_t off, uint8_t src) {
  return Make(BPF_STX | BPF_MEM | BPF_W, dst, src, off, 0);
}
// dst = *(u8 *)(src + off)
constexpr bpf_insn LoadReg8(uint8_t dst, uint8_t src, int16_t off) {
  return Make(BPF_LDX | BPF_MEM | BPF_B, dst, src, off, 0);
}
// dst = *(u32 *)(src + off)
constexpr bpf_insn LoadReg32(uint8_t dst, uint8_t src, int16_t off) {
  return Make(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0);
}
// *(u64 *)(dst + off) = src
constexpr bpf_insn StoreReg64(uint8_t dst, int16_t off, uint8_t src) {
  return Make(BPF_STX | BPF_MEM | BPF_DW, dst, src, off, 0);
}
// dst = *(u64 *)(src + off)
constexpr bpf_insn LoadReg64(uint8_t dst, uint8_t src, int16_t off) {
  return Make(BPF_LDX | BPF_MEM | BPF_DW, dst, src, off, 0);
}
// lock *(u64 *)(dst + off) += src
constexpr bpf_insn AtomicAdd64(uint8_t dst, int16_t off, uint8_t src) {
  return Make(BPF_STX | BPF_ATOMIC | BPF_DW, dst, src, off, BPF_ADD);
}

// dst = map (a two-slot ld_imm64 with BPF_PSEUDO_MAP_FD). Write both
// halves: `LdMapFd(dst, fd, &prog[i])` fills prog[i] and prog[i + 1].
inline void LdMapFd(uint8_t dst, int fd, bpf_insn* two) {
  two[0] = Make(BPF_LD | BPF_DW | BPF_IMM, dst, BPF_PSEUDO_MAP_FD, 0, fd);
  two[1] = Make(0, 0, 0, 0, 0);
}

}  // namespace tether::insn

#endif  // TETHER_INSN_H_
