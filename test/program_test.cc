#include <linux/if_ether.h>

#include "test_programs.h"
#include "test_support.h"
#include "tether/insn.h"
#include "tether/program.h"

using namespace tether;
using tether::testing::Packet;

TEST_CASE("a loaded program runs and returns its value", "[program]") {
  Program p = testing::LoadReturning(1234, "ret1234");
  CHECK(p.name() == "ret1234");
  CHECK(p.type() == BPF_PROG_TYPE_SOCKET_FILTER);
  CHECK(p.id() > 0);
  std::vector<uint8_t> pkt = Packet();
  RunOptions o;
  o.data = pkt;
  o.repeat = 10;
  auto r = p.Run(o);
  REQUIRE(r.ok());
  CHECK(r->return_value == 1234);
  CHECK(r->data_out.size() == pkt.size());
  // The kernel rebuilds the Ethernet header of a test skb; the payload
  // after it comes back untouched.
  CHECK(std::equal(pkt.begin() + ETH_HLEN, pkt.end(), r->data_out.begin() + ETH_HLEN));
}

TEST_CASE("a program that counts into a map: the kernel reports the map it uses", "[program]") {
  MapOptions mo;
  mo.type = BPF_MAP_TYPE_ARRAY;
  mo.key_size = 4;
  mo.value_size = 8;
  mo.max_entries = 1;
  mo.name = "counter";
  auto counter = Map::Create(mo);
  REQUIRE(counter.ok());

  // key = 0 on the stack; v = lookup(counter, &key); if (v) *v += 1; return 0
  bpf_insn prog[12];
  prog[0] = insn::StoreImm32(BPF_REG_10, -4, 0);
  prog[1] = insn::MovReg(BPF_REG_2, BPF_REG_10);
  prog[2] = insn::AddImm(BPF_REG_2, -4);
  insn::LdMapFd(BPF_REG_1, counter->fd(), &prog[3]);
  prog[5] = insn::Call(BPF_FUNC_map_lookup_elem);
  prog[6] = insn::JeqImm(BPF_REG_0, 0, 2);
  prog[7] = insn::MovImm(BPF_REG_1, 1);
  prog[8] = insn::AtomicAdd64(BPF_REG_0, 0, BPF_REG_1);
  prog[9] = insn::MovImm(BPF_REG_0, 0);
  prog[10] = insn::Exit();
  ProgramLoadOptions o;
  o.type = BPF_PROG_TYPE_SOCKET_FILTER;
  o.instructions = absl::MakeConstSpan(prog, 11);
  o.name = "count";
  auto p = Program::Load(o);
  INFO(p.status().ToString());
  REQUIRE(p.ok());
  CHECK(p->info().map_ids == std::vector<uint32_t>{counter->id()});

  std::vector<uint8_t> pkt = Packet();
  RunOptions ro;
  ro.data = pkt;
  ro.repeat = 5;
  REQUIRE(p->Run(ro).ok());
  uint64_t count = 0;
  REQUIRE(counter->Lookup(uint32_t{0}, &count).ok());
  CHECK(count == 5);
}

TEST_CASE("load errors name the program and explain", "[program][errors]") {
  bpf_insn bad[] = {insn::Exit()};
  ProgramLoadOptions o;
  o.type = BPF_PROG_TYPE_SOCKET_FILTER;
  o.instructions = bad;
  o.name = "no_r0";
  auto p = Program::Load(o);
  REQUIRE_FALSE(p.ok());
  CHECK(p.status().code() == absl::StatusCode::kPermissionDenied);  // EACCES from the verifier
  CHECK_THAT(std::string(p.status().message()),
             Catch::Contains("program 'no_r0'") && Catch::Contains("R0 !read_ok"));

  o.instructions = {};
  CHECK(Program::Load(o).status().code() == absl::StatusCode::kInvalidArgument);

  bpf_insn ok[] = {insn::MovImm(BPF_REG_0, 0), insn::Exit()};
  o.instructions = ok;
  o.name = "much_too_long_program_name";
  CHECK_THAT(std::string(Program::Load(o).status().message()), Catch::Contains("at most 15"));

  o.name = "unspec";
  o.type = BPF_PROG_TYPE_UNSPEC;
  CHECK_THAT(std::string(Program::Load(o).status().message()), Catch::Contains("type is unspecified"));
}

TEST_CASE("log_level > 0 returns the verifier log of a good program", "[program]") {
  bpf_insn ok[] = {insn::MovImm(BPF_REG_0, 3), insn::Exit()};
  std::string log;
  ProgramLoadOptions o;
  o.type = BPF_PROG_TYPE_SOCKET_FILTER;
  o.instructions = ok;
  o.name = "logged";
  o.log_level = 2;
  o.log = &log;
  REQUIRE(Program::Load(o).ok());
  CHECK_THAT(log, Catch::Contains("processed 2 insns"));
}

TEST_CASE("a run with too small an output buffer says so", "[program][errors]") {
  Program p = testing::LoadReturning(0, "small_out");
  std::vector<uint8_t> pkt = Packet();
  RunOptions o;
  o.data = pkt;
  o.data_out_capacity = 4;
  auto r = p.Run(o);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(std::string(r.status().message()), Catch::Contains("ENOSPC") && Catch::Contains("too small"));
}
