// Issue 18, the library side: WhatBreaks answers with the reference
// removed (a pin as the last user reference), KeepAlive and ReleaseKept
// speak, the Refuse policy, and deferred verdicts that tell a scope's end
// from a real hazard. Every prediction is checked against what the kernel
// then does. See docs/lifecycle.md.
#include <linux/bpf.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "absl/strings/str_join.h"
#include "test_programs.h"
#include "test_support.h"
#include "tether/collection.h"
#include "tether/graph.h"
#include "tether/prog_array.h"

using namespace tether;
using testing::Eventually;
using testing::RunValue;

namespace {

constexpr uint32_t kHit = 42;
constexpr uint32_t kMiss = 7;

class Diagnostics {
 public:
  Diagnostics() {
    SetDiagnosticSink([this](const Diagnostic& d) {
      std::lock_guard<std::mutex> lock(mu_);
      got_.push_back(d);
    });
  }
  ~Diagnostics() { SetDiagnosticSink(nullptr); }
  std::vector<Diagnostic> Get() {
    std::lock_guard<std::mutex> lock(mu_);
    return got_;
  }

 private:
  std::mutex mu_;
  std::vector<Diagnostic> got_;
};

// Restores the process-wide settings a test changes.
struct GraphSettings {
  GraphSettings() : policy(graph().default_policy()), abort(graph().abort_on_refusal()) {
    graph().SetAbortOnRefusal(false);
  }
  ~GraphSettings() {
    graph().SetDefaultPolicy(policy);
    graph().SetAbortOnRefusal(abort);
  }
  LifetimePolicy policy;
  bool abort;
};

CollectionSpec TailCallSpec() {
  auto spec = CollectionSpec::FromFile(testing::BpfObjectPath("tail_calls"));
  REQUIRE(spec.ok());
  return *spec;
}

// caller_p of test/bpf/tail_calls.bpf.c (tail-calls jmp_table[0], kMiss
// on a miss) and target_q (returns kHit), through `array`.
Program LoadFrom(const std::string& name, const Map& array) {
  CollectionOptions o;
  o.replace_maps.emplace("jmp_table", array);
  Program p;
  absl::Status st = LoadAndAssign(TailCallSpec(), {{}, {{name, &p}}}, o);
  INFO(st.ToString());
  REQUIRE(st.ok());
  return p;
}

struct Chain {
  ProgramArray array;
  Program caller;
  Program target;
};

Chain MakeChain(const std::string& name, LifetimePolicy policy) {
  Chain c;
  auto array = ProgramArray::Create(name, 4, policy);
  REQUIRE(array.ok());
  c.array = *array;
  c.target = LoadFrom("target_q", c.array.map());
  c.caller = LoadFrom("caller_p", c.array.map());
  REQUIRE(c.array.Set(0, c.target).ok());
  REQUIRE(RunValue(c.caller) == kHit);
  return c;
}

absl::optional<NodeRef> PinNodeOf(NodeRef target) {
  for (const GraphEdge& e : graph().Edges())
    if (e.to == target && e.kind == EdgeKind::kPinHolds) return e.from;
  return absl::nullopt;
}

bool Mentions(const std::vector<std::string>& lines, const std::string& a, const std::string& b = "") {
  for (const std::string& l : lines)
    if (l.find(a) != std::string::npos && l.find(b) != std::string::npos) return true;
  return false;
}

// BPF_PROG_GET_FD_BY_ID answers ENOENT once the program is freed.
bool ProgramIdGone(uint32_t id) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.prog_id = id;
  long fd = syscall(__NR_bpf, BPF_PROG_GET_FD_BY_ID, &attr, sizeof(attr));
  if (fd >= 0) {
    close(static_cast<int>(fd));
    return false;
  }
  return errno == ENOENT;
}

}  // namespace

TEST_CASE("WhatBreaks on the pin that is an array's last user reference tells the truth",
          "[graph][truth]") {
  testing::TempPinDir dir;
  Chain c = MakeChain("pin_last", LifetimePolicy::kWarn);
  NodeRef array = NodeOf(c.array.map());
  uint32_t target_id = c.target.id();
  std::string array_pin = dir.Sub("jmp");
  std::string caller_pin = dir.Sub("caller");
  REQUIRE(c.array.map().Pin(array_pin).ok());
  REQUIRE(c.caller.Pin(caller_pin).ok());

  // With a handle as well, removing the pin costs nothing, and dropping
  // the handle costs nothing either: each is one of two.
  auto pin = PinNodeOf(array);
  REQUIRE(pin.has_value());
  CHECK(Mentions(graph().WhatBreaks(*pin), "nothing", "keeps its entries"));
  CHECK(Mentions(graph().WhatBreaks(c.array.map()), "nothing", "pinned at " + array_pin));

  // Every handle goes: the pin is the last user reference.
  c.array = ProgramArray();
  c.target = Program();
  c.caller = Program();
  REQUIRE(RunValue(*Program::LoadPinned(caller_pin)) == kHit);
  std::vector<std::string> breaks = graph().WhatBreaks(*pin);
  INFO(absl::StrJoin(breaks, "\n"));
  REQUIRE_FALSE(breaks.empty());
  CHECK_THAT(breaks[0], Catch::Contains("tail calls from caller_p") &&
                            Catch::Contains("pin_last[0] will miss"));
  CHECK(Mentions(breaks, "target_q", "will be freed"));
  CHECK_FALSE(Mentions(breaks, "nothing:"));
  // WhatBreaksIfUnreferenced on the array says the same.
  CHECK(graph().WhatBreaksIfUnreferenced(array) == breaks);

  // Now do it: remove the pin, as `rm` would.
  REQUIRE(unlink(array_pin.c_str()) == 0);
  Program caller = *Program::LoadPinned(caller_pin);
  CHECK(Eventually([&] { return RunValue(caller) == kMiss; }));
  CHECK(Eventually([&] { return ProgramIdGone(target_id); }));
}

TEST_CASE("a program held only by its pin: WhatBreaks says it is freed, and it is",
          "[graph][truth]") {
  testing::TempPinDir dir;
  std::string path = dir.Sub("prog");
  uint32_t id;
  {
    Program p = testing::LoadReturning(3, "pin_only");
    id = p.id();
    REQUIRE(p.Pin(path).ok());
    // With its handle too, the pin is not the last reference.
    auto pin = PinNodeOf(NodeOf(p));
    REQUIRE(pin.has_value());
    CHECK(Mentions(graph().WhatBreaks(*pin), "nothing", "still held"));
  }
  auto pin = PinNodeOf(NodeRef{NodeKind::kProgram, id});
  REQUIRE(pin.has_value());
  std::vector<std::string> breaks = graph().WhatBreaks(*pin);
  INFO(absl::StrJoin(breaks, "\n"));
  REQUIRE(breaks.size() == 1);
  CHECK_THAT(breaks[0], Catch::Contains("program 'pin_only'") && Catch::Contains("will be freed"));
  CHECK_FALSE(ProgramIdGone(id));
  REQUIRE(unlink(path.c_str()) == 0);
  // Freeing is RCU-deferred: poll, with a bound.
  CHECK(Eventually([&] { return ProgramIdGone(id); }));
}

TEST_CASE("WhatBreaks on a handle still answers for the handle", "[graph][truth]") {
  Chain c = MakeChain("handle_only", LifetimePolicy::kIgnore);
  auto breaks = graph().WhatBreaks(c.array.map());
  REQUIRE_FALSE(breaks.empty());
  CHECK_THAT(breaks[0], Catch::Contains("tail calls from caller_p (id") && Catch::Contains("into handle_only[0] will miss"));
  // target_q has its own handle: not freed.
  CHECK_FALSE(Mentions(breaks, "target_q"));
  CHECK(Mentions(graph().WhatBreaks(c.target), "nothing", "entry [0]"));
  // The caller's handle is all that holds it: it goes, with nothing else.
  auto caller_breaks = graph().WhatBreaks(c.caller);
  CHECK(Mentions(caller_breaks, "caller_p", "will be freed"));
  c.array = ProgramArray();
  CHECK(Eventually([&] { return RunValue(c.caller) == kMiss; }));
}

TEST_CASE("ReleaseKept warns when the kept array's programs still tail-call through it",
          "[graph][policy][truth]") {
  Diagnostics diags;
  Chain c = MakeChain("kept_voice", LifetimePolicy::kKeepAlive);
  uint32_t id = c.array.map().id();
  c.array = ProgramArray();
  auto got = diags.Get();
  REQUIRE(got.size() == 1);
  CHECK(got[0].kind == Diagnostic::Kind::kProgramArrayKept);
  CHECK(got[0].entries == 1);
  CHECK(RunValue(c.caller) == kHit);
  CHECK(graph().ReleaseKept() >= 1);
  got = diags.Get();
  REQUIRE(got.size() == 2);
  CHECK(got[1].kind == Diagnostic::Kind::kProgramArrayOrphaned);
  CHECK(got[1].map_id == id);
  CHECK(Eventually([&] { return RunValue(c.caller) == kMiss; }));
  // A kept array whose programs are gone is released without a word.
  Chain quiet = MakeChain("kept_quiet", LifetimePolicy::kKeepAlive);
  quiet.array = ProgramArray();
  quiet.caller = Program();
  CHECK(graph().ReleaseKept() >= 1);
  CHECK(diags.Get().size() == 3);  // only quiet's kProgramArrayKept
}

TEST_CASE("Refuse: Close refuses even forced, the last handle is reported and kept",
          "[graph][policy][refuse]") {
  GraphSettings settings;
  Diagnostics diags;
  testing::TempPinDir dir;
  Chain c = MakeChain("refuse_me", LifetimePolicy::kRefuse);
  REQUIRE(c.caller.Pin(dir.Sub("caller")).ok());  // outlives our handles
  uint32_t id = c.array.map().id();
  Map last = c.array.map();
  c.array = ProgramArray();
  auto st = last.Close();
  CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
  st = last.Close(/*force=*/true);
  CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(st.message()), Catch::Contains("refuse_me") && Catch::Contains("kRefuse"));
  CHECK(static_cast<bool>(last));
  CHECK(diags.Get().empty());
  last = Map();  // dropped anyway: a programming error, reported loudly
  auto got = diags.Get();
  REQUIRE(got.size() == 1);
  CHECK(got[0].kind == Diagnostic::Kind::kProgramArrayRefused);
  CHECK_THAT(got[0].message, Catch::Contains("refuse_me") && Catch::Contains("caller_p"));
  // tether kept the fd: the tail calls still work until ReleaseKept.
  auto node = graph().Node(NodeRef{NodeKind::kMap, id});
  REQUIRE(node.has_value());
  CHECK(node->kept_alive);
  CHECK(RunValue(c.caller) == kHit);
  CHECK(graph().ReleaseKept() >= 1);
  CHECK(Eventually([&] { return RunValue(c.caller) == kMiss; }));
}

TEST_CASE("Refuse aborts with the message when aborting is on", "[graph][policy][refuse]") {
  testing::TempPinDir dir;
  int err_pipe[2];
  REQUIRE(pipe(err_pipe) == 0);
  fflush(nullptr);
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // No Catch2 here: plain checks, and _exit(0) if the abort does not come.
    // Catch2's own SIGABRT handler would report a failure in the child.
    signal(SIGABRT, SIG_DFL);
    dup2(err_pipe[1], STDERR_FILENO);
    graph().SetAbortOnRefusal(true);
    SetDiagnosticSink([](const Diagnostic&) {});
    auto array = ProgramArray::Create("refuse_abort", 2, LifetimePolicy::kRefuse);
    auto target = testing::TryLoadReturning(kHit, "ra_target");
    if (!array.ok() || !target.ok() || !array->Set(0, *target).ok()) _exit(3);
    auto caller = testing::TryLoadTailCaller(array->map(), 0, kMiss, "ra_caller");
    if (!caller.ok() || !caller->Pin(dir.Sub("caller")).ok()) _exit(4);
    *array = ProgramArray();
    _exit(0);
  }
  close(err_pipe[1]);
  std::string err;
  char buf[4096];
  for (ssize_t n; (n = read(err_pipe[0], buf, sizeof(buf))) > 0;) err.append(buf, n);
  close(err_pipe[0]);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  INFO(err);
  CHECK(WIFSIGNALED(status));
  if (WIFSIGNALED(status)) CHECK(WTERMSIG(status) == SIGABRT);
  if (WIFEXITED(status)) CHECK(WEXITSTATUS(status) == 0xff);  // shows the exit code on failure
  CHECK_THAT(err, Catch::Contains("refuse_abort") && Catch::Contains("ra_caller") &&
                      Catch::Contains("tether: aborting"));
}

TEST_CASE("LoadAndAssign under Refuse refuses an unbound array and loads a bound one",
          "[graph][policy][refuse]") {
  GraphSettings settings;
  graph().SetDefaultPolicy(LifetimePolicy::kRefuse);
  CollectionSpec spec = TailCallSpec();
  // tail_calls.bpf.c's jmp_table has no static entries: give it one, so
  // an unbound array would be cleared at once.
  MapInitEntry entry;
  entry.key = 0;
  entry.name = "target_q";
  spec.FindMap("jmp_table")->init.push_back(entry);
  Program caller;
  absl::Status refused = LoadAndAssign(spec, {{}, {{"caller_p", &caller}}});
  CHECK(refused.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(refused.message()), Catch::Contains("jmp_table"));
  CHECK_FALSE(static_cast<bool>(caller));
  Map jmp;
  REQUIRE(LoadAndAssign(spec, {{{"jmp_table", &jmp}}, {{"caller_p", &caller}}}).ok());
  CHECK(RunValue(caller) == kHit);
  CHECK(jmp.Close(/*force=*/true).code() == absl::StatusCode::kFailedPrecondition);
  jmp.SetLifetimePolicy(LifetimePolicy::kIgnore);
  CHECK(jmp.Close().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(jmp.Close(/*force=*/true).ok());
  CHECK(Eventually([&] { return RunValue(caller) == kMiss; }));
}

TEST_CASE("the end of a scope is not a hazard: no warning, everything freed", "[graph][deferred]") {
  Diagnostics diags;
  uint32_t array_id, caller_id, target_id;
  {
    // Declared in this order, C++ destroys jmp first, then the programs.
    Program caller, target;
    Map jmp;
    REQUIRE(LoadAndAssign(TailCallSpec(),
                          {{{"jmp_table", &jmp}}, {{"caller_p", &caller}, {"target_q", &target}}})
                .ok());
    REQUIRE(ProgramArray::FromMap(jmp, false)->Set(0, target).ok());
    REQUIRE(RunValue(caller) == kHit);
    array_id = jmp.id();
    caller_id = caller.id();
    target_id = target.id();
  }
  CHECK(diags.Get().empty());
  CHECK_FALSE(graph().Node(NodeRef{NodeKind::kMap, array_id}).has_value());
  CHECK(Eventually([&] { return ProgramIdGone(caller_id) && ProgramIdGone(target_id); }));
  CHECK(Eventually([&] { return !testing::KernelHasMap(array_id); }));
}

TEST_CASE("a caller kept alive beyond the scope still gets the warning, and the miss",
          "[graph][deferred]") {
  Diagnostics diags;
  testing::TempPinDir dir;
  std::string caller_pin = dir.Sub("caller");
  uint32_t array_id;
  {
    Program caller, target;
    Map jmp;
    REQUIRE(LoadAndAssign(TailCallSpec(),
                          {{{"jmp_table", &jmp}}, {{"caller_p", &caller}, {"target_q", &target}}})
                .ok());
    REQUIRE(ProgramArray::FromMap(jmp, false)->Set(0, target).ok());
    REQUIRE(caller.Pin(caller_pin).ok());  // like an attachment: outlives the scope
    array_id = jmp.id();
  }
  auto got = diags.Get();
  REQUIRE(got.size() == 1);
  CHECK(got[0].kind == Diagnostic::Kind::kProgramArrayOrphaned);
  CHECK(got[0].map_id == array_id);
  CHECK_THAT(got[0].message, Catch::Contains("caller_p"));
  Program caller = *Program::LoadPinned(caller_pin);
  CHECK(Eventually([&] { return RunValue(caller) == kMiss; }));
}

TEST_CASE("a deferred verdict settles when a caller gains a holder, or on request",
          "[graph][deferred]") {
  Diagnostics diags;
  testing::TempPinDir dir;
  Chain c = MakeChain("deferred", LifetimePolicy::kWarn);
  uint32_t id = c.array.map().id();
  c.array = ProgramArray();
  // The caller lives only on its handle: the graph holds the array's fd.
  CHECK(diags.Get().empty());
  auto node = graph().Node(NodeRef{NodeKind::kMap, id});
  REQUIRE(node.has_value());
  CHECK(node->deferred);
  CHECK(RunValue(c.caller) == kHit);
  CHECK_THAT(graph().Explain(NodeRef{NodeKind::kMap, id}).ToString(), Catch::Contains("verdict waits"));
  // Pinning the caller makes it outlive our handles: the warning comes now.
  REQUIRE(c.caller.Pin(dir.Sub("caller")).ok());
  auto got = diags.Get();
  REQUIRE(got.size() == 1);
  CHECK(got[0].kind == Diagnostic::Kind::kProgramArrayOrphaned);
  CHECK_THAT(got[0].message, Catch::Contains("deferred") && Catch::Contains("caller_p"));
  CHECK(Eventually([&] { return RunValue(c.caller) == kMiss; }));

  // SettleDeferred decides at once.
  Chain d = MakeChain("settle_now", LifetimePolicy::kWarn);
  d.array = ProgramArray();
  CHECK(diags.Get().size() == 1);
  CHECK(graph().SettleDeferred() >= 1);
  got = diags.Get();
  REQUIRE(got.size() == 2);
  CHECK_THAT(got[1].message, Catch::Contains("settle_now"));
  CHECK(Eventually([&] { return RunValue(d.caller) == kMiss; }));
}

TEST_CASE("Refuse at the end of a scope neither reports nor aborts", "[graph][deferred][refuse]") {
  GraphSettings settings;
  Diagnostics diags;
  {
    Program caller, target;
    Map jmp;
    CollectionOptions o;
    o.default_map_policy = LifetimePolicy::kRefuse;
    REQUIRE(LoadAndAssign(TailCallSpec(),
                          {{{"jmp_table", &jmp}}, {{"caller_p", &caller}, {"target_q", &target}}}, o)
                .ok());
    REQUIRE(ProgramArray::FromMap(jmp, false)->Set(0, target).ok());
    REQUIRE(jmp.lifetime_policy() == LifetimePolicy::kRefuse);
  }
  CHECK(diags.Get().empty());
}

namespace {

// `tether <args>`: its stdout, or "" if it failed.
std::string RunTether(const std::string& args) {
  std::string cmd = std::string(TETHER_CLI) + " " + args + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) out.append(buf, n);
  int status = pclose(p);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  return out;
}

}  // namespace

TEST_CASE("tether explain: a pin as the last user reference, and what the kernel then does",
          "[graph][truth][cli]") {
  testing::TempPinDir dir;
  std::string array_pin = dir.Sub("jmp"), caller_pin = dir.Sub("caller"), prog_pin = dir.Sub("lone");
  uint32_t array_id, target_id, lone_id;
  {
    Chain c = MakeChain("cli_pin_last", LifetimePolicy::kWarn);
    REQUIRE(c.array.map().Pin(array_pin).ok());
    REQUIRE(c.caller.Pin(caller_pin).ok());
    array_id = c.array.map().id();
    target_id = c.target.id();
    Program lone = testing::LoadReturning(5, "cli_lone");
    REQUIRE(lone.Pin(prog_pin).ok());
    lone_id = lone.id();
  }  // no handle, no fd in any process: the pins alone hold everything

  std::string map_out = RunTether("explain map " + std::to_string(array_id));
  INFO(map_out);
  CHECK_THAT(map_out, Catch::Contains("the pin " + array_pin + " (the last user reference)") &&
                          Catch::Contains("tail calls from caller_p") &&
                          Catch::Contains("cli_pin_last[0] will miss"));
  CHECK_THAT(map_out, !Catch::Contains("so it keeps its entries"));
  std::string prog_out = RunTether("explain prog " + std::to_string(lone_id));
  INFO(prog_out);
  // A socket filter may also be held by a socket, which no scan sees: the
  // verdict is freed unless such a holder exists, and says so.
  CHECK_THAT(prog_out, Catch::Contains("the last user reference") &&
                           Catch::Contains("program 'cli_lone'") &&
                           Catch::Contains("is freed only if nothing the scan cannot see holds it"));
  CHECK_THAT(prog_out, !Catch::Contains("still held"));

  // What the kernel does when those pins go.
  Program caller = *Program::LoadPinned(caller_pin);
  REQUIRE(RunValue(caller) == kHit);
  REQUIRE(unlink(array_pin.c_str()) == 0);
  REQUIRE(unlink(prog_pin.c_str()) == 0);
  CHECK(Eventually([&] { return RunValue(caller) == kMiss; }));
  CHECK(Eventually([&] { return ProgramIdGone(target_id) && ProgramIdGone(lone_id); }));
}
