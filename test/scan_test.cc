// The system scan (ScanSystem, `tether graph`, `tether explain`) against
// objects this test makes and hands to other holders: a forked process, a
// socket, a cgroup, an interface in a private network namespace, a pin.
// Each test asks the scan what a reference's loss would do, then removes
// that reference and checks that the kernel did it.
#include <fcntl.h>
#include <linux/if_link.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "cli_support.h"
#include "sys/rtnetlink.h"
#include "sys/bpf.h"
#include "test_programs.h"
#include "test_support.h"
#include "tether/attach.h"
#include "tether/prog_array.h"
#include "tether/system_graph.h"

using namespace tether;
using testing::BlockOf;
using testing::CliResult;
using testing::RunCli;

namespace {

std::string Str(uint32_t v) { return std::to_string(v); }

// A forked child that keeps the fds it inherited and runs `setup` first;
// killed (and reaped) by Kill() or the destructor. `setup` runs after the
// fork: it must not use Catch2, and returns false to report a failure.
class Child {
 public:
  template <typename F>
  explicit Child(F setup) {
    int pipe_fds[2];
    REQUIRE(pipe2(pipe_fds, O_CLOEXEC) == 0);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      close(pipe_fds[0]);
      char ok = setup() ? 'y' : 'n';
      if (write(pipe_fds[1], &ok, 1) != 1) _exit(1);
      for (;;) pause();
    }
    close(pipe_fds[1]);
    char ok = 0;
    ssize_t n = read(pipe_fds[0], &ok, 1);
    close(pipe_fds[0]);
    ready_ = n == 1 && ok == 'y';
  }
  ~Child() { Kill(); }
  int pid() const { return pid_; }
  bool ready() const { return ready_; }
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  int pid_ = -1;
  bool ready_ = false;
};

std::string Cgroup2Root() {
  FILE* f = fopen("/proc/self/mounts", "re");
  if (!f) return "";
  char dev[256], dir[1024], type[64];
  std::string root;
  while (fscanf(f, "%255s %1023s %63s %*[^\n]", dev, dir, type) == 3)
    if (std::string(type) == "cgroup2") root = dir;
  fclose(f);
  return root;
}

}  // namespace

TEST_CASE("tether graph flags a program array that one process alone holds", "[cli][scan]") {
  testing::TempPinDir dir;
  auto array = ProgramArray::Create("solo_jmp", 4, LifetimePolicy::kIgnore);
  REQUIRE(array.ok());
  Program target = testing::LoadReturning(5, "solo_target");
  Program entry = testing::LoadTailCaller(array->map(), 1, 9, "solo_entry");
  REQUIRE(array->Set(0, target).ok());
  REQUIRE(array->Set(1, target).ok());
  REQUIRE(testing::RunValue(entry) == 5);
  uint32_t array_id = array->map().id();
  std::string pin = dir.Sub("solo_jmp");
  REQUIRE(array->map().Pin(pin).ok());

  // The child holds the array through its inherited fd and a dup of it;
  // this process keeps only the entry program, to run it.
  int array_fd = array->map().fd();
  Child child([&] { return fcntl(array_fd, F_DUPFD_CLOEXEC, 900) == 900; });
  REQUIRE(child.ready());
  *array = ProgramArray();
  target = Program();
  std::string marker = "program array 'solo_jmp' (id " + Str(array_id) + ")";

  // A pin holds it too: a process that exits does not clear it.
  CliResult pinned = RunCli("graph --name solo_");
  REQUIRE(pinned.exit_code == 0);
  INFO(pinned.out);
  CHECK_THAT(BlockOf(pinned.out, marker), Catch::Contains("fd in pid " + Str(child.pid())) &&
                                              !Catch::Contains("only pid"));

  // Without the pin, the child alone keeps it: the hazard names it.
  REQUIRE(unlink(pin.c_str()) == 0);
  CliResult solo = RunCli("graph --name solo_");
  REQUIRE(solo.exit_code == 0);
  std::string block = BlockOf(solo.out, marker);
  INFO(solo.out);
  CHECK_THAT(block, Catch::Contains("!! only pid " + Str(child.pid()) + " (") &&
                        Catch::Contains("if that process exits, tail calls from solo_entry (id " +
                                        Str(entry.id()) + ") into solo_jmp[0..1] miss"));
  // Several fds of the one process: all named.
  CHECK_THAT(block, Catch::Contains("fd " + Str(array_fd) + ", 900 keeps it"));
  CliResult json = RunCli("graph --format json --name solo_");
  CHECK_THAT(json.out, Catch::Contains("only pid " + Str(child.pid())));
  CliResult dot = RunCli("graph --format dot --name solo_");
  CHECK_THAT(dot.out, Catch::Contains("only pid " + Str(child.pid())) && Catch::Contains("color=red"));

  // --pid shows what that process holds (and its neighbours), not the rest;
  // --hazards shows the hazard.
  auto other = Map::Create({.type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 4,
                            .max_entries = 1, .name = "solo_other"});
  REQUIRE(other.ok());
  CliResult by_pid = RunCli("graph --pid " + Str(child.pid()));
  CHECK_THAT(by_pid.out, Catch::Contains(marker) && !Catch::Contains("solo_other"));
  CliResult hazards = RunCli("graph --hazards");
  CHECK_THAT(hazards.out, Catch::Contains("only pid " + Str(child.pid())) &&
                              !Catch::Contains("solo_other"));

  // As predicted: the process exits and the tail calls miss.
  CHECK(testing::RunValue(entry) == 5);
  child.Kill();
  CHECK(testing::Eventually([&] { return testing::RunValue(entry) == 9; }));
}

TEST_CASE("a scanned array that the kernel cleared says so in JSON", "[cli][scan]") {
  auto array = ProgramArray::Create("cleared_jmp", 2, LifetimePolicy::kIgnore);
  REQUIRE(array.ok());
  Program target = testing::LoadReturning(5, "cleared_t");
  Program caller = testing::LoadTailCaller(array->map(), 0, 9, "cleared_c");
  REQUIRE(array->Set(0, target).ok());
  uint32_t id = array->map().id();
  CliResult held = RunCli("graph --format json --name cleared_");
  std::string key = "{\"key\": \"map:" + Str(id) + "\"";
  std::string node = BlockOf(held.out, key);
  INFO(held.out);
  CHECK_THAT(node, Catch::Contains("\"cleared_by_kernel\": false"));

  *array = ProgramArray();
  REQUIRE(testing::Eventually([&] { return testing::RunValue(caller) == 9; }));
  CliResult json = RunCli("graph --format json");
  REQUIRE(json.exit_code == 0);
  node = BlockOf(json.out, key);
  INFO(node);
  CHECK_THAT(node, Catch::Contains("\"cleared_by_kernel\": true") &&
                       Catch::Contains("the kernel has cleared it"));
  // Its entries are gone: no tail_call edge from it.
  CHECK_THAT(json.out, !Catch::Contains("\"from\": \"map:" + Str(id) + "\", \"to\": \"program:"));
}

TEST_CASE("explain does not promise a free that a socket filter may prevent", "[cli][scan]") {
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(sock >= 0);
  uint32_t id = 0;
  {
    Program prog = testing::LoadReturning(0, "scan_sockf");
    REQUIRE(AttachSocketFilter(prog, sock).ok());
    id = prog.id();
    CliResult r = RunCli("explain prog " + Str(id));
    REQUIRE(r.exit_code == 0);
    INFO(r.out);
    CHECK_THAT(r.out, Catch::Contains("an open fd in pid " + Str(getpid())));
    CHECK_THAT(r.out, !Catch::Contains("will be freed"));
    CHECK_THAT(r.out, Catch::Contains("may also be held by socket filters") &&
                          Catch::Contains("which a scan cannot see"));
  }
  // Our fd went: the socket still holds the program, as explain allowed.
  CHECK(testing::KernelHasProgram(id));
  close(sock);
  CHECK(testing::Eventually([&] { return !testing::KernelHasProgram(id); }));
}

TEST_CASE("a cgroup attachment without a link is a holder in the scan", "[cli][scan]") {
  std::string root = Cgroup2Root();
  if (root.empty()) TETHER_SKIP_OR_FAIL("no cgroup v2 mount");
  std::string cg = root + "/tether_scan_" + Str(getpid());
  REQUIRE((mkdir(cg.c_str(), 0755) == 0 || errno == EEXIST));
  int cg_fd = open(cg.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(cg_fd >= 0);
  uint32_t id = 0;
  {
    Program prog = testing::LoadReturning(1, "scan_cgskb", BPF_PROG_TYPE_CGROUP_SKB);
    REQUIRE(sys::ProgAttach(cg_fd, prog.fd(), BPF_CGROUP_INET_INGRESS, 0) == 0);
    id = prog.id();
  }
  CliResult r = RunCli("explain prog " + Str(id));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("attached by a legacy hook: cgroup " + cg +
                                    " ingress, attached without a link (BPF_PROG_ATTACH)"));
  CHECK_THAT(r.out, Catch::Contains("the kernel alone holds it") && !Catch::Contains("will be freed"));
  CliResult text = RunCli("graph --name scan_cgskb");
  CHECK_THAT(BlockOf(text.out, "program 'scan_cgskb' (id " + Str(id) + ")"),
             Catch::Contains("legacy hook: cgroup " + cg));

  // As explained, the cgroup alone holds it: detaching frees it.
  CHECK(testing::KernelHasProgram(id));
  auto fd = sys::GetFdById(sys::ObjectKind::kProgram, id);
  REQUIRE(fd.ok());
  CHECK(sys::ProgDetach(cg_fd, fd->get(), BPF_CGROUP_INET_INGRESS) == 0);
  fd->Reset();
  close(cg_fd);
  rmdir(cg.c_str());
  CHECK(testing::Eventually([&] { return !testing::KernelHasProgram(id); }));
}

TEST_CASE("XDP attached through netlink is a holder in its network namespace", "[cli][scan]") {
  Program prog = testing::LoadReturning(2 /* XDP_PASS */, "scan_xdp", BPF_PROG_TYPE_XDP);
  uint32_t id = prog.id();
  int prog_fd = prog.fd();
  // The child's own network namespace, with the program on its loopback.
  Child child([&] {
    if (unshare(CLONE_NEWNET) != 0) return false;
    auto nl = sys::RtNetlink::Open();
    if (!nl.ok()) return false;
    auto lo = nl->Interfaces();
    if (!lo.ok() || lo->empty()) return false;
    bool ok = nl->SetXdp((*lo)[0].ifindex, prog_fd, XDP_FLAGS_SKB_MODE).ok();
    close(prog_fd);  // the hook holds it, not this child
    return ok;
  });
  REQUIRE(child.ready());
  std::string netns = "nsenter --net=/proc/" + Str(child.pid()) + "/ns/net";
  CliResult inside = RunCli("explain prog " + Str(id), netns);
  INFO(inside.out << inside.err);
  REQUIRE(inside.exit_code == 0);
  CHECK_THAT(inside.out, Catch::Contains("attached by a legacy hook: xdp (generic) on lo, attached through netlink"));
  CHECK_THAT(inside.out, Catch::Contains("an open fd in pid " + Str(getpid())) &&
                             Catch::Contains("nothing: program 'scan_xdp'"));
  // From this namespace the hook is invisible, and explain says so.
  CliResult outside = RunCli("explain prog " + Str(id));
  INFO(outside.out);
  CHECK_THAT(outside.out, !Catch::Contains("xdp (generic) on lo") && !Catch::Contains("will be freed") &&
                              Catch::Contains("may also be held by XDP on interfaces of other network namespaces") &&
                              Catch::Contains("in this network namespace only"));

  // As explained inside: dropping our fd leaves the hook holding it.
  prog = Program();
  CHECK(testing::KernelHasProgram(id));
  // The namespace goes with the child, lo with it, and the hook with lo.
  child.Kill();
  CHECK(testing::Eventually([&] { return !testing::KernelHasProgram(id); }, 10000));
}

TEST_CASE("graph filters: --pinned-under shows the pins there and what they hold", "[cli][scan]") {
  testing::TempPinDir dir;
  auto kept = Map::Create({.type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 4,
                           .max_entries = 1, .name = "under_kept"});
  auto elsewhere = Map::Create({.type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 4,
                                .max_entries = 1, .name = "under_else"});
  REQUIRE((kept.ok() && elsewhere.ok()));
  REQUIRE(kept->Pin(dir.Sub("kept")).ok());
  CliResult r = RunCli("graph --pinned-under " + dir.path());
  REQUIRE(r.exit_code == 0);
  INFO(r.out);
  CHECK_THAT(r.out, Catch::Contains("pin " + dir.Sub("kept")) && Catch::Contains("under_kept") &&
                        !Catch::Contains("under_else"));
  CHECK(RunCli("graph --pid notapid").exit_code == 2);
  CHECK(RunCli("graph --pid 0").exit_code == 2);
  CliResult all = RunCli("graph --all --name under_ --format dot");
  CHECK(all.exit_code == 0);
  CHECK_THAT(all.out, Catch::Contains("under_kept") && Catch::Contains("under_else"));
  REQUIRE(kept->Unpin().ok());
}

TEST_CASE("unreachable maps are summed up in one line", "[scan]") {
  // A graph as a scan would build it: two maps nothing reaches, and a used
  // one. (An unreachable map cannot be made on purpose without leaking it.)
  std::vector<GraphNode> nodes(4);
  nodes[0].ref = {NodeKind::kMap, 900001};
  nodes[1].ref = {NodeKind::kMap, 900002};
  nodes[2].ref = {NodeKind::kMap, 900003};
  nodes[2].name = "used";
  nodes[3].ref = {NodeKind::kProgram, 900004};
  nodes[3].name = "user";
  std::vector<GraphEdge> edges = {{nodes[3].ref, nodes[2].ref, EdgeKind::kUsesMap, 0}};
  auto g = detail::NewStandaloneGraph();
  detail::PopulateGraph(*g, nodes, edges);
  CollapsedGraph c = CollapseUnreachable(*g);
  CHECK(c.summary.rfind("2 unreachable map(s) (ids 900001, 900002)", 0) == 0);
  CHECK(c.graph->node_count() == 2);
  CHECK(c.graph->edge_count() == 1);
  CHECK(CollapseUnreachable(*c.graph).summary.empty());
}

// Item 1 of issue 18: the verdict for a pin that is the last user
// reference comes from the graph library (WhatBreaksIfUnreferenced).
TEST_CASE("explain: removing the last pin of an array or a program is not safe",
          "[cli][scan]") {
  testing::TempPinDir dir;
  auto array = ProgramArray::Create("pinned_jmp", 2, LifetimePolicy::kIgnore);
  REQUIRE(array.ok());
  Program target = testing::LoadReturning(5, "pinned_t");
  Program entry = testing::LoadTailCaller(array->map(), 0, 9, "pinned_e");
  REQUIRE(array->Set(0, target).ok());
  REQUIRE(array->Set(1, target).ok());
  std::string array_pin = dir.Sub("jmp");
  REQUIRE(array->map().Pin(array_pin).ok());
  uint32_t array_id = array->map().id();
  *array = ProgramArray();
  target = Program();

  CliResult r = RunCli("explain map " + Str(array_id));
  REQUIRE(r.exit_code == 0);
  std::string verdict = r.out.substr(r.out.find("if a reference went:"));
  INFO(r.out);
  CHECK_THAT(verdict, Catch::Contains("the pin " + array_pin + " (the last user reference)") &&
                          Catch::Contains("tail calls from pinned_e (id " + Str(entry.id()) + ")") &&
                          Catch::Contains("miss") && !Catch::Contains("- nothing"));
  REQUIRE(unlink(array_pin.c_str()) == 0);
  CHECK(testing::Eventually([&] { return testing::RunValue(entry) == 9; }));

  // A pinned program of a kind the scan sees every holder of.
  uint32_t prog_id = 0;
  std::string prog_pin = dir.Sub("prog");
  {
    Program p = testing::LoadReturning(1, "pinned_cg", BPF_PROG_TYPE_CGROUP_SKB);
    REQUIRE(p.Pin(prog_pin).ok());
    prog_id = p.id();
  }
  CliResult pr = RunCli("explain prog " + Str(prog_id));
  std::string pverdict = pr.out.substr(pr.out.find("if a reference went:"));
  INFO(pr.out);
  CHECK_THAT(pverdict, Catch::Contains("the pin " + prog_pin + " (the last user reference)") &&
                           Catch::Contains("will be freed") && !Catch::Contains("- nothing"));
  REQUIRE(unlink(prog_pin.c_str()) == 0);
  CHECK(testing::Eventually([&] { return !testing::KernelHasProgram(prog_id); }));
}

TEST_CASE("a tc filter added through netlink is a holder in its network namespace", "[cli][scan]") {
  testing::TempPinDir dir;
  std::string pin = dir.Sub("tc_prog");
  uint32_t id = 0;
  {
    Program prog = testing::LoadReturning(0 /* TC_ACT_OK */, "scan_tc", BPF_PROG_TYPE_SCHED_CLS);
    REQUIRE(prog.Pin(pin).ok());
    id = prog.id();
  }
  Child child([] { return unshare(CLONE_NEWNET) == 0; });
  REQUIRE(child.ready());
  std::string netns = "nsenter --net=/proc/" + Str(child.pid()) + "/ns/net";
  // iproute2's tc, as a user would: clsact on lo, the pinned program on ingress.
  REQUIRE(system((netns + " tc qdisc add dev lo clsact").c_str()) == 0);
  REQUIRE(system((netns + " tc filter add dev lo ingress bpf da pinned " + pin).c_str()) == 0);
  REQUIRE(unlink(pin.c_str()) == 0);

  CliResult r = RunCli("explain prog " + Str(id), netns);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("attached by a legacy hook: tc ingress filter on lo (cls_bpf "));
  CHECK_THAT(r.out, Catch::Contains("the kernel alone holds it") && !Catch::Contains("will be freed"));
  // As explained: the filter alone holds it; deleting it frees it.
  CHECK(testing::KernelHasProgram(id));
  CHECK(system((netns + " tc filter del dev lo ingress").c_str()) == 0);
  CHECK(testing::Eventually([&] { return !testing::KernelHasProgram(id); }, 5000));
}

namespace {

// A tail caller of any program type (test_programs.h's is a socket filter).
Program LoadTailCallerOfType(const Map& array, uint32_t type, const std::string& name) {
  bpf_insn prog[8];
  prog[0] = insn::MovReg(BPF_REG_6, BPF_REG_1);
  prog[1] = insn::MovReg(BPF_REG_1, BPF_REG_6);
  insn::LdMapFd(BPF_REG_2, array.fd(), &prog[2]);
  prog[4] = insn::MovImm(BPF_REG_3, 0);
  prog[5] = insn::Call(BPF_FUNC_tail_call);
  prog[6] = insn::MovImm(BPF_REG_0, 1);
  prog[7] = insn::Exit();
  ProgramLoadOptions o;
  o.type = type;
  o.instructions = prog;
  o.name = name;
  auto p = Program::Load(o);
  INFO(p.status().ToString());
  REQUIRE(p.ok());
  return *p;
}

}  // namespace

TEST_CASE("the one-process hazard is hedged, or absent, when the programs go with the process",
          "[cli][scan]") {
  // Socket filters: a socket the scan cannot see may keep the caller.
  auto sock_array = ProgramArray::Create("goes_sock", 2, LifetimePolicy::kIgnore);
  REQUIRE(sock_array.ok());
  Program sock_target = testing::LoadReturning(5, "goes_sock_t");
  Program sock_entry = testing::LoadTailCaller(sock_array->map(), 0, 9, "goes_sock_e");
  REQUIRE(sock_array->Set(0, sock_target).ok());
  // cgroup skb programs: the scan sees every holder they can have.
  auto cg_array = ProgramArray::Create("goes_cg", 2, LifetimePolicy::kIgnore);
  REQUIRE(cg_array.ok());
  Program cg_target = testing::LoadReturning(1, "goes_cg_t", BPF_PROG_TYPE_CGROUP_SKB);
  Program cg_entry = LoadTailCallerOfType(cg_array->map(), BPF_PROG_TYPE_CGROUP_SKB, "goes_cg_e");
  REQUIRE(cg_array->Set(0, cg_target).ok());
  uint32_t sock_id = sock_array->map().id(), cg_id = cg_array->map().id();

  Child child([] { return true; });  // holds everything through inherited fds
  REQUIRE(child.ready());
  *sock_array = ProgramArray();
  *cg_array = ProgramArray();
  sock_target = sock_entry = cg_target = cg_entry = Program();

  CliResult r = RunCli("graph --name goes_");
  REQUIRE(r.exit_code == 0);
  INFO(r.out);
  CHECK_THAT(BlockOf(r.out, "program array 'goes_sock' (id " + Str(sock_id) + ")"),
             Catch::Contains("!! only pid " + Str(child.pid())) &&
                 Catch::Contains("miss if those programs outlive it") &&
                 Catch::Contains("socket filters (SO_ATTACH_BPF"));
  CHECK_THAT(BlockOf(r.out, "program array 'goes_cg' (id " + Str(cg_id) + ")"),
             Catch::Contains("fd in pid " + Str(child.pid())) && !Catch::Contains("only pid"));
  // As the scan said: the programs go with the process, and so do the arrays.
  child.Kill();
  CHECK(testing::Eventually([&] {
    return !testing::KernelHasMap(sock_id) && !testing::KernelHasMap(cg_id);
  }));
}

TEST_CASE("sockmap and flow dissector attachments without a link are holders in the scan",
          "[cli][scan]") {
  SECTION("a sockmap's sk_msg verdict program") {
    auto map = Map::Create({.type = BPF_MAP_TYPE_SOCKMAP, .key_size = 4, .value_size = 4,
                            .max_entries = 1, .name = "scan_sockmap"});
    REQUIRE(map.ok());
    uint32_t id = 0;
    {
      Program prog = testing::LoadReturning(1 /* SK_PASS */, "scan_skmsg", BPF_PROG_TYPE_SK_MSG);
      REQUIRE(sys::ProgAttach(map->fd(), prog.fd(), BPF_SK_MSG_VERDICT, 0) == 0);
      id = prog.id();
    }
    CliResult r = RunCli("explain prog " + Str(id));
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("attached by a legacy hook: sockmap 'scan_sockmap' (id " +
                                      Str(map->id()) + ") sk_msg_verdict"));
    CHECK_THAT(r.out, Catch::Contains("the kernel alone holds it"));
    // As explained: the sockmap alone holds it; detaching frees it.
    CHECK(testing::KernelHasProgram(id));
    auto fd = sys::GetFdById(sys::ObjectKind::kProgram, id);
    REQUIRE(fd.ok());
    CHECK(sys::ProgDetach(map->fd(), fd->get(), BPF_SK_MSG_VERDICT) == 0);
    fd->Reset();
    CHECK(testing::Eventually([&] { return !testing::KernelHasProgram(id); }));
  }
  SECTION("a network namespace's flow dissector") {
    uint32_t id = 0;
    int prog_fd = -1;
    Program prog = testing::LoadReturning(0 /* BPF_OK */, "scan_flowd", BPF_PROG_TYPE_FLOW_DISSECTOR);
    id = prog.id();
    prog_fd = prog.fd();
    Child child([&] {
      if (unshare(CLONE_NEWNET) != 0) return false;
      // The legacy attach takes the caller's namespace, target_fd 0.
      bool ok = sys::ProgAttach(0, prog_fd, BPF_FLOW_DISSECTOR, 0) == 0;
      close(prog_fd);
      return ok;
    });
    REQUIRE(child.ready());
    prog = Program();
    CliResult r = RunCli("explain prog " + Str(id), "nsenter --net=/proc/" + Str(child.pid()) + "/ns/net");
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("attached by a legacy hook: the flow dissector of this network namespace"));
    // As explained: the namespace holds it, and goes with the child.
    CHECK(testing::KernelHasProgram(id));
    child.Kill();
    CHECK(testing::Eventually([&] { return !testing::KernelHasProgram(id); }, 10000));
  }
}
