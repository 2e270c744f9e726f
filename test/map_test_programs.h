// Raw-instruction socket filters that feed maps from BPF_PROG_TEST_RUN,
// for the data-path tests of the map API, ring buffer and perf readers.
// Each copies the first `len` bytes of the test packet somewhere, so a test
// chooses a record's contents by choosing the packet.
#ifndef TETHER_TEST_MAP_TEST_PROGRAMS_H_
#define TETHER_TEST_MAP_TEST_PROGRAMS_H_

#include <sched.h>

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tether/insn.h"
#include "tether/map.h"
#include "tether/program.h"

namespace tether::testing {

inline Program MustLoad(std::vector<bpf_insn> prog, const std::string& name) {
  ProgramLoadOptions o;
  o.type = BPF_PROG_TYPE_SOCKET_FILTER;
  o.instructions = prog;
  o.name = name;
  auto p = Program::Load(o);
  INFO(p.status().ToString());
  REQUIRE(p.ok());
  return *p;
}

// Loads packet bytes [0, len) to the stack at r10 - len; r6 = ctx.
inline void AppendLoadPacketToStack(std::vector<bpf_insn>* p, int32_t len) {
  p->push_back(insn::MovReg(BPF_REG_6, BPF_REG_1));
  p->push_back(insn::MovReg(BPF_REG_1, BPF_REG_6));
  p->push_back(insn::MovImm(BPF_REG_2, 0));
  p->push_back(insn::MovReg(BPF_REG_3, BPF_REG_10));
  p->push_back(insn::AddImm(BPF_REG_3, -len));
  p->push_back(insn::MovImm(BPF_REG_4, len));
  p->push_back(insn::Call(BPF_FUNC_skb_load_bytes));
}

inline void AppendLdMap(std::vector<bpf_insn>* p, uint8_t reg, const Map& map) {
  bpf_insn two[2];
  insn::LdMapFd(reg, map.fd(), two);
  p->push_back(two[0]);
  p->push_back(two[1]);
}

// bpf_ringbuf_output(rb, packet[0:len], len, 0); len a multiple of 8.
inline Program LoadRingbufOutput(const Map& rb, int32_t len) {
  std::vector<bpf_insn> p;
  AppendLoadPacketToStack(&p, len);
  AppendLdMap(&p, BPF_REG_1, rb);
  p.push_back(insn::MovReg(BPF_REG_2, BPF_REG_10));
  p.push_back(insn::AddImm(BPF_REG_2, -len));
  p.push_back(insn::MovImm(BPF_REG_3, len));
  p.push_back(insn::MovImm(BPF_REG_4, 0));
  p.push_back(insn::Call(BPF_FUNC_ringbuf_output));
  p.push_back(insn::Exit());  // r0: 0 or the helper's -errno
  return MustLoad(std::move(p), "rb_out");
}

// Reserves len bytes, fills them from the packet, then discards the record
// if the packet's first byte is odd and submits it otherwise.
inline Program LoadRingbufReserve(const Map& rb, int32_t len) {
  std::vector<bpf_insn> p;
  p.push_back(insn::MovReg(BPF_REG_6, BPF_REG_1));
  AppendLdMap(&p, BPF_REG_1, rb);
  p.push_back(insn::MovImm(BPF_REG_2, len));
  p.push_back(insn::MovImm(BPF_REG_3, 0));
  p.push_back(insn::Call(BPF_FUNC_ringbuf_reserve));
  p.push_back(insn::JneImm(BPF_REG_0, 0, 2));
  p.push_back(insn::MovImm(BPF_REG_0, 1));  // reserve failed
  p.push_back(insn::Exit());
  p.push_back(insn::MovReg(BPF_REG_7, BPF_REG_0));
  p.push_back(insn::MovReg(BPF_REG_1, BPF_REG_6));
  p.push_back(insn::MovImm(BPF_REG_2, 0));
  p.push_back(insn::MovReg(BPF_REG_3, BPF_REG_7));
  p.push_back(insn::MovImm(BPF_REG_4, len));
  p.push_back(insn::Call(BPF_FUNC_skb_load_bytes));
  p.push_back(insn::LoadReg8(BPF_REG_3, BPF_REG_7, 0));
  p.push_back(insn::AndImm(BPF_REG_3, 1));
  p.push_back(insn::MovReg(BPF_REG_1, BPF_REG_7));
  p.push_back(insn::MovImm(BPF_REG_2, 0));
  p.push_back(insn::JeqImm(BPF_REG_3, 1, 2));
  p.push_back(insn::Call(BPF_FUNC_ringbuf_submit));
  p.push_back(insn::Ja(1));
  p.push_back(insn::Call(BPF_FUNC_ringbuf_discard));
  p.push_back(insn::MovImm(BPF_REG_0, 0));
  p.push_back(insn::Exit());
  return MustLoad(std::move(p), "rb_reserve");
}

// bpf_perf_event_output(skb, array, BPF_F_CURRENT_CPU, packet[0:len], len).
inline Program LoadPerfOutput(const Map& array, int32_t len) {
  std::vector<bpf_insn> p;
  AppendLoadPacketToStack(&p, len);
  p.push_back(insn::MovReg(BPF_REG_1, BPF_REG_6));
  AppendLdMap(&p, BPF_REG_2, array);
  // Zero-extended: the flags' upper half is a length of skb to append.
  p.push_back(insn::Mov32Imm(BPF_REG_3, -1));
  p.push_back(insn::MovReg(BPF_REG_4, BPF_REG_10));
  p.push_back(insn::AddImm(BPF_REG_4, -len));
  p.push_back(insn::MovImm(BPF_REG_5, len));
  p.push_back(insn::Call(BPF_FUNC_perf_event_output));
  p.push_back(insn::Exit());
  return MustLoad(std::move(p), "perf_out");
}

// Adds 1 to the u64 at key 0 of `map` (an array or per-CPU array).
inline Program LoadCounter(const Map& map) {
  std::vector<bpf_insn> p;
  p.push_back(insn::StoreImm32(BPF_REG_10, -4, 0));
  p.push_back(insn::MovReg(BPF_REG_2, BPF_REG_10));
  p.push_back(insn::AddImm(BPF_REG_2, -4));
  AppendLdMap(&p, BPF_REG_1, map);
  p.push_back(insn::Call(BPF_FUNC_map_lookup_elem));
  p.push_back(insn::JeqImm(BPF_REG_0, 0, 2));
  p.push_back(insn::MovImm(BPF_REG_1, 1));
  p.push_back(insn::AtomicAdd64(BPF_REG_0, 0, BPF_REG_1));
  p.push_back(insn::MovImm(BPF_REG_0, 0));
  p.push_back(insn::Exit());
  return MustLoad(std::move(p), "counter");
}

// Runs `prog` once per packet in `packets`, failing on an error or a
// non-zero return.
inline void RunEach(const Program& prog, const std::vector<std::vector<uint8_t>>& packets) {
  for (const auto& pkt : packets) {
    RunOptions o;
    o.data = pkt;
    auto r = prog.Run(o);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    REQUIRE(r->return_value == 0);
  }
}

// Pins the calling thread to one CPU for its lifetime, restoring the old
// mask after. false from ok() if the CPU is not allowed here.
class PinToCpu {
 public:
  explicit PinToCpu(uint32_t cpu) {
    CPU_ZERO(&old_);
    sched_getaffinity(0, sizeof(old_), &old_);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    ok_ = sched_setaffinity(0, sizeof(set), &set) == 0;
  }
  ~PinToCpu() { sched_setaffinity(0, sizeof(old_), &old_); }
  bool ok() const { return ok_; }

 private:
  cpu_set_t old_;
  bool ok_ = false;
};

}  // namespace tether::testing

#endif  // TETHER_TEST_MAP_TEST_PROGRAMS_H_
