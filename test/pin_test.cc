// Pins on the live kernel: a pin is a reference of its own, so the object
// outlives every handle, keeps working, and goes when the pin goes.
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "link_fixtures.h"
#include "test_programs.h"
#include "test_support.h"
#include "tether/attach.h"
#include "tether/graph.h"
#include "tether/link.h"
#include "tether/pin.h"
#include "tether/prog_array.h"
#include "tether/probe.h"

using namespace tether;
using testing::Eventually;
using testing::KernelHasLink;
using testing::KernelHasMap;
using testing::KernelHasProgram;
using testing::LoadReturning;
using testing::LoadTailCaller;
using testing::RunValue;

namespace {
constexpr uint32_t kHit = 42;
constexpr uint32_t kMiss = 7;

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }
}  // namespace

TEST_CASE("a pinned map outlives its handles and goes with its pin", "[pin]") {
  testing::TempPinDir dir;
  uint32_t id = 0;
  {
    Map m = testing::CounterMap("pinned_map");
    REQUIRE_OK(m.Update(uint32_t{0}, uint64_t{1234}));
    REQUIRE_OK(m.Pin(dir.Sub("m")));
    id = m.id();
  }
  CHECK(KernelHasMap(id));
  auto back = Map::LoadPinned(dir.Sub("m"));
  REQUIRE_OK(back);
  CHECK(back->id() == id);
  CHECK(testing::ReadCounter(*back) == 1234);
  REQUIRE_OK(back->Unpin());
  CHECK_FALSE(Exists(dir.Sub("m")));
  *back = Map();
  CHECK(Eventually([&] { return !KernelHasMap(id); }));
}

TEST_CASE("a pin this process makes is a reference in the graph until it is unpinned", "[pin][graph]") {
  testing::TempPinDir dir;
  Map m = testing::CounterMap("graph_pin");
  NodeRef node = NodeOf(m);
  CHECK_FALSE(absl::StrContains(graph().Explain(node).ToString(), "pinned at"));
  REQUIRE_OK(m.Pin(dir.Sub("first")));
  CHECK(absl::StrContains(graph().Explain(node).ToString(), "pinned at " + dir.Sub("first")));
  bool pin_edge = false;
  for (const GraphEdge& e : graph().Edges()) pin_edge |= e.to == node && e.kind == EdgeKind::kPinHolds;
  CHECK(pin_edge);
  // Re-pinning moves the pin: the old path is gone, in bpffs and in the graph.
  REQUIRE_OK(m.Pin(dir.Sub("second")));
  std::string why = graph().Explain(node).ToString();
  CHECK(absl::StrContains(why, "pinned at " + dir.Sub("second")));
  CHECK_FALSE(absl::StrContains(why, dir.Sub("first")));
  CHECK_FALSE(Exists(dir.Sub("first")));
  REQUIRE_OK(m.Unpin());
  CHECK_FALSE(absl::StrContains(graph().Explain(node).ToString(), "pinned at"));
  CHECK_FALSE(Exists(dir.Sub("second")));
}

TEST_CASE("tail calls through a pinned program array work after every handle is gone", "[pin][prog_array]") {
  testing::TempPinDir dir;
  uint32_t array_id = 0, target_id = 0;
  {
    auto array = ProgramArray::Create("pinned_jmp", 4, LifetimePolicy::kIgnore);
    REQUIRE_OK(array);
    Program target = LoadReturning(kHit, "pin_target");
    REQUIRE_OK(array->Set(0, target));
    REQUIRE_OK(array->map().Pin(dir.Sub("jmp")));
    array_id = array->map().id();
    target_id = target.id();
  }
  // Nothing in this process refers to the array or its target; the pin
  // keeps both, entries and all.
  CHECK(KernelHasMap(array_id));
  CHECK(KernelHasProgram(target_id));

  auto pinned = Map::LoadPinned(dir.Sub("jmp"));
  REQUIRE_OK(pinned);
  // Loading the pin read the entries into the graph.
  std::string why = graph().Explain(NodeRef{NodeKind::kProgram, target_id}).ToString();
  CHECK(absl::StrContains(why, "entry [0]"));
  CHECK(absl::StrContains(why, "pinned at " + dir.Sub("jmp")));
  Program caller = LoadTailCaller(*pinned, 0, static_cast<int32_t>(kMiss), "pin_caller");
  *pinned = Map();  // the pin alone now holds the array's entries
  CHECK(RunValue(caller) == kHit);

  // Unpinning takes the last user reference: the kernel clears the array.
  auto again = Map::LoadPinned(dir.Sub("jmp"));
  REQUIRE_OK(again);
  // kIgnore: the caller lives only on its handle here, so under kWarn the
  // graph would hold the array until the caller goes (a deferred verdict,
  // docs/lifecycle.md); this test is about the kernel's rule.
  again->SetLifetimePolicy(LifetimePolicy::kIgnore);
  REQUIRE_OK(again->Unpin());
  *again = Map();
  CHECK(Eventually([&] { return RunValue(caller) == kMiss; }));
  CHECK(Eventually([&] { return !KernelHasProgram(target_id); }));
}

TEST_CASE("a pinned link outlives its handles; unpinning detaches it", "[pin][link]") {
  TETHER_REQUIRE_FEATURE("raw tracepoints", probe::HaveLinkKind(probe::LinkKind::kRawTracepoint));
  testing::TempPinDir dir;
  uint32_t link_id = 0, prog_id = 0, map_id = 0;
  {
    Map count = testing::CounterMap("pin_link");
    Program prog = testing::LoadCounter(count, {BPF_PROG_TYPE_RAW_TRACEPOINT, 0, 0, 0, "pin_link"});
    auto link = AttachRawTracepoint(prog, "sys_enter");
    REQUIRE_OK(link);
    REQUIRE_OK(link->Pin(dir.Sub("a/b/link")));  // missing parents are made
    link_id = link->id();
    prog_id = prog.id();
    map_id = count.id();
  }
  CHECK(KernelHasLink(link_id));
  CHECK(KernelHasProgram(prog_id));
  auto count = Map::FromId(map_id);
  REQUIRE_OK(count);
  uint64_t before = testing::ReadCounter(*count);
  getppid();
  CHECK(testing::ReadCounter(*count) > before);  // still attached, still running

  auto link = Link::LoadPinned(dir.Sub("a/b/link"));
  REQUIRE_OK(link);
  CHECK(link->id() == link_id);
  CHECK(link->info().prog_id == prog_id);
  std::string why = graph().Explain(NodeRef{NodeKind::kProgram, prog_id}).ToString();
  CHECK(absl::StrContains(why, "held by link"));
  CHECK(absl::StrContains(why, "pinned at " + dir.Sub("a/b/link")));

  // Re-pinning moves the pin.
  REQUIRE_OK(link->Pin(dir.Sub("moved")));
  CHECK(Exists(dir.Sub("moved")));
  CHECK_FALSE(Exists(dir.Sub("a/b/link")));
  CHECK(link->PinPath() == dir.Sub("moved"));

  REQUIRE_OK(link->Unpin());
  CHECK_FALSE(Exists(dir.Sub("moved")));
  *link = Link();
  CHECK(Eventually([&] { return !KernelHasLink(link_id); }));
  CHECK(Eventually([&] { return !KernelHasProgram(prog_id); }));
}

TEST_CASE("pinning a program keeps it loaded", "[pin]") {
  testing::TempPinDir dir;
  uint32_t id = 0;
  {
    Program p = LoadReturning(kHit, "pinned_prog");
    REQUIRE_OK(p.Pin(dir.Sub("p")));
    id = p.id();
  }
  CHECK(KernelHasProgram(id));
  auto back = Program::LoadPinned(dir.Sub("p"));
  REQUIRE_OK(back);
  CHECK(RunValue(*back) == kHit);
  REQUIRE_OK(back->Unpin());
  *back = Program();
  CHECK(Eventually([&] { return !KernelHasProgram(id); }));
}

TEST_CASE("pin paths outside bpffs are refused with a clear error", "[pin]") {
  Program p = LoadReturning(0, "nowhere");
  std::string path = "/tmp/tether-not-bpffs-" + std::to_string(getpid());
  absl::Status st = p.Pin(path);
  CHECK(absl::IsFailedPrecondition(st));
  CHECK(absl::StrContains(st.message(), "not on bpffs"));
  CHECK(absl::StrContains(st.message(), "/tmp"));
  CHECK(absl::StrContains(st.message(), "nowhere"));
  CHECK_FALSE(Exists(path));
  absl::Status load = Link::LoadPinned(path).status();
  CHECK(absl::IsFailedPrecondition(load));
}

TEST_CASE("a pin of another kind is refused by LoadPinned", "[pin]") {
  testing::TempPinDir dir;
  Program p = LoadReturning(0, "kind_check");
  REQUIRE_OK(p.Pin(dir.Sub("p")));
  auto as_link = Link::LoadPinned(dir.Sub("p"));
  CHECK(absl::IsInvalidArgument(as_link.status()));
  CHECK(absl::StrContains(as_link.status().message(), "not a link"));
  REQUIRE_OK(p.Unpin());
}

TEST_CASE("LoadPinDirectory returns a handle for every pinned object", "[pin]") {
  TETHER_REQUIRE_FEATURE("raw tracepoints", probe::HaveLinkKind(probe::LinkKind::kRawTracepoint));
  testing::TempPinDir dir;
  uint32_t map_id = 0, prog_id = 0, link_id = 0, array_id = 0;
  {
    Map m = testing::CounterMap("dir_map");
    Program p = testing::LoadCounter(m, {BPF_PROG_TYPE_RAW_TRACEPOINT, 0, 0, 0, "dir_prog"});
    auto l = AttachRawTracepoint(p, "sys_enter");
    REQUIRE_OK(l);
    auto array = ProgramArray::Create("dir_jmp", 2, LifetimePolicy::kIgnore);
    REQUIRE_OK(array);
    Program target = LoadReturning(kHit, "dir_target");
    REQUIRE_OK(array->Set(1, target));
    REQUIRE_OK(m.Pin(dir.Sub("map")));
    REQUIRE_OK(p.Pin(dir.Sub("prog")));
    REQUIRE_OK(l->Pin(dir.Sub("sub/link")));
    REQUIRE_OK(array->map().Pin(dir.Sub("jmp")));
    map_id = m.id();
    prog_id = p.id();
    link_id = l->id();
    array_id = array->map().id();
  }
  auto flat = LoadPinDirectory(dir.path());
  REQUIRE_OK(flat);
  CHECK(flat->maps.size() == 2);
  CHECK(flat->programs.size() == 1);
  CHECK(flat->links.empty());

  auto all = LoadPinDirectory(dir.path(), /*recursive=*/true);
  REQUIRE_OK(all);
  REQUIRE(all->size() == 4);
  CHECK(all->maps.at(dir.Sub("map")).id() == map_id);
  CHECK(all->maps.at(dir.Sub("jmp")).id() == array_id);
  CHECK(all->programs.at(dir.Sub("prog")).id() == prog_id);
  CHECK(all->links.at(dir.Sub("sub/link")).id() == link_id);
  // The array's entry is in the graph again, and a caller still hits it.
  Program caller = LoadTailCaller(all->maps.at(dir.Sub("jmp")), 1, static_cast<int32_t>(kMiss));
  CHECK(RunValue(caller) == kHit);

  auto outside = LoadPinDirectory("/tmp");
  CHECK(absl::IsFailedPrecondition(outside.status()));
  // TempPinDir removes the pins; the objects go with them and the handles.
}
