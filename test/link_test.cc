// Links on the live kernel: each test attaches, makes the hook fire, and
// reads what the program did (a counter map, a dropped packet, a refused
// socket), then shows the effect stop when the link goes.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/btf.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "link_fixtures.h"
#include "sys/bpf.h"
#include "test_programs.h"
#include "test_support.h"
#include "tether/attach.h"
#include "tether/graph.h"
#include "tether/link.h"
#include "tether/probe.h"

using namespace tether;
using testing::CounterMap;
using testing::CounterProgram;
using testing::Eventually;
using testing::KernelHasLink;
using testing::LoadCounter;
using testing::ReadCounter;

// uprobe targets: real functions in this binary, kept out of line.
extern "C" __attribute__((noinline, used)) int tether_uprobe_target_one(int x) {
  asm volatile("" ::: "memory");
  return x + 1;
}
extern "C" __attribute__((noinline, used)) int tether_uprobe_target_two(int x) {
  asm volatile("" ::: "memory");
  return x + 2;
}

namespace {

constexpr int32_t kXdpDrop = 1;
constexpr int32_t kXdpPass = 2;

// Skips (via the probe) when the kernel lacks the kind; fails when the
// probe itself could not run.
#define REQUIRE_LINK_KIND(kind) \
  TETHER_REQUIRE_FEATURE(probe::LinkKindName(kind), probe::HaveLinkKind(kind))

void Getpids(int n) {
  for (int i = 0; i < n; ++i) syscall(SYS_getpid);
}

bool ExplainMentions(const Program& p, const std::string& needle) {
  return absl::StrContains(graph().Explain(p).ToString(), needle);
}

}  // namespace

// --- XDP -----------------------------------------------------------------------

TEST_CASE("xdp link counts packets on a veth and drop stops them", "[link][xdp]") {
  REQUIRE_LINK_KIND(probe::LinkKind::kXdp);
  testing::VethPair net;
  Map counter = CounterMap("xdp_count");
  Program pass = LoadCounter(counter, {BPF_PROG_TYPE_XDP, 0, 0, kXdpPass, "xdp_pass"});
  int rx = net.ReceiverInB(4000);

  Link link;
  net.b.Run([&] {
    auto l = AttachXdp(pass, net.ifindex_b);
    if (l.ok()) link = *l;
  });
  REQUIRE(link);
  CHECK(link.type() == BPF_LINK_TYPE_XDP);
  CHECK(link.info().prog_id == pass.id());
  CHECK(link.info().target == "ifindex " + std::to_string(net.ifindex_b));

  net.SendAtoB(4000, 5);
  CHECK(Eventually([&] { return ReadCounter(counter) >= 5; }));
  CHECK(testing::ReceiveOne(rx));  // passed

  // Swap in a dropping program: packets are counted and never arrive.
  Map dropped = CounterMap("xdp_drops");
  Program drop = LoadCounter(dropped, {BPF_PROG_TYPE_XDP, 0, 0, kXdpDrop, "xdp_drop"});
  REQUIRE_OK(link.Update(drop));
  while (testing::ReceiveOne(rx)) {}
  net.SendAtoB(4000, 3);
  CHECK(Eventually([&] { return ReadCounter(dropped) >= 3; }));
  CHECK_FALSE(testing::ReceiveOne(rx));

  // Dropping the only handle detaches: traffic flows again, uncounted.
  link = Link();
  uint64_t before = ReadCounter(dropped);
  net.SendAtoB(4000, 3);
  CHECK(testing::ReceiveOne(rx));
  CHECK(ReadCounter(dropped) == before);
  close(rx);
}

TEST_CASE("a pinned xdp link keeps counting after every handle is gone", "[link][xdp][pin]") {
  REQUIRE_LINK_KIND(probe::LinkKind::kXdp);
  testing::VethPair net;
  testing::TempPinDir dir;
  uint32_t link_id = 0, map_id = 0, prog_id = 0;
  {
    Map counter = CounterMap("xdp_pinned");
    Program prog = LoadCounter(counter, {BPF_PROG_TYPE_XDP, 0, 0, kXdpPass, "xdp_pinned"});
    Link link;
    net.b.Run([&] {
      auto l = AttachXdp(prog, net.ifindex_b);
      if (l.ok()) link = *l;
    });
    REQUIRE(link);
    REQUIRE_OK(link.Pin(dir.Sub("xdp_link")));
    CHECK(link.PinPath() == dir.Sub("xdp_link"));
    link_id = link.id();
    map_id = counter.id();
    prog_id = prog.id();
  }
  // No handle in this process: the pin holds the link, the link the
  // program, the program its map.
  CHECK(KernelHasLink(link_id));
  CHECK(testing::KernelHasProgram(prog_id));
  net.SendAtoB(4001, 5);
  {
    auto counter = Map::FromId(map_id);
    REQUIRE_OK(counter);
    CHECK(ReadCounter(*counter) >= 5);
  }

  // Load it back from the pin, then unpin and drop it: the hook empties.
  auto back = Link::LoadPinned(dir.Sub("xdp_link"));
  REQUIRE_OK(back);
  CHECK(back->id() == link_id);
  CHECK(back->info().prog_id == prog_id);
  REQUIRE_OK(back->Unpin());
  CHECK(access(dir.Sub("xdp_link").c_str(), F_OK) != 0);
  *back = Link();
  CHECK(Eventually([&] { return !KernelHasLink(link_id); }));
  CHECK(Eventually([&] { return !testing::KernelHasProgram(prog_id); }));
}

TEST_CASE("link update swaps programs atomically, checking the expected old one", "[link][update]") {
  REQUIRE_LINK_KIND(probe::LinkKind::kXdp);
  testing::VethPair net;
  Map first_count = CounterMap("first");
  Map second_count = CounterMap("second");
  Program first = LoadCounter(first_count, {BPF_PROG_TYPE_XDP, 0, 0, kXdpPass, "first"});
  Program second = LoadCounter(second_count, {BPF_PROG_TYPE_XDP, 0, 0, kXdpPass, "second"});
  Link link;
  net.b.Run([&] {
    auto l = AttachXdp(first, net.ifindex_b);
    if (l.ok()) link = *l;
  });
  REQUIRE(link);

  REQUIRE_OK(link.Update(second, first));
  CHECK(*link.ProgramId() == second.id());
  uint64_t first_before = ReadCounter(first_count);
  net.SendAtoB(4002, 4);
  CHECK(Eventually([&] { return ReadCounter(second_count) >= 4; }));
  CHECK(ReadCounter(first_count) == first_before);

  // The link holds `second` now, so expecting `first` must fail and change nothing.
  absl::Status wrong = link.Update(first, first);
  CHECK(absl::IsFailedPrecondition(wrong));
  CHECK(absl::StrContains(wrong.message(), "no longer holds the expected program 'first'"));
  CHECK(absl::StrContains(wrong.message(), "BPF_LINK_UPDATE"));
  CHECK(*link.ProgramId() == second.id());

  // The graph follows the swap.
  CHECK(ExplainMentions(second, "held by link"));
  CHECK_FALSE(ExplainMentions(first, "held by link"));

  // Detach: the hook stops running the program at once. The link lives
  // on, no longer on the interface, and still holds its program.
  REQUIRE_OK(link.Detach());
  auto info = link.Refresh();
  REQUIRE_OK(info);
  CHECK(info->target == "ifindex 0");
  CHECK(info->prog_id == second.id());
  uint64_t second_before = ReadCounter(second_count);
  net.SendAtoB(4002, 3);
  CHECK(ReadCounter(second_count) == second_before);
  CHECK(ExplainMentions(second, "held by link"));
  // Kernel rule: a detached link keeps its program until the link is freed.
  uint32_t second_id = second.id();
  second = Program();
  CHECK(testing::KernelHasProgram(second_id));
  link = Link();
  CHECK(Eventually([&] { return !testing::KernelHasProgram(second_id); }));
}

// --- tcx ------------------------------------------------------------------------

TEST_CASE("tcx ingress and egress links count packets on a veth", "[link][tcx]") {
  REQUIRE_LINK_KIND(probe::LinkKind::kTcx);
  testing::VethPair net;
  Map in_count = CounterMap("tcx_in");
  Map out_count = CounterMap("tcx_out");
  // TC_ACT_OK (0) lets the packet go on.
  Program in = LoadCounter(in_count, {BPF_PROG_TYPE_SCHED_CLS, 0, 0, 0, "tcx_in"});
  Program out = LoadCounter(out_count, {BPF_PROG_TYPE_SCHED_CLS, 0, 0, 0, "tcx_out"});
  Link ingress, egress;
  net.b.Run([&] {
    auto l = AttachTcx(in, net.ifindex_b, TcxDirection::kIngress);
    if (l.ok()) ingress = *l;
  });
  net.a.Run([&] {
    auto l = AttachTcx(out, net.ifindex_a, TcxDirection::kEgress);
    if (l.ok()) egress = *l;
  });
  REQUIRE(ingress);
  REQUIRE(egress);
  CHECK(ingress.type() == sys::uapi::kLinkTypeTcx);
  CHECK(absl::StrContains(egress.info().target, "egress"));
  int rx = net.ReceiverInB(4003);
  net.SendAtoB(4003, 4);
  CHECK(Eventually([&] { return ReadCounter(in_count) >= 4; }));
  CHECK(Eventually([&] { return ReadCounter(out_count) >= 4; }));
  CHECK(testing::ReceiveOne(rx));

  // TC_ACT_SHOT (2) drops.
  Map shot_count = CounterMap("tcx_shot");
  Program shot = LoadCounter(shot_count, {BPF_PROG_TYPE_SCHED_CLS, 0, 0, 2, "tcx_shot"});
  REQUIRE_OK(ingress.Update(shot, in));
  while (testing::ReceiveOne(rx)) {}
  net.SendAtoB(4003, 3);
  CHECK(Eventually([&] { return ReadCounter(shot_count) >= 3; }));
  CHECK_FALSE(testing::ReceiveOne(rx));
  close(rx);
}

// --- cgroups ---------------------------------------------------------------------

TEST_CASE("cgroup_skb ingress and egress links count a child's packets", "[link][cgroup]") {
  REQUIRE_LINK_KIND(probe::LinkKind::kCgroup);
  testing::TempCgroup cg;
  if (!cg.ok()) TETHER_SKIP_OR_FAIL(cg.why());
  Map in_count = CounterMap("cg_in");
  Map out_count = CounterMap("cg_out");
  // cgroup_skb programs return 1 to allow.
  Program in = LoadCounter(in_count, {BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_INGRESS, 0, 1, "cg_in"});
  Program out = LoadCounter(out_count, {BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_EGRESS, 0, 1, "cg_out"});
  auto ingress = AttachCgroup(in, cg.path(), BPF_CGROUP_INET_INGRESS);
  REQUIRE_OK(ingress);
  auto egress = AttachCgroup(out, cg.path(), BPF_CGROUP_INET_EGRESS);
  REQUIRE_OK(egress);
  CHECK(ingress->type() == BPF_LINK_TYPE_CGROUP);

  auto send_to_self = [] {
    uint16_t port = 0;
    int s = testing::LoopbackUdpSocket(&port);
    int got = 0;
    for (int i = 0; i < 5; ++i) {
      testing::SendLoopback(s, port);
      char buf[64];
      if (recv(s, buf, sizeof(buf), 0) > 0) ++got;
    }
    close(s);
    return got;
  };
  CHECK(cg.RunInChild(send_to_self) == 5);
  CHECK(ReadCounter(in_count) == 5);
  CHECK(ReadCounter(out_count) == 5);

  // This process is not in the cgroup: its traffic is not counted.
  uint16_t port = 0;
  int s = testing::LoopbackUdpSocket(&port);
  testing::SendLoopback(s, port);
  CHECK(testing::ReceiveOne(s));
  close(s);
  CHECK(ReadCounter(out_count) == 5);

  *egress = Link();
  CHECK(cg.RunInChild(send_to_self) == 5);
  CHECK(ReadCounter(out_count) == 5);
  CHECK(ReadCounter(in_count) == 10);
}

TEST_CASE("cgroup sock_create link refuses sockets in the cgroup until detached", "[link][cgroup]") {
  REQUIRE_LINK_KIND(probe::LinkKind::kCgroup);
  testing::TempCgroup cg;
  if (!cg.ok()) TETHER_SKIP_OR_FAIL(cg.why());
  Map count = CounterMap("sock_create");
  Program deny = LoadCounter(count, {BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET_SOCK_CREATE, 0, 0, "deny_sock"});
  auto link = AttachCgroup(deny, cg.path(), BPF_CGROUP_INET_SOCK_CREATE);
  REQUIRE_OK(link);
  auto make_socket = [] {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s >= 0) {
      close(s);
      return 0;
    }
    return errno == EPERM ? 1 : 2;
  };
  CHECK(cg.RunInChild(make_socket) == 1);
  CHECK(ReadCounter(count) == 1);
  REQUIRE_OK(link->Detach());
  CHECK(cg.RunInChild(make_socket) == 0);
  CHECK(ReadCounter(count) == 1);
}

// --- tracing -----------------------------------------------------------------------

TEST_CASE("tracepoint link counts the syscalls this test makes", "[link][tracepoint]") {
  REQUIRE_LINK_KIND(probe::LinkKind::kPerfEvent);
  Map count = CounterMap("tp_count");
  Program prog = LoadCounter(count, {BPF_PROG_TYPE_TRACEPOINT, 0, 0, 0, "tp_getpid"});
  auto link = AttachTracepoint(prog, "syscalls", "sys_enter_getpid");
  if (absl::IsNotFound(link.status())) {
    link = AttachTracepoint(prog, "raw_syscalls", "sys_enter");  // no CONFIG_FTRACE_SYSCALLS
  }
  REQUIRE_OK(link);
  CHECK(link->type() == BPF_LINK_TYPE_PERF_EVENT);
  Getpids(20);
  uint64_t counted = ReadCounter(count);
  CHECK(counted >= 20);
  *link = Link();
  uint64_t after = ReadCounter(count);
  Getpids(20);
  CHECK(ReadCounter(count) - after < 20);  // only other processes' calls, if any

  auto missing = AttachTracepoint(prog, "syscalls", "no_such_tracepoint_here");
  CHECK(absl::IsNotFound(missing.status()));
  CHECK(absl::StrContains(missing.status().message(), "no_such_tracepoint_here"));
}

TEST_CASE("raw tracepoint link through RAW_TRACEPOINT_OPEN counts sys_enter", "[link][raw_tp]") {
  REQUIRE_LINK_KIND(probe::LinkKind::kRawTracepoint);
  Map count = CounterMap("raw_tp");
  Program prog = LoadCounter(count, {BPF_PROG_TYPE_RAW_TRACEPOINT, 0, 0, 0, "raw_tp"});
  auto link = AttachRawTracepoint(prog, "sys_enter");
  REQUIRE_OK(link);
  CHECK(link->type() == BPF_LINK_TYPE_RAW_TRACEPOINT);
  Getpids(10);
  CHECK(Eventually([&] { return ReadCounter(count) >= 10; }));
  *link = Link();
  uint64_t after = ReadCounter(count);
  CHECK(Eventually([&] {
    uint64_t now = ReadCounter(count);
    return now == ReadCounter(count) && now == after;
  }));

  auto bogus = AttachRawTracepoint(prog, "tether_no_such_tracepoint");
  CHECK(absl::IsNotFound(bogus.status()));
  CHECK(absl::StrContains(bogus.status().message(), "tether_no_such_tracepoint"));
}

TEST_CASE("tp_btf links through RAW_TRACEPOINT_OPEN and LINK_CREATE count sys_enter", "[link][tp_btf]") {
  REQUIRE_LINK_KIND(probe::LinkKind::kTpBtf);
  auto id = TracingTargetBtfId(BPF_TRACE_RAW_TP, "sys_enter");
  REQUIRE_OK(id);
  Map count = CounterMap("tp_btf");
  Program prog = LoadCounter(count, {BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP, *id, 0, "tp_btf"});
  SECTION("BPF_RAW_TRACEPOINT_OPEN") {
    auto link = AttachTracing(prog, BPF_TRACE_RAW_TP, TracingAttachApi::kRawTracepointOpen);
    REQUIRE_OK(link);
    CHECK(link->type() == BPF_LINK_TYPE_RAW_TRACEPOINT);
    Getpids(10);
    CHECK(Eventually([&] { return ReadCounter(count) >= 10; }));
  }
  SECTION("BPF_LINK_CREATE") {
    REQUIRE_LINK_KIND(probe::LinkKind::kTpBtfLinkCreate);
    auto link = AttachTracing(prog, BPF_TRACE_RAW_TP, TracingAttachApi::kLinkCreate);
    REQUIRE_OK(link);
    CHECK(link->type() == BPF_LINK_TYPE_RAW_TRACEPOINT);
    Getpids(10);
    CHECK(Eventually([&] { return ReadCounter(count) >= 10; }));
  }
}

TEST_CASE("fentry and fexit links on bpf_fentry_test1", "[link][trampoline]") {
  REQUIRE_LINK_KIND(probe::LinkKind::kTrampoline);
  auto id = TracingTargetBtfId(BPF_TRACE_FENTRY, "bpf_fentry_test1");
  REQUIRE_OK(id);
  // BPF_PROG_TEST_RUN of a tracing program calls bpf_fentry_test1..8 and
  // bpf_modify_return_test, so running any tracing program fires them.
  for (uint32_t attach : {uint32_t{BPF_TRACE_FENTRY}, uint32_t{BPF_TRACE_FEXIT}}) {
    Map count = CounterMap("tramp");
    Program prog = LoadCounter(count, {BPF_PROG_TYPE_TRACING, attach, *id, 0, "tramp"});
    auto link = AttachTracing(prog, attach);
    REQUIRE_OK(link);
    CHECK(link->type() == BPF_LINK_TYPE_TRACING);
    REQUIRE_OK(prog.Run());
    CHECK(Eventually([&] { return ReadCounter(count) >= 1; }));
  }
}

TEST_CASE("fmod_ret link on bpf_modify_return_test", "[link][trampoline]") {
  REQUIRE_LINK_KIND(probe::LinkKind::kTrampoline);
  TETHER_REQUIRE_FEATURE("modify_return", probe::HaveModifyReturn());
  auto mr = TracingTargetBtfId(BPF_MODIFY_RETURN, "bpf_modify_return_test");
  REQUIRE_OK(mr);
  Map count = CounterMap("fmod_ret");
  Program prog = LoadCounter(count, {BPF_PROG_TYPE_TRACING, BPF_MODIFY_RETURN, *mr, 0, "fmod_ret"});
  auto link = AttachTracing(prog, BPF_MODIFY_RETURN);
  REQUIRE_OK(link);
  REQUIRE_OK(prog.Run());
  CHECK(Eventually([&] { return ReadCounter(count) >= 1; }));
}

TEST_CASE("kprobe and kretprobe links count openat calls", "[link][kprobe]") {
  REQUIRE_LINK_KIND(probe::LinkKind::kKprobe);
  for (bool ret : {false, true}) {
    Map count = CounterMap("kprobe");
    Program prog = LoadCounter(count, {BPF_PROG_TYPE_KPROBE, 0, 0, 0, "kprobe"});
    auto link = ret ? AttachKretprobe(prog, "do_sys_openat2") : AttachKprobe(prog, "do_sys_openat2");
    REQUIRE_OK(link);
    for (int i = 0; i < 5; ++i) close(open("/proc/self/stat", O_RDONLY | O_CLOEXEC));
    CHECK(Eventually([&] { return ReadCounter(count) >= 5; }));
  }
}

TEST_CASE("kprobe.multi link counts calls of several functions", "[link][kprobe]") {
  REQUIRE_LINK_KIND(probe::LinkKind::kKprobeMulti);
  Map count = CounterMap("kmulti");
  Program prog = LoadCounter(count, {BPF_PROG_TYPE_KPROBE, BPF_TRACE_KPROBE_MULTI, 0, 0, "kmulti"});
  std::vector<std::string> syms = {"do_sys_openat2", "__x64_sys_getpid"};
  auto link = AttachKprobeMulti(prog, syms);
  REQUIRE_OK(link);
  CHECK(link->type() == BPF_LINK_TYPE_KPROBE_MULTI);
  for (int i = 0; i < 5; ++i) close(open("/proc/self/stat", O_RDONLY | O_CLOEXEC));
  CHECK(Eventually([&] { return ReadCounter(count) >= 5; }));
}

TEST_CASE("uprobe and uretprobe links count calls of a function in this binary", "[link][uprobe]") {
  REQUIRE_LINK_KIND(probe::LinkKind::kUprobe);
  for (bool ret : {false, true}) {
    Map count = CounterMap("uprobe");
    Program prog = LoadCounter(count, {BPF_PROG_TYPE_KPROBE, 0, 0, 0, "uprobe"});
    UprobeTarget target{"tether_uprobe_target_one", 0};
    auto link = ret ? AttachUretprobe(prog, "/proc/self/exe", target)
                    : AttachUprobe(prog, "/proc/self/exe", target);
    REQUIRE_OK(link);
    CHECK(link->type() == BPF_LINK_TYPE_PERF_EVENT);
    volatile int sink = 0;
    for (int i = 0; i < 7; ++i) sink = sink + tether_uprobe_target_one(i);
    CHECK(ReadCounter(count) == 7);
    *link = Link();
    tether_uprobe_target_one(1);
    CHECK(ReadCounter(count) == 7);
  }
  Program prog = testing::LoadReturning(0);
  auto missing = AttachUprobe(prog, "/proc/self/exe", UprobeTarget{"tether_no_such_symbol", 0});
  CHECK(absl::IsNotFound(missing.status()));
  CHECK(absl::StrContains(missing.status().message(), "tether_no_such_symbol"));
}

TEST_CASE("uprobe.multi link counts calls at several places", "[link][uprobe]") {
  REQUIRE_LINK_KIND(probe::LinkKind::kUprobeMulti);
  Map count = CounterMap("umulti");
  Program prog = LoadCounter(
      count, {BPF_PROG_TYPE_KPROBE, sys::uapi::kAttachTraceUprobeMulti, 0, 0, "umulti"});
  std::vector<UprobeTarget> targets = {{"tether_uprobe_target_one", 0},
                                       {"tether_uprobe_target_two", 0}};
  auto link = AttachUprobeMulti(prog, "/proc/self/exe", targets, false, getpid());
  REQUIRE_OK(link);
  CHECK(link->type() == sys::uapi::kLinkTypeUprobeMulti);
  volatile int sink = 0;
  for (int i = 0; i < 3; ++i) sink = sink + tether_uprobe_target_one(i) + tether_uprobe_target_two(i);
  CHECK(ReadCounter(count) == 6);
}

// --- iterators -----------------------------------------------------------------------

TEST_CASE("map element iterator writes every value of the map", "[link][iter]") {
  REQUIRE_LINK_KIND(probe::LinkKind::kIter);
  TETHER_REQUIRE_FEATURE("iterator:bpf_map_elem", probe::HaveIterator("bpf_map_elem"));
  auto btf_id = TracingTargetBtfId(BPF_TRACE_ITER, "bpf_map_elem");
  REQUIRE_OK(btf_id);
  MapOptions mo;
  mo.type = BPF_MAP_TYPE_ARRAY;
  mo.key_size = 4;
  mo.value_size = 8;
  mo.max_entries = 3;
  mo.name = "iter_src";
  auto map = Map::Create(mo);
  REQUIRE_OK(map);
  const uint64_t values[3] = {0x1111222233334444ull, 0x5555666677778888ull, 0x99990000aaaabbbbull};
  for (uint32_t i = 0; i < 3; ++i) REQUIRE_OK(map->Update(i, values[i]));

  // ctx: {meta, map, key, value}; write the 8-byte value to meta->seq.
  bpf_insn prog[] = {
      insn::LoadReg64(BPF_REG_6, BPF_REG_1, 0),   // meta
      insn::LoadReg64(BPF_REG_7, BPF_REG_1, 24),  // value, NULL at the end
      insn::JeqImm(BPF_REG_7, 0, 4),
      insn::LoadReg64(BPF_REG_1, BPF_REG_6, 0),   // meta->seq
      insn::MovReg(BPF_REG_2, BPF_REG_7),
      insn::MovImm(BPF_REG_3, 8),
      insn::Call(BPF_FUNC_seq_write),
      insn::MovImm(BPF_REG_0, 0),
      insn::Exit(),
  };
  ProgramLoadOptions o;
  o.type = BPF_PROG_TYPE_TRACING;
  o.expected_attach_type = BPF_TRACE_ITER;
  o.attach_btf_id = *btf_id;
  o.instructions = prog;
  o.name = "dump_values";
  auto p = Program::Load(o);
  REQUIRE_OK(p);
  IterOptions io;
  io.map_fd = map->fd();
  auto link = AttachIter(*p, io);
  REQUIRE_OK(link);
  CHECK(link->type() == BPF_LINK_TYPE_ITER);
  auto out = ReadIter(*link);
  REQUIRE_OK(out);
  REQUIRE(out->size() == sizeof(values));
  CHECK(memcmp(out->data(), values, sizeof(values)) == 0);
  // Each read runs the iterator afresh and sees the map as it is now.
  REQUIRE_OK(map->Update(uint32_t{1}, uint64_t{7}));
  auto again = ReadIter(*link);
  REQUIRE_OK(again);
  uint64_t second = 0;
  memcpy(&second, again->data() + 8, 8);
  CHECK(second == 7);
}

// --- network namespaces ------------------------------------------------------------------

TEST_CASE("sk_lookup netns link sees and can drop lookups in its namespace", "[link][netns]") {
  REQUIRE_LINK_KIND(probe::LinkKind::kNetnsSkLookup);
  testing::TestNetns ns;
  Map count = CounterMap("sk_lookup");
  Program pass = LoadCounter(count, {BPF_PROG_TYPE_SK_LOOKUP, BPF_SK_LOOKUP, 0, 1, "sk_pass"});  // SK_PASS
  auto link = AttachNetns(pass, ns.fd(), BPF_SK_LOOKUP);
  REQUIRE_OK(link);
  CHECK(link->type() == BPF_LINK_TYPE_NETNS);

  int s = -1;
  uint16_t port = 0;
  ns.Run([&] {
    s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    timeval tv{0, 200 * 1000};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  });
  REQUIRE(s >= 0);
  testing::SendLoopback(s, port);
  CHECK(testing::ReceiveOne(s));
  CHECK(Eventually([&] { return ReadCounter(count) >= 1; }));

  Program drop = LoadCounter(count, {BPF_PROG_TYPE_SK_LOOKUP, BPF_SK_LOOKUP, 0, 0, "sk_drop"});  // SK_DROP
  REQUIRE_OK(link->Update(drop));
  testing::SendLoopback(s, port);
  CHECK_FALSE(testing::ReceiveOne(s));
  REQUIRE_OK(link->Detach());
  testing::SendLoopback(s, port);
  CHECK(testing::ReceiveOne(s));
  close(s);
}

TEST_CASE("flow_dissector netns link runs when the stack hashes a packet", "[link][netns]") {
  REQUIRE_LINK_KIND(probe::LinkKind::kNetnsFlowDissector);
  // bpf_get_hash_recalc from a tcx program is a reliable way to make the
  // stack dissect a packet of our choosing.
  REQUIRE_LINK_KIND(probe::LinkKind::kTcx);
  testing::VethPair net;
  Map dissected = CounterMap("dissected");
  Program dissector = LoadCounter(
      dissected, {BPF_PROG_TYPE_FLOW_DISSECTOR, BPF_FLOW_DISSECTOR, 0, 0, "dissector"});  // BPF_OK
  auto link = AttachNetns(dissector, net.b.fd(), BPF_FLOW_DISSECTOR);
  REQUIRE_OK(link);

  Map hashed = CounterMap("hashed");
  CounterProgram rehash{BPF_PROG_TYPE_SCHED_CLS, 0, 0, 0, "rehash"};
  rehash.prelude = {insn::MovReg(BPF_REG_1, BPF_REG_6), insn::Call(BPF_FUNC_set_hash_invalid),
                    insn::MovReg(BPF_REG_1, BPF_REG_6), insn::Call(BPF_FUNC_get_hash_recalc)};
  Program tc = LoadCounter(hashed, rehash);
  Link tcx;
  net.b.Run([&] {
    auto l = AttachTcx(tc, net.ifindex_b, TcxDirection::kIngress);
    if (l.ok()) tcx = *l;
  });
  REQUIRE(tcx);
  net.SendAtoB(4004, 4);
  CHECK(Eventually([&] { return ReadCounter(hashed) >= 4; }));
  CHECK(Eventually([&] { return ReadCounter(dissected) >= 4; }));

  *link = Link();
  uint64_t before = ReadCounter(dissected);
  net.SendAtoB(4004, 4);
  CHECK(ReadCounter(dissected) == before);
}

// --- legacy: socket filters ----------------------------------------------------------------

TEST_CASE("SO_ATTACH_BPF filter drops a socket's packets and shows as a legacy hook", "[link][legacy]") {
  uint16_t port = 0;
  int s = testing::LoopbackUdpSocket(&port);
  Map count = CounterMap("filtered");
  Program drop_all = LoadCounter(count, {BPF_PROG_TYPE_SOCKET_FILTER, 0, 0, 0, "drop_all"});
  uint32_t prog_id = drop_all.id();
  REQUIRE_OK(AttachSocketFilter(drop_all, s));

  testing::SendLoopback(s, port);
  CHECK_FALSE(testing::ReceiveOne(s));
  CHECK(ReadCounter(count) == 1);
  std::string why = graph().Explain(drop_all).ToString();
  CHECK(absl::StrContains(why, "legacy hook"));
  CHECK(absl::StrContains(why, "SO_ATTACH_BPF"));

  // The socket holds the program, not our handle.
  drop_all = Program();
  CHECK(testing::KernelHasProgram(prog_id));
  testing::SendLoopback(s, port);
  CHECK_FALSE(testing::ReceiveOne(s));

  auto again = Program::FromId(prog_id);
  REQUIRE_OK(again);
  REQUIRE_OK(DetachSocketFilter(*again, s));
  testing::SendLoopback(s, port);
  CHECK(testing::ReceiveOne(s));
  CHECK_FALSE(absl::StrContains(graph().Explain(*again).ToString(), "legacy hook"));
  close(s);
}

// --- handles and the graph ------------------------------------------------------------------

TEST_CASE("link handles are values and the graph shows link -> program", "[link][graph]") {
  REQUIRE_LINK_KIND(probe::LinkKind::kRawTracepoint);
  Map count = CounterMap("graph_tp");
  Program prog = LoadCounter(count, {BPF_PROG_TYPE_RAW_TRACEPOINT, 0, 0, 0, "graph_tp"});
  auto link = AttachRawTracepoint(prog, "sys_enter");
  REQUIRE_OK(link);

  Link copy = *link;
  CHECK(copy == *link);
  CHECK(std::hash<Link>()(copy) == std::hash<Link>()(*link));
  auto clone = link->Clone();
  REQUIRE_OK(clone);
  CHECK(*clone != *link);
  CHECK(clone->id() == link->id());
  CHECK(clone->fd() != link->fd());
  auto by_id = Link::FromId(link->id());
  REQUIRE_OK(by_id);
  CHECK(by_id->info().prog_id == prog.id());

  bool edge = false;
  for (const GraphEdge& e : graph().Edges()) {
    if (e.from == NodeOf(*link) && e.to == NodeOf(prog) && e.kind == EdgeKind::kLinkHolds) edge = true;
  }
  CHECK(edge);
  std::string why = graph().Explain(prog).ToString();
  CHECK(absl::StrContains(why, "held by link"));
  INFO(why);
  CHECK(absl::StrContains(why, "raw_tracepoint sys_enter"));

  // The program outlives its handle: the link holds it, and still runs it.
  uint32_t prog_id = prog.id();
  prog = Program();
  CHECK(testing::KernelHasProgram(prog_id));
  uint64_t before = ReadCounter(count);
  Getpids(5);
  CHECK(ReadCounter(count) >= before + 5);

  uint32_t link_id = link->id();
  *link = Link();
  copy = Link();
  *clone = Link();
  *by_id = Link();
  CHECK(Eventually([&] { return !KernelHasLink(link_id); }));
  CHECK(Eventually([&] { return !testing::KernelHasProgram(prog_id); }));
  CHECK_FALSE(graph().Node(NodeRef{NodeKind::kLink, link_id}).has_value());
}

TEST_CASE("attach errors name the program, the hook and the errno", "[link][errors]") {
  Program sf = testing::LoadReturning(0, "not_xdp");
  auto bad = AttachXdp(sf, 1);
  REQUIRE(!bad.ok());
  std::string msg(bad.status().message());
  CHECK(absl::StrContains(msg, "not_xdp"));
  CHECK(absl::StrContains(msg, "xdp ifindex 1"));
  CHECK(absl::StrContains(msg, "BPF_LINK_CREATE"));
  CHECK(absl::StrContains(msg, "EINVAL"));

  auto empty = AttachTracepoint(Program(), "syscalls", "sys_enter_getpid");
  CHECK(absl::IsInvalidArgument(empty.status()));
}

TEST_CASE("every link probe answers yes, or no with the version that brought the kind", "[link][probe]") {
  using probe::LinkKind;
  for (LinkKind kind :
       {LinkKind::kXdp, LinkKind::kTcx, LinkKind::kCgroup, LinkKind::kPerfEvent, LinkKind::kKprobe,
        LinkKind::kKprobeMulti, LinkKind::kUprobe, LinkKind::kUprobeMulti,
        LinkKind::kRawTracepoint, LinkKind::kTpBtfLinkCreate, LinkKind::kTpBtf,
        LinkKind::kTrampoline, LinkKind::kIter, LinkKind::kNetnsSkLookup,
        LinkKind::kNetnsFlowDissector}) {
    absl::Status st = probe::HaveLinkKind(kind);
    INFO(probe::LinkKindName(kind) << ": " << st);
    CHECK((st.ok() || probe::Unusable(st)));
    if (absl::IsUnimplemented(st) && kind != LinkKind::kKprobe) {
      CHECK(absl::StrContains(st.message(), probe::LinkKindSince(kind)));
      CHECK(absl::StrContains(st.message(), probe::KernelRelease()));
    }
    if (probe::AnswerOf(st) == probe::Answer::kRefused) {
      CHECK(absl::StrContains(st.message(), probe::KernelRelease()));
      CHECK((absl::StrContains(st.message(), "EPERM") || absl::StrContains(st.message(), "EACCES")));
    }
    // Cached: the same answer again, without asking the kernel.
    CHECK(probe::HaveLinkKind(kind) == st);
  }
}

TEST_CASE("attaching a kind the kernel lacks is Unimplemented, naming the feature", "[link][probe]") {
  absl::Status kprobes = probe::HaveLinkKind(probe::LinkKind::kKprobe);
  if (kprobes.ok()) {
    // The other half of this test runs wherever kprobes are missing.
    SUCCEED("kprobes are available here");
    return;
  }
  REQUIRE(absl::IsUnimplemented(kprobes));
  Map count = CounterMap("no_kprobe");
  Program prog = LoadCounter(count, {BPF_PROG_TYPE_KPROBE, 0, 0, 0, "no_kprobe"});
  auto link = AttachKprobe(prog, "do_sys_openat2");
  CHECK(absl::IsUnimplemented(link.status()));
  CHECK(absl::StrContains(link.status().message(), "no_kprobe"));
  CHECK(absl::StrContains(link.status().message(), "kprobe do_sys_openat2"));
  CHECK(absl::StrContains(link.status().message(), "CONFIG_KPROBES"));
}
