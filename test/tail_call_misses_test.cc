// Tail-call miss counters (docs/lifecycle.md, "Tail-call miss counters"):
// every cause of a miss is counted exactly, on the live kernel, and a
// program's counts can be found from the program alone.
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "catch2/catch.hpp"
#include "cli_support.h"
#include "load/miss_counters.h"
#include "sys/bpf.h"
#include "test_programs.h"
#include "test_support.h"
#include "tether/collection.h"
#include "tether/graph.h"
#include "tether/graph_metrics.h"
#include "tether/insn.h"
#include "tether/lifetime.h"
#include "tether/prog_array.h"
#include "tether/system_graph.h"

namespace tether {
namespace {

CollectionSpec MissSpec() {
  auto spec = CollectionSpec::FromFile(testing::BpfObjectPath("tail_call_misses"));
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  return *std::move(spec);
}

Collection LoadMisses(const CollectionOptions& o = {}) {
  auto coll = Collection::Load(MissSpec(), o);
  INFO(coll.status().ToString());
  REQUIRE(coll.ok());
  return *std::move(coll);
}

// Runs `p` once with `repeat` repetitions; returns its return value.
uint32_t RunRepeated(const Program& p, uint32_t repeat, size_t packet_size = 64) {
  std::vector<uint8_t> pkt(packet_size, 0xab);
  RunOptions o;
  o.data = pkt;
  o.repeat = repeat;
  auto r = p.Run(o);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return r->return_value;
}

// The site of `program` in `sites` whose function is `function`.
TailCallSite SiteOf(const std::vector<TailCallSite>& sites, const std::string& program,
                    const std::string& function = "") {
  std::vector<TailCallSite> found;
  for (const TailCallSite& s : sites)
    if (s.program == program && (function.empty() || s.function == function)) found.push_back(s);
  INFO(program << " " << function);
  REQUIRE(found.size() == 1);
  return found[0];
}

uint64_t MissesOf(const Collection& c, const std::string& program, const std::string& function = "") {
  auto sites = c.TailCallMisses();
  INFO(sites.status().ToString());
  REQUIRE(sites.ok());
  return SiteOf(*sites, program, function).misses;
}

// The line of test/bpf/tail_call_misses.bpf.c that carries "SITE:<marker>".
uint32_t SourceLine(const std::string& marker) {
  std::ifstream in(std::string(TETHER_SOURCE_DIR) + "/test/bpf/tail_call_misses.bpf.c");
  std::string line;
  for (uint32_t n = 1; std::getline(in, line); ++n)
    if (line.find("SITE:" + marker) != std::string::npos) return n;
  FAIL("no SITE:" << marker);
  return 0;
}

ProgramArray ArrayOf(const Collection& c, const std::string& name) {
  auto a = ProgramArray::FromMap(c.map(name), /*read_entries=*/false);
  REQUIRE(a.ok());
  return *std::move(a);
}

bool UsesMapNamed(const Program& p, const std::string& name) {
  for (uint32_t id : p.info().map_ids) {
    auto fd = sys::GetFdById(sys::ObjectKind::kMap, id);
    if (!fd.ok()) continue;
    auto info = sys::GetMapInfo(fd->get());
    if (info.ok() && std::string(info->name) == name) return true;
  }
  return false;
}

TEST_CASE("an empty slot and an index out of range are each counted exactly", "[tail_call_misses]") {
  Collection c = LoadMisses();
  REQUIRE(c.tail_call_miss_map());
  CHECK(c.tail_call_miss_map().name() == "tether_misses");
  CHECK(c.maps().count("tether_misses") == 0);
  CHECK(RunRepeated(c.program("tcm_empty"), 5) == 7);
  CHECK(MissesOf(c, "tcm_empty") == 5);
  CHECK(RunRepeated(c.program("tcm_range"), 3) == 8);
  CHECK(MissesOf(c, "tcm_range") == 3);
  CHECK(RunRepeated(c.program("tcm_empty"), 1) == 7);
  CHECK(MissesOf(c, "tcm_empty") == 6);
  CHECK(MissesOf(c, "tcm_hit") == 0);  // never run

  // A hit costs no count.
  REQUIRE(ArrayOf(c, "tcm_table").Set(0, c.program("tcm_target")).ok());
  CHECK(RunRepeated(c.program("tcm_hit"), 10) == 42);
  CHECK(MissesOf(c, "tcm_hit") == 0);
  REQUIRE(ArrayOf(c, "tcm_table").Delete(0).ok());
}

TEST_CASE("the 33-call limit misses exactly once per run of a self tail call", "[tail_call_misses]") {
  Collection c = LoadMisses();
  ProgramArray self = ArrayOf(c, "tcm_self");
  REQUIRE(self.Set(0, c.program("tcm_recurse")).ok());
  CHECK(RunRepeated(c.program("tcm_recurse"), 1) == 5);
  CHECK(MissesOf(c, "tcm_recurse") == 1);
  CHECK(RunRepeated(c.program("tcm_recurse"), 7) == 5);
  CHECK(MissesOf(c, "tcm_recurse") == 8);
  REQUIRE(self.Delete(0).ok());  // break the cycle before the handles go
}

TEST_CASE("a cleared array: the graph warns first, then every run is a counted miss", "[tail_call_misses]") {
  LifetimePolicy saved = graph().default_policy();
  graph().SetDefaultPolicy(LifetimePolicy::kWarn);
  std::vector<Diagnostic> seen;
  SetDiagnosticSink([&](const Diagnostic& d) { seen.push_back(d); });
  Program hit, target;
  {
    Collection c = LoadMisses();
    hit = c.program("tcm_hit");
    target = c.program("tcm_target");
    REQUIRE(ArrayOf(c, "tcm_table").Set(0, target).ok());
    REQUIRE(RunRepeated(hit, 1) == 42);
    // The collection's handles go: the array's last handle, while tcm_hit
    // lives on this process's handle only, so the verdict is deferred.
  }
  // Settling it is the last user reference: the warning, then the clear.
  CHECK(graph().SettleDeferred() >= 1);
  SetDiagnosticSink(nullptr);
  graph().SetDefaultPolicy(saved);
  REQUIRE(seen.size() >= 1);
  CHECK(seen[0].kind == Diagnostic::Kind::kProgramArrayOrphaned);
  CHECK(seen[0].map_name == "tcm_table");
  REQUIRE(testing::Eventually([&] { return RunRepeated(hit, 1) == 9; }));
  auto before = TailCallMisses(hit);
  INFO(before.status().ToString());
  REQUIRE(before.ok());
  REQUIRE(before->size() == 1);
  CHECK((*before)[0].misses >= 1);
  CHECK(RunRepeated(hit, 25) == 9);
  auto after = TailCallMisses(hit);
  REQUIRE(after.ok());
  REQUIRE(after->size() == 1);
  CHECK((*after)[0].misses == (*before)[0].misses + 25);
  CHECK((*after)[0].array == "tcm_table");
}

TEST_CASE("sub-program tail calls are counted per site and per program", "[tail_call_misses]") {
  Collection c = LoadMisses();
  CHECK(RunRepeated(c.program("tcm_sub"), 4) == 22);
  CHECK(MissesOf(c, "tcm_sub", "tcm_sub_call") == 8);  // two calls per run
  CHECK(MissesOf(c, "tcm_sub", "tcm_sub") == 4);
}

TEST_CASE("callee-saved registers survive a counted miss", "[tail_call_misses]") {
  Collection c = LoadMisses();
  // A socket filter's skb->len is the packet less its Ethernet header.
  CHECK(RunRepeated(c.program("tcm_saved"), 2, 64) == (64 - 14) * 3 + 1);
  CHECK(RunRepeated(c.program("tcm_saved"), 1, 100) == (100 - 14) * 3 + 1);
  CHECK(MissesOf(c, "tcm_saved") == 3);
}

TEST_CASE("each site knows its program, function, array and source line", "[tail_call_misses]") {
  CollectionSpec spec = MissSpec();
  REQUIRE(spec.btf);  // built with -g: the kernel checked func_info and line_info
  Collection c = LoadMisses();
  auto sites = c.TailCallMisses();
  REQUIRE(sites.ok());
  CHECK(sites->size() == 7);  // empty, range, hit, recurse, saved, and two in tcm_sub
  struct Want {
    const char* program;
    const char* function;
    const char* marker;
    const char* array;
  };
  for (const Want& w : {Want{"tcm_empty", "tcm_empty", "empty", "tcm_table"},
                        Want{"tcm_range", "tcm_range", "range", "tcm_table"},
                        Want{"tcm_hit", "tcm_hit", "hit", "tcm_table"},
                        Want{"tcm_recurse", "tcm_recurse", "recurse", "tcm_self"},
                        Want{"tcm_sub", "tcm_sub_call", "sub", "tcm_table"},
                        Want{"tcm_sub", "tcm_sub", "main", "tcm_table"},
                        Want{"tcm_saved", "tcm_saved", "saved", "tcm_table"}}) {
    TailCallSite s = SiteOf(*sites, w.program, w.function);
    INFO(w.program << " " << w.function);
    CHECK(s.line == SourceLine(w.marker));
    CHECK(s.file == "tail_call_misses.bpf.c");
    CHECK(s.array == w.array);
    CHECK(s.array_id == c.map(w.array).id());
  }
  // The kernel took the shifted func_info and line_info: the programs carry BTF.
  CHECK(c.program("tcm_sub").info().btf_id != 0);
  // Every index once, in order.
  for (size_t i = 0; i < sites->size(); ++i) CHECK((*sites)[i].index == i);
}

TEST_CASE("the verifier log still maps instructions to the right source lines", "[tail_call_misses]") {
  CollectionOptions o;
  o.log_level = 2;
  Collection c = LoadMisses(o);
  const std::string& log = c.verifier_log("tcm_range");
  INFO(log);
  size_t call = log.find("SITE:range");
  size_t counter = log.find("lock *(u64 *)(r1 +0) += r2", call);
  size_t after = log.find("return 8;", call);
  REQUIRE(call != std::string::npos);
  CHECK(counter != std::string::npos);
  CHECK(after != std::string::npos);
  CHECK(counter < after);  // the counter runs under the call's line, then "return 8"
}

TEST_CASE("the inserted code is four instructions per site and touches only R1 and R2", "[tail_call_misses]") {
  CollectionSpec spec = MissSpec();
  auto linked = LinkProgram(spec, "tcm_sub");
  REQUIRE(linked.ok());
  LinkedProgram before = *linked;
  std::vector<TailCallSite> sites;
  REQUIRE(detail::InsertMissCounters("tcm_sub", *linked, &*spec.btf, &sites).ok());
  REQUIRE(sites.size() == 2);
  CHECK(linked->insns.size() == before.insns.size() + 2 * detail::kCounterInsns);
  for (const TailCallSite& s : sites) {
    const bpf_insn* counter = &linked->insns[s.insn + 1];
    CHECK(counter[0].code == (BPF_LD | BPF_IMM | BPF_DW));
    CHECK(counter[0].dst_reg == BPF_REG_1);
    CHECK(counter[0].src_reg == BPF_PSEUDO_MAP_VALUE);
    CHECK(counter[1].imm == static_cast<int32_t>(s.index * 8));
    CHECK(counter[2].dst_reg == BPF_REG_2);
    CHECK(counter[3].code == (BPF_STX | BPF_ATOMIC | BPF_DW));
    CHECK(counter[3].dst_reg == BPF_REG_1);
    CHECK(counter[3].src_reg == BPF_REG_2);
  }
  // Every record and fixup of the original moved with its instruction.
  REQUIRE(linked->func_info.size() == before.func_info.size());
  REQUIRE(linked->line_info.size() == before.line_info.size());
  for (size_t i = 0; i < before.line_info.size(); ++i) {
    uint32_t old_at = before.line_info[i].insn_off;
    uint32_t moved = linked->line_info[i].insn_off - old_at;
    uint32_t calls_before = 0;
    for (const TailCallSite& s : sites) calls_before += s.insn < linked->line_info[i].insn_off;
    CHECK(moved == calls_before * detail::kCounterInsns);
  }
  for (size_t i = 0; i < before.fixups.size(); ++i) {
    const bpf_insn& a = before.insns[before.fixups[i].insn];
    const bpf_insn& b = linked->insns[linked->fixups[i].insn];
    CHECK(a.code == b.code);
    CHECK(a.src_reg == b.src_reg);
  }
}

// Hand-assembled: a branch from elsewhere targets the instruction right
// after the call; it must land after the counter.
TEST_CASE("a jump to the instruction after the call does not count a miss", "[tail_call_misses]") {
  CollectionSpec spec;
  spec.license = "GPL";
  spec.source = "hand-assembled";
  MapSpec array;
  array.name = "hand_table";
  array.type = BPF_MAP_TYPE_PROG_ARRAY;
  array.key_size = array.value_size = 4;
  array.max_entries = 2;
  spec.maps["hand_table"] = std::move(array);
  ProgramSpec p;
  p.name = "hand_jump";
  p.section = "socket";
  p.type = BPF_PROG_TYPE_SOCKET_FILTER;
  bpf_insn ld_map[2] = {};
  ld_map[0].code = BPF_LD | BPF_IMM | BPF_DW;
  ld_map[0].dst_reg = BPF_REG_2;
  bpf_insn call{};
  call.code = BPF_JMP | BPF_CALL;
  call.imm = BPF_FUNC_tail_call;
  bpf_insn load_len{};
  load_len.code = BPF_LDX | BPF_MEM | BPF_W;
  load_len.dst_reg = BPF_REG_7;
  load_len.src_reg = BPF_REG_6;
  load_len.off = offsetof(struct __sk_buff, len);
  bpf_insn skip{};  // if r7 > 100 goto +5: to insn 8, right after the call
  skip.code = BPF_JMP | BPF_JGT | BPF_K;
  skip.dst_reg = BPF_REG_7;
  skip.imm = 100;
  skip.off = 5;
  p.code.insns = {insn::MovReg(BPF_REG_6, BPF_REG_1),  // 0
                  load_len,                            // 1
                  skip,                                // 2
                  insn::MovReg(BPF_REG_1, BPF_REG_6),  // 3
                  ld_map[0], ld_map[1],                // 4, 5
                  insn::MovImm(BPF_REG_3, 1),          // 6: slot 1 is empty
                  call,                                // 7
                  insn::MovImm(BPF_REG_0, 3),          // 8
                  insn::Exit()};                       // 9
  p.code.references.push_back({4, ReferenceKind::kMap, "hand_table", 0});
  spec.programs["hand_jump"] = std::move(p);
  auto c = Collection::Load(spec);
  INFO(c.status().ToString());
  REQUIRE(c.ok());
  auto sites = c->TailCallMisses();
  REQUIRE(sites.ok());
  REQUIRE(sites->size() == 1);
  CHECK((*sites)[0].array == "hand_table");
  CHECK((*sites)[0].insn == 7);
  Program prog = c->program("hand_jump");
  CHECK(RunRepeated(prog, 6, 64) == 3);   // through the call: misses
  CHECK(RunRepeated(prog, 4, 200) == 3);  // the jump over it: no miss
  CHECK(MissesOf(*c, "hand_jump") == 6);
}

TEST_CASE("the option off inserts nothing and makes no counter map", "[tail_call_misses]") {
  CollectionOptions off;
  off.count_tail_call_misses = false;
  Collection without = LoadMisses(off);
  Collection with = LoadMisses();
  CHECK_FALSE(without.tail_call_miss_map());
  auto none = without.TailCallMisses();
  REQUIRE(none.ok());
  CHECK(none->empty());
  CHECK_FALSE(UsesMapNamed(without.program("tcm_empty"), "tether_misses"));
  CHECK(UsesMapNamed(with.program("tcm_empty"), "tether_misses"));
  auto xlated = [](const Program& p) {
    auto info = sys::GetProgInfo(p.fd());
    REQUIRE(info.ok());
    return info->xlated_prog_len / 8;
  };
  CHECK(xlated(with.program("tcm_empty")) == xlated(without.program("tcm_empty")) + detail::kCounterInsns);
  CHECK(xlated(with.program("tcm_plain")) == xlated(without.program("tcm_plain")));
  CHECK(RunRepeated(without.program("tcm_empty"), 3) == 7);
  auto from_program = TailCallMisses(without.program("tcm_empty"));
  REQUIRE(from_program.ok());
  CHECK(from_program->empty());
}

TEST_CASE("a collection with no tail call has no counter map", "[tail_call_misses]") {
  CollectionSpec spec = MissSpec();
  for (auto it = spec.programs.begin(); it != spec.programs.end();) {
    it = it->first == "tcm_plain" ? std::next(it) : spec.programs.erase(it);
  }
  auto c = Collection::Load(spec);
  INFO(c.status().ToString());
  REQUIRE(c.ok());
  CHECK_FALSE(c->tail_call_miss_map());
  CHECK_FALSE(UsesMapNamed(c->program("tcm_plain"), "tether_misses"));
  auto sites = c->TailCallMisses();
  REQUIRE(sites.ok());
  CHECK(sites->empty());
}

TEST_CASE("another process finds a program's site table and counts", "[tail_call_misses]") {
  Collection c = LoadMisses();
  REQUIRE(RunRepeated(c.program("tcm_range"), 11) == 8);
  uint32_t id = c.program("tcm_range").id();
  uint32_t line = SourceLine("range");
  // A forked child knows only the id: it opens the program and reads.
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    auto p = Program::FromId(id);
    if (!p.ok()) _exit(10);
    auto sites = TailCallMisses(*p);
    if (!sites.ok() || sites->size() != 1) _exit(11);
    const TailCallSite& s = (*sites)[0];
    if (s.misses != 11) _exit(12);
    if (s.program != "tcm_range" || s.function != "tcm_range" || s.array != "tcm_table") _exit(13);
    if (s.line != line || s.file != "tail_call_misses.bpf.c") _exit(14);
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("tether graph and explain show the counts of a program this process loaded", "[tail_call_misses][cli]") {
  Collection c = LoadMisses();
  REQUIRE(RunRepeated(c.program("tcm_empty"), 13) == 7);
  uint32_t prog = c.program("tcm_empty").id();
  uint32_t table = c.map("tcm_table").id();
  std::string edge = "\"from\": \"program:" + std::to_string(prog) + "\", \"to\": \"map:" +
                     std::to_string(table) + "\", \"kind\": \"uses_map\", \"slot\": 0, \"tail_call_misses\": 13}";
  testing::CliResult json = testing::RunCli("graph --format json");
  REQUIRE(json.exit_code == 0);
  CHECK_THAT(json.out, Catch::Contains(edge));
  CHECK_THAT(json.out, Catch::Contains("\"function\": \"tcm_empty\", \"insn\": ") &&
                           Catch::Contains("\"line\": " + std::to_string(SourceLine("empty")) +
                                           ", \"array\": \"tcm_table\", \"array_id\": " +
                                           std::to_string(table) + ", \"misses\": 13}"));

  testing::CliResult metrics = testing::RunCli("graph --format openmetrics");
  REQUIRE(metrics.exit_code == 0);
  CHECK_THAT(metrics.out, Catch::Contains("# TYPE tether_tail_call_misses counter"));
  std::string sample = "tether_tail_call_misses_total{program=\"tcm_empty\",program_id=\"" +
                       std::to_string(prog) + "\",site=";
  size_t at = metrics.out.find(sample);
  REQUIRE(at != std::string::npos);
  std::string line = metrics.out.substr(at, metrics.out.find('\n', at) - at);
  CHECK_THAT(line, Catch::Contains("array=\"tcm_table\"") && Catch::EndsWith("} 13"));

  testing::CliResult text = testing::RunCli("graph --all");
  REQUIRE(text.exit_code == 0);
  CHECK_THAT(text.out, Catch::Contains("[13 tail-call miss(es)]"));
  CHECK_THAT(text.out, Catch::Contains("(tail_call_misses.bpf.c:" + std::to_string(SourceLine("empty")) +
                                       ") through tcm_table: 13 miss(es)"));

  testing::CliResult dot = testing::RunCli("graph --all --format dot");
  REQUIRE(dot.exit_code == 0);
  CHECK_THAT(dot.out, Catch::Contains("\"program:" + std::to_string(prog) + "\" -> \"map:" +
                                      std::to_string(table) + "\" [label=\"13 miss(es)\""));

  testing::CliResult explain = testing::RunCli("explain prog " + std::to_string(prog));
  REQUIRE(explain.exit_code == 0);
  CHECK_THAT(explain.out, Catch::Contains("tail-call misses") &&
                              Catch::Contains("through tcm_table (id " + std::to_string(table) +
                                              "): 13 miss(es)"));
}

TEST_CASE("the process graph shows the counts of this process's programs", "[tail_call_misses][graph]") {
  Collection c = LoadMisses();
  REQUIRE(RunRepeated(c.program("tcm_range"), 17) == 8);
  uint32_t prog = c.program("tcm_range").id();
  uint32_t table = c.map("tcm_table").id();
  std::string text = graph().ToText();
  std::string block = testing::BlockOf(text, "program 'tcm_range' (id " + std::to_string(prog) + ")");
  INFO(text);
  CHECK_THAT(block, Catch::Contains("(id " + std::to_string(table) + ") [17 tail-call miss(es)]") &&
                        Catch::Contains("through tcm_table: 17 miss(es)"));
  CHECK_THAT(graph().ToJson(), Catch::Contains("\"to\": \"map:" + std::to_string(table) +
                                               "\", \"kind\": \"uses_map\", \"slot\": 0, \"tail_call_misses\": 17}"));
  CHECK_THAT(ToOpenMetrics(graph()),
             Catch::Contains("tether_tail_call_misses_total{program=\"tcm_range\",program_id=\"" +
                             std::to_string(prog) + "\""));
}

TEST_CASE("site names survive hostile text", "[tail_call_misses]") {
  TailCallSite s;
  s.program = "a_b.c\n\"x";
  s.function = "__";
  s.insn = 1234;
  s.line = 77;
  s.array = "";
  s.file = "f_z_Z.c";
  std::string name = detail::EncodeSiteName(s);
  for (char ch : name) CHECK((isalnum(static_cast<unsigned char>(ch)) || ch == '_'));
  auto back = detail::DecodeSiteName(name);
  INFO(name);
  REQUIRE(back.ok());
  CHECK(back->program == s.program);
  CHECK(back->function == s.function);
  CHECK(back->insn == 1234);
  CHECK(back->line == 77);
  CHECK(back->array.empty());
  CHECK(back->file == s.file);
  for (const char* bad : {"", "site", "site_q", "site_z1_z2", "nope_za_zb_z1_z2_zc_zd", "site_za_"}) {
    CHECK_FALSE(detail::DecodeSiteName(bad).ok());
  }
  auto empty = TailCallMisses(Program());
  CHECK(empty.status().code() == absl::StatusCode::kInvalidArgument);
  TailCallSite long_one;
  long_one.program = std::string(300, 'p');
  long_one.function = std::string(300, '.');
  long_one.array = std::string(300, '_');
  long_one.file = std::string(300, 'f');
  long_one.insn = 4000000000u;
  long_one.line = 4000000000u;
  CHECK(detail::EncodeSiteName(long_one).size() < 128);  // the kernel's identifier limit before 6.1
  CHECK(detail::DecodeSiteName(detail::EncodeSiteName(long_one)).ok());
}

}  // namespace
}  // namespace tether
