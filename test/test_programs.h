// Tiny programs built from raw instructions, for tests that must not
// depend on the ELF loader.
#ifndef TETHER_TEST_TEST_PROGRAMS_H_
#define TETHER_TEST_TEST_PROGRAMS_H_

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tether/insn.h"
#include "tether/map.h"
#include "tether/prog_array.h"
#include "tether/program.h"

namespace tether::testing {

// Socket filters run under BPF_PROG_TEST_RUN with any packet >= 14 bytes.
inline std::vector<uint8_t> Packet() { return std::vector<uint8_t>(64, 0xab); }

// Returns `value`, as a program of `type`. The Try forms assert nothing,
// so threads may call them (Catch2's assertions are not thread-safe).
inline absl::StatusOr<Program> TryLoadReturning(int32_t value, const std::string& name = "ret",
                                                uint32_t type = BPF_PROG_TYPE_SOCKET_FILTER) {
  bpf_insn prog[] = {insn::MovImm(BPF_REG_0, value), insn::Exit()};
  ProgramLoadOptions o;
  o.type = type;
  o.instructions = prog;
  o.name = name;
  return Program::Load(o);
}

inline Program LoadReturning(int32_t value, const std::string& name = "ret",
                             uint32_t type = BPF_PROG_TYPE_SOCKET_FILTER) {
  auto p = TryLoadReturning(value, name, type);
  INFO(p.status().ToString());
  REQUIRE(p.ok());
  return *p;
}

// Tail-calls through `array` at `slot`; returns `fallthrough` on a miss.
inline absl::StatusOr<Program> TryLoadTailCaller(const Map& array, uint32_t slot,
                                                 int32_t fallthrough,
                                                 const std::string& name = "caller") {
  bpf_insn prog[8];
  prog[0] = insn::MovReg(BPF_REG_6, BPF_REG_1);
  prog[1] = insn::MovReg(BPF_REG_1, BPF_REG_6);
  insn::LdMapFd(BPF_REG_2, array.fd(), &prog[2]);
  prog[4] = insn::MovImm(BPF_REG_3, static_cast<int32_t>(slot));
  prog[5] = insn::Call(BPF_FUNC_tail_call);
  prog[6] = insn::MovImm(BPF_REG_0, fallthrough);
  prog[7] = insn::Exit();
  ProgramLoadOptions o;
  o.type = BPF_PROG_TYPE_SOCKET_FILTER;
  o.instructions = prog;
  o.name = name;
  return Program::Load(o);
}

inline Program LoadTailCaller(const Map& array, uint32_t slot, int32_t fallthrough,
                              const std::string& name = "caller") {
  auto p = TryLoadTailCaller(array, slot, fallthrough, name);
  INFO(p.status().ToString());
  REQUIRE(p.ok());
  return *p;
}

inline uint32_t RunValue(const Program& p) {
  std::vector<uint8_t> pkt = Packet();
  RunOptions o;
  o.data = pkt;
  auto r = p.Run(o);
  REQUIRE(r.ok());
  return r->return_value;
}

// True if the kernel still has an object of this kind and id.
bool KernelHasMap(uint32_t id);
bool KernelHasProgram(uint32_t id);

}  // namespace tether::testing

#endif  // TETHER_TEST_TEST_PROGRAMS_H_
