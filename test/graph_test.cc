// The program-array trap, proven on the live kernel, and the graph that
// catches it. See docs/lifecycle.md.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <mutex>
#include "test_programs.h"
#include "test_support.h"
#include "tether/collection.h"
#include "tether/graph.h"
#include "tether/prog_array.h"

using namespace tether;
using testing::Eventually;
using testing::LoadReturning;
using testing::LoadTailCaller;
using testing::RunValue;

namespace {

constexpr uint32_t kHit = 42;
constexpr uint32_t kMiss = 7;

// Collects diagnostics for the duration of a test.
class CapturedDiagnostics {
 public:
  CapturedDiagnostics() {
    SetDiagnosticSink([this](const Diagnostic& d) {
      std::lock_guard<std::mutex> lock(mu_);
      diags_.push_back(d);
    });
  }
  ~CapturedDiagnostics() { SetDiagnosticSink(nullptr); }
  std::vector<Diagnostic> Get() {
    std::lock_guard<std::mutex> lock(mu_);
    return diags_;
  }

 private:
  std::mutex mu_;
  std::vector<Diagnostic> diags_;
};

struct TailCallSet {
  ProgramArray array;
  Program caller;  // P: tail-calls array[0], returns kMiss on a miss
  Program target;  // Q: returns kHit
};

// One program of test/bpf/tail_calls.bpf.c, its jmp_table replaced by
// `array`. LoadAndAssign loads just that program: a replaced array is the
// caller's, so its refusal does not apply.
Program LoadTailCallProgram(const std::string& name, const ProgramArray& array) {
  auto spec = CollectionSpec::FromFile(testing::BpfObjectPath("tail_calls"));
  REQUIRE(spec.ok());
  CollectionOptions o;
  o.replace_maps.emplace("jmp_table", array.map());
  Program p;
  absl::Status st = LoadAndAssign(*spec, {{}, {{name, &p}}}, o);
  INFO(st.ToString());
  REQUIRE(st.ok());
  return p;
}

// With `caller_pin`, the caller is also pinned there: it then lives beyond
// this process's handles, like an attached program, and the array's last
// handle is a hazard the policy acts on at once (docs/lifecycle.md,
// "Deferred verdicts").
TailCallSet MakeSet(const std::string& array_name, LifetimePolicy policy,
                    const std::string& caller_pin = "") {
  TailCallSet s;
  auto array = ProgramArray::Create(array_name, 4, policy);
  REQUIRE(array.ok());
  s.array = *array;
  s.target = LoadTailCallProgram("target_q", s.array);
  s.caller = LoadTailCallProgram("caller_p", s.array);
  REQUIRE(s.array.Set(0, s.target).ok());
  REQUIRE(RunValue(s.caller) == kHit);
  if (!caller_pin.empty()) REQUIRE(s.caller.Pin(caller_pin).ok());
  return s;
}

bool KeepsHitting(const Program& p, int ms = 300) {
  for (int waited = 0; waited < ms; waited += 20) {
    if (RunValue(p) != kHit) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace

TEST_CASE("kernel rule: dropping the last fd of a prog array makes tail calls miss", "[graph][kernel]") {
  CapturedDiagnostics diags;
  TailCallSet s = MakeSet("rule_array", LifetimePolicy::kIgnore);
  uint32_t array_id = s.array.map().id();
  s.array = ProgramArray();  // the last user reference
  // The array itself stays alive (the caller uses it)...
  CHECK(testing::KernelHasMap(array_id));
  // ...but the kernel clears it, so the same tail call now falls through.
  CHECK(Eventually([&] { return RunValue(s.caller) == kMiss; }));
  CHECK(diags.Get().empty());  // Ignore says nothing
  auto node = graph().Node(NodeRef{NodeKind::kMap, array_id});
  REQUIRE(node.has_value());
  CHECK(node->cleared_by_kernel);
  CHECK(node->handles == 0);
}

TEST_CASE("Warn: exactly one message naming the array and the caller", "[graph][policy]") {
  CapturedDiagnostics diags;
  testing::TempPinDir dir;
  TailCallSet s = MakeSet("warn_array", LifetimePolicy::kWarn, dir.Sub("caller"));
  uint32_t array_id = s.array.map().id();
  Map extra = s.array.map();  // a second handle: dropping one is not the last
  s.array = ProgramArray();
  CHECK(diags.Get().empty());
  extra = Map();
  auto got = diags.Get();
  REQUIRE(got.size() == 1);
  const Diagnostic& d = got[0];
  CHECK(d.kind == Diagnostic::Kind::kProgramArrayOrphaned);
  CHECK(d.map_name == "warn_array");
  CHECK(d.map_id == array_id);
  CHECK(d.entries == 1);
  REQUIRE(d.programs.size() == 1);
  CHECK_THAT(d.programs[0], Catch::Contains("caller_p"));
  CHECK_THAT(d.message, Catch::Contains("warn_array") && Catch::Contains("caller_p") &&
                            Catch::Contains("clears") && Catch::Contains("pin") &&
                            Catch::Contains("keep a Map handle"));
  CHECK(Eventually([&] { return RunValue(s.caller) == kMiss; }));
}

TEST_CASE("KeepAlive: the tail call survives the last handle until ReleaseKept", "[graph][policy]") {
  CapturedDiagnostics diags;
  TailCallSet s = MakeSet("keep_array", LifetimePolicy::kKeepAlive);
  uint32_t array_id = s.array.map().id();
  s.array = ProgramArray();
  // Keeping has a voice: one kProgramArrayKept.
  auto kept = diags.Get();
  REQUIRE(kept.size() == 1);
  CHECK(kept[0].kind == Diagnostic::Kind::kProgramArrayKept);
  CHECK(kept[0].map_id == array_id);
  CHECK_THAT(kept[0].message, Catch::Contains("keep_array") && Catch::Contains("ReleaseKept") &&
                                  Catch::Contains("caller_p"));
  CHECK(KeepsHitting(s.caller));
  auto node = graph().Node(NodeRef{NodeKind::kMap, array_id});
  REQUIRE(node.has_value());
  CHECK(node->kept_alive);
  CHECK_THAT(graph().Explain(NodeRef{NodeKind::kMap, array_id}).ToString(),
             Catch::Contains("KeepAlive"));
  CHECK(graph().ReleaseKept() >= 1);
  CHECK(Eventually([&] { return RunValue(s.caller) == kMiss; }));
  // Releasing it is a last reference like any other: it warns.
  auto got = diags.Get();
  REQUIRE(got.size() == 2);
  CHECK(got[1].kind == Diagnostic::Kind::kProgramArrayOrphaned);
  CHECK(got[1].map_id == array_id);
  CHECK_THAT(got[1].message, Catch::Contains("keep_array") && Catch::Contains("caller_p") &&
                                 Catch::Contains("ReleaseKept"));
}

TEST_CASE("the global default policy applies to arrays that set none", "[graph][policy]") {
  CapturedDiagnostics diags;
  graph().SetDefaultPolicy(LifetimePolicy::kKeepAlive);
  TailCallSet s = MakeSet("default_keep", LifetimePolicy::kDefault);
  uint32_t array_id = s.array.map().id();
  s.array = ProgramArray();
  graph().SetDefaultPolicy(LifetimePolicy::kWarn);
  CHECK(KeepsHitting(s.caller));
  auto node = graph().Node(NodeRef{NodeKind::kMap, array_id});
  REQUIRE(node.has_value());
  CHECK(node->kept_alive);
  REQUIRE(diags.Get().size() == 1);
  CHECK(diags.Get()[0].kind == Diagnostic::Kind::kProgramArrayKept);
  CHECK(graph().ReleaseKept() >= 1);
  CHECK(Eventually([&] { return RunValue(s.caller) == kMiss; }));
  // A per-map policy still wins over the global one.
  graph().SetDefaultPolicy(LifetimePolicy::kKeepAlive);
  TailCallSet ignored = MakeSet("own_ignore", LifetimePolicy::kIgnore);
  ignored.array = ProgramArray();
  graph().SetDefaultPolicy(LifetimePolicy::kWarn);
  CHECK(Eventually([&] { return RunValue(ignored.caller) == kMiss; }));
}

TEST_CASE("the default sink writes the warning to stderr", "[graph][policy]") {
  SetDiagnosticSink(nullptr);  // the built-in sink
  char path[] = "/tmp/tether-stderr-XXXXXX";
  int capture = mkstemp(path);
  REQUIRE(capture >= 0);
  unlink(path);
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  REQUIRE(saved >= 0);
  REQUIRE(dup2(capture, STDERR_FILENO) == STDERR_FILENO);
  {
    testing::TempPinDir dir;
    TailCallSet s = MakeSet("stderr_array", LifetimePolicy::kWarn, dir.Sub("caller"));
    s.array = ProgramArray();
  }
  fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  std::string text(4096, '\0');
  ssize_t n = pread(capture, text.data(), text.size(), 0);
  close(capture);
  REQUIRE(n > 0);
  text.resize(static_cast<size_t>(n));
  CHECK_THAT(text, Catch::Contains("tether: warning") && Catch::Contains("stderr_array") &&
                       Catch::Contains("caller_p"));
}

TEST_CASE("Pin: the array is pinned, then released, and keeps working", "[graph][policy]") {
  CapturedDiagnostics diags;
  testing::TempPinDir dir;
  std::string old_dir = graph().pin_directory();
  graph().SetPinDirectory(dir.Sub("policy"));
  TailCallSet s = MakeSet("pin_array", LifetimePolicy::kPin);
  uint32_t array_id = s.array.map().id();
  s.array = ProgramArray();
  graph().SetPinDirectory(old_dir);
  auto got = diags.Get();
  REQUIRE(got.size() == 1);
  CHECK(got[0].kind == Diagnostic::Kind::kProgramArrayPinned);
  std::string path = dir.Sub("policy") + "/pin_array_" + std::to_string(array_id);
  CHECK(got[0].pin_path == path);
  struct stat st;
  CHECK(stat(path.c_str(), &st) == 0);
  CHECK(KeepsHitting(s.caller));
  // Take the pin back and remove it: now the array has no user reference.
  auto back = Map::LoadPinned(path);
  REQUIRE(back.ok());
  back->SetLifetimePolicy(LifetimePolicy::kIgnore);
  REQUIRE(back->Unpin().ok());
  *back = Map();
  CHECK(Eventually([&] { return RunValue(s.caller) == kMiss; }));
}

TEST_CASE("a pinned array gives no warning and keeps working without handles", "[graph][policy]") {
  CapturedDiagnostics diags;
  testing::TempPinDir dir;
  TailCallSet s = MakeSet("pinned_array", LifetimePolicy::kWarn);
  std::string path = dir.Sub("jmp");
  REQUIRE(s.array.map().Pin(path).ok());
  CHECK(s.array.map().PinPath() == path);
  s.array = ProgramArray();
  CHECK(diags.Get().empty());
  CHECK(KeepsHitting(s.caller));
  auto back = Map::LoadPinned(path);
  REQUIRE(back.ok());
  back->SetLifetimePolicy(LifetimePolicy::kIgnore);
  REQUIRE(back->Unpin().ok());
}

TEST_CASE("no warning for an empty array, or one that no program uses", "[graph][policy]") {
  CapturedDiagnostics diags;
  {
    auto empty = ProgramArray::Create("empty_array", 2, LifetimePolicy::kWarn);
    REQUIRE(empty.ok());
    Program caller = LoadTailCaller(empty->map(), 0, kMiss, "uses_empty");
    *empty = ProgramArray();
  }
  {
    auto unused = ProgramArray::Create("unused_array", 2, LifetimePolicy::kWarn);
    REQUIRE(unused.ok());
    Program target = LoadReturning(kHit, "in_unused");
    REQUIRE(unused->Set(1, target).ok());
    *unused = ProgramArray();
  }
  {
    // Its only user is gone already: nothing is left to miss.
    auto array = ProgramArray::Create("user_gone", 2, LifetimePolicy::kWarn);
    REQUIRE(array.ok());
    Program target = LoadReturning(kHit, "t");
    Program caller = LoadTailCaller(array->map(), 0, kMiss, "gone_caller");
    REQUIRE(array->Set(0, target).ok());
    caller = Program();
    *array = ProgramArray();
  }
  CHECK(diags.Get().empty());
}

TEST_CASE("Close refuses to orphan a used array unless forced", "[graph][policy]") {
  CapturedDiagnostics diags;
  TailCallSet s = MakeSet("close_array", LifetimePolicy::kIgnore);
  Map m = s.array.map();
  s.array = ProgramArray();
  auto st = m.Close();
  CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(st.message()), Catch::Contains("close_array") && Catch::Contains("caller_p"));
  CHECK(static_cast<bool>(m));  // still held
  CHECK(RunValue(s.caller) == kHit);
  Map copy = m;
  CHECK(m.Close().ok());  // not the last handle: fine
  CHECK(copy.Close(/*force=*/true).ok());
  CHECK_FALSE(static_cast<bool>(copy));
  CHECK(Eventually([&] { return RunValue(s.caller) == kMiss; }));
}

TEST_CASE("a self-recursive tail call is reported as a cycle", "[graph][cycles]") {
  auto array = ProgramArray::Create("self_loop", 4, LifetimePolicy::kIgnore);
  REQUIRE(array.ok());
  Program p = LoadTailCallProgram("recurse", *array);
  REQUIRE(array->Set(0, p).ok());
  NodeRef pn = NodeOf(p);
  NodeRef an = NodeOf(array->map());
  bool found = false;
  for (const Cycle& c : graph().Cycles()) {
    if (c.nodes.size() == 2 && c.nodes[0] == pn && c.nodes[1] == an) found = true;
  }
  CHECK(found);
  // The kernel really loops: 33 nested calls, then the fallthrough.
  CHECK(RunValue(p) == kMiss);
  REQUIRE(array->Delete(0).ok());
  for (const Cycle& c : graph().Cycles()) CHECK(c.nodes != std::vector<NodeRef>{pn, an});
}

TEST_CASE("a cycle through a chain of arrays is found when the last edge closes it", "[graph][cycles]") {
  auto a1 = ProgramArray::Create("chain_a", 1, LifetimePolicy::kIgnore);
  auto a2 = ProgramArray::Create("chain_b", 1, LifetimePolicy::kIgnore);
  REQUIRE(a1.ok());
  REQUIRE(a2.ok());
  Program p1 = LoadTailCaller(a1->map(), 0, 1, "p1");  // p1 -> a1
  Program p2 = LoadTailCaller(a2->map(), 0, 2, "p2");  // p2 -> a2
  REQUIRE(a1->Set(0, p2).ok());                         // a1 -> p2
  auto before = graph().Cycles().size();
  REQUIRE(a2->Set(0, p1).ok());                         // a2 -> p1 closes p1 a1 p2 a2
  auto cycles = graph().Cycles();
  CHECK(cycles.size() == before + 1);
  bool found = false;
  for (const Cycle& c : cycles) {
    if (c.nodes == std::vector<NodeRef>{NodeOf(p1), NodeOf(a1->map()), NodeOf(p2), NodeOf(a2->map())})
      found = true;
  }
  CHECK(found);
  REQUIRE(a2->Clear().ok());
  REQUIRE(a1->Clear().ok());
}

TEST_CASE("Explain and WhatBreaks describe the references", "[graph][queries]") {
  TailCallSet s = MakeSet("jmp_table", LifetimePolicy::kIgnore);
  REQUIRE(s.array.Set(1, s.target).ok());
  REQUIRE(s.array.Set(2, s.target).ok());
  Explanation target_ex = graph().Explain(s.target);
  CHECK(target_ex.alive);
  CHECK_THAT(target_ex.ToString(), Catch::Contains("entry [0] of program array 'jmp_table'") &&
                                       Catch::Contains("tether handle"));
  Explanation map_ex = graph().Explain(s.array.map());
  CHECK_THAT(map_ex.ToString(), Catch::Contains("used by program 'caller_p'"));

  auto breaks = graph().WhatBreaks(s.array.map());
  REQUIRE_FALSE(breaks.empty());
  CHECK_THAT(breaks[0], Catch::Contains("tail calls from caller_p") &&
                            Catch::Contains("jmp_table[0..2] will miss"));
  // The target program is also held by a handle, so it is not freed.
  for (const auto& line : breaks) CHECK_THAT(line, !Catch::Contains("target_q (id"));
  auto prog_breaks = graph().WhatBreaks(s.target);
  CHECK_THAT(prog_breaks[0], Catch::Contains("nothing"));

  std::string dot = graph().ToDot();
  CHECK_THAT(dot, Catch::StartsWith("digraph tether") && Catch::Contains("jmp_table") &&
                      Catch::Contains("[0]") && Catch::Contains("box3d"));
  std::string json = graph().ToJson();
  CHECK_THAT(json, Catch::Contains("\"name\": \"jmp_table\"") && Catch::Contains("\"kind\": \"tail_call\""));
  std::string text = graph().ToText();
  CHECK_THAT(text, Catch::Contains("program array 'jmp_table'") && Catch::Contains("tail_call [2]"));
}

TEST_CASE("graph nodes come and go with the objects", "[graph]") {
  uint32_t prog_id, array_id;
  {
    TailCallSet s = MakeSet("transient", LifetimePolicy::kIgnore);
    prog_id = s.target.id();
    array_id = s.array.map().id();
    CHECK(graph().Node(NodeRef{NodeKind::kProgram, prog_id}).has_value());
    s.target = Program();
    // Still in the array, so still a node.
    auto n = graph().Node(NodeRef{NodeKind::kProgram, prog_id});
    REQUIRE(n.has_value());
    CHECK(n->handles == 0);
  }
  CHECK_FALSE(graph().Node(NodeRef{NodeKind::kProgram, prog_id}).has_value());
  CHECK_FALSE(graph().Node(NodeRef{NodeKind::kMap, array_id}).has_value());
}

TEST_CASE("graph updates from many threads stay consistent", "[graph][threads]") {
  auto array = ProgramArray::Create("threaded", 8, LifetimePolicy::kIgnore);
  REQUIRE(array.ok());
  // Catch2's assertions are not thread-safe: threads count their failures.
  std::atomic<int> failures{0};
  std::atomic<int> warnings{0};
  SetDiagnosticSink([&](const Diagnostic&) { warnings.fetch_add(1); });
  auto load_returning = [&](int32_t value) {
    auto p = testing::TryLoadReturning(value, "thr");
    if (!p.ok()) failures.fetch_add(1);
    return p.ok() ? *p : Program();
  };
  std::vector<std::thread> threads;
  // Four threads overwrite their slot: each Set drops the previous program.
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        Program p = load_returning(t);
        if (!array->Set(static_cast<uint32_t>(t), p).ok()) failures.fetch_add(1);
        (void)graph().ToJson();
      }
    });
  }
  // Two threads make arrays that a program uses and drop their last handle,
  // so the policy check runs while the other threads update the graph.
  // Every other user is pinned (it outlives our handles: a warning at
  // once); the others live only on their handle, which goes right after
  // the array's (a deferred verdict that closes silently).
  testing::TempPinDir dir;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        auto local = ProgramArray::Create("dropped", 2, LifetimePolicy::kWarn);
        if (!local.ok()) {
          failures.fetch_add(1);
          continue;
        }
        Program target = load_returning(1);
        if (!local->Set(0, target).ok()) failures.fetch_add(1);
        auto user = testing::TryLoadTailCaller(local->map(), 0, 0, "thr_caller");
        if (!user.ok()) failures.fetch_add(1);
        bool pinned = i % 2 == 0;
        if (pinned && user.ok() &&
            !user->Pin(dir.Sub("u" + std::to_string(t) + "_" + std::to_string(i))).ok())
          failures.fetch_add(1);
        (void)graph().Cycles();
        (void)graph().WhatBreaks(local->map());
        *local = ProgramArray();  // the last handle: the policy warns here if pinned
        if (pinned && user.ok() && !user->Unpin().ok()) failures.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  SetDiagnosticSink(nullptr);
  CHECK(failures.load() == 0);
  CHECK(warnings.load() == 10);  // one per array whose user was pinned, none lost or doubled
  size_t entries = 0;
  for (const GraphEdge& e : graph().Edges())
    if (e.from == NodeOf(array->map()) && e.kind == EdgeKind::kTailCall) ++entries;
  CHECK(entries == 4);
  REQUIRE(array->Clear().ok());
}
