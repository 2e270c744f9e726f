// Hazard kinds and the OpenMetrics export (tether/graph_metrics.h): exact
// output for a graph built by hand, hazards found on real kernel objects,
// and the CLI's output read by the Prometheus client's own parser.
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <string>

#include "test_programs.h"
#include "test_support.h"
#include "tether/attach.h"
#include "tether/graph.h"
#include "tether/graph_metrics.h"
#include "tether/prog_array.h"
#include "tether/system_graph.h"

using namespace tether;

namespace {

// Runs `cmd` through the shell, feeding it `input`; returns exit code and stdout.
std::pair<int, std::string> RunWithInput(const std::string& cmd, const std::string& input) {
  std::string in_file = "/tmp/tether-metrics-test-" + std::to_string(getpid()) + ".in";
  {
    std::ofstream out(in_file);
    out << input;
  }
  FILE* p = popen(("(" + cmd + ") < " + in_file).c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = pclose(p);
  unlink(in_file.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

const std::string kParser =
    std::string(TETHER_PYTHON3) + " " + TETHER_SOURCE_DIR + "/test/openmetrics_parse.py";

GraphNode Node(NodeKind kind, uint32_t id, uint32_t type, const std::string& name) {
  GraphNode n;
  n.ref = {kind, id};
  n.type = type;
  n.name = name;
  return n;
}

bool HasHazard(const std::vector<Hazard>& hazards, NodeRef ref, HazardKind kind) {
  for (const Hazard& h : hazards)
    if (h.node == ref && h.kind == kind) return true;
  return false;
}

}  // namespace

TEST_CASE("a graph with one hazard of each kind gives exact OpenMetrics", "[graph][metrics]") {
  std::vector<GraphNode> nodes;
  // Program 1 uses arrays 10 (no holder), 11 (one process) and 12 (pinned).
  nodes.push_back(Node(NodeKind::kProgram, 1, BPF_PROG_TYPE_SOCKET_FILTER, "caller"));
  nodes.back().holders = {"pid 100 (agent) fd 3"};
  nodes.push_back(Node(NodeKind::kMap, 10, BPF_MAP_TYPE_PROG_ARRAY, "lost"));
  nodes.push_back(Node(NodeKind::kMap, 11, BPF_MAP_TYPE_PROG_ARRAY, "one_proc"));
  nodes.back().holders = {"pid 100 (agent) fd 4", "pid 100 (agent) fd 9"};
  nodes.push_back(Node(NodeKind::kMap, 12, BPF_MAP_TYPE_PROG_ARRAY, "pinned"));
  nodes.back().holders = {"pid 100 (agent) fd 5"};
  nodes.push_back(Node(NodeKind::kMap, 13, BPF_MAP_TYPE_PROG_ARRAY, "two_procs"));
  nodes.back().holders = {"pid 100 (agent) fd 6", "pid 200 (backup) fd 3"};
  // Program 2: attached through a legacy hook only.
  nodes.push_back(Node(NodeKind::kProgram, 2, BPF_PROG_TYPE_SOCKET_FILTER, "filter"));
  nodes.back().legacy_hooks = {"SO_ATTACH_BPF"};
  // Map 20: nothing holds it.
  nodes.push_back(Node(NodeKind::kMap, 20, BPF_MAP_TYPE_HASH, "stray"));
  nodes.push_back(Node(NodeKind::kPin, 1, 0, "/sys/fs/bpf/x/pinned"));
  std::vector<GraphEdge> edges = {
      {{NodeKind::kProgram, 1}, {NodeKind::kMap, 10}, EdgeKind::kUsesMap},
      {{NodeKind::kProgram, 1}, {NodeKind::kMap, 11}, EdgeKind::kUsesMap},
      {{NodeKind::kProgram, 1}, {NodeKind::kMap, 12}, EdgeKind::kUsesMap},
      {{NodeKind::kProgram, 1}, {NodeKind::kMap, 13}, EdgeKind::kUsesMap},
      {{NodeKind::kPin, 1}, {NodeKind::kMap, 12}, EdgeKind::kPinHolds},
      {{NodeKind::kMap, 11}, {NodeKind::kProgram, 1}, EdgeKind::kTailCall, 0},
  };
  auto g = detail::NewStandaloneGraph();
  detail::PopulateGraph(*g, nodes, edges);

  std::vector<Hazard> hazards = FindHazards(*g);
  CHECK(hazards.size() == 4);
  CHECK(HasHazard(hazards, {NodeKind::kMap, 10}, HazardKind::kKernelOnlyProgramArray));
  CHECK(HasHazard(hazards, {NodeKind::kMap, 11}, HazardKind::kSingleProcessProgramArray));
  CHECK(HasHazard(hazards, {NodeKind::kProgram, 2}, HazardKind::kOrphanedLegacyHook));
  CHECK(HasHazard(hazards, {NodeKind::kMap, 20}, HazardKind::kUnheldMap));

  std::string text = ToOpenMetrics(*g);
  CHECK_THAT(text, Catch::EndsWith("# EOF\n"));
  CHECK_THAT(text, Catch::Contains("tether_objects{kind=\"map\"} 5\n"));
  CHECK_THAT(text, Catch::Contains("tether_objects{kind=\"program\"} 2\n"));
  CHECK_THAT(text, Catch::Contains("tether_objects{kind=\"pin\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("tether_edges{kind=\"uses_map\"} 4\n"));
  CHECK_THAT(text, Catch::Contains("tether_cycles 1\n"));
  for (HazardKind kind : kAllHazardKinds) {
    CHECK_THAT(text, Catch::Contains(std::string("tether_hazards{kind=\"") + HazardKindName(kind) + "\"} 1\n"));
  }

  // The Prometheus client library reads it back, every sample included.
  auto [rc, parsed] = RunWithInput(kParser, text);
  INFO(parsed);
  REQUIRE(rc == 0);
  CHECK_THAT(parsed, Catch::Contains("tether_hazards{kind=single_process_program_array} 1"));
  CHECK_THAT(parsed, Catch::Contains("tether_objects{kind=link} 0"));
  CHECK_THAT(parsed, Catch::Contains("tether_cycles{} 1"));
  // And refuses text that is not OpenMetrics, so the check can fail.
  CHECK(RunWithInput(kParser + " 2>/dev/null", "tether_objects{kind=map} 1\n# EOF\n").first == 1);
}

TEST_CASE("hazards on real objects: this process's array, a dropped array, a lone hook",
          "[graph][metrics]") {
  auto array = ProgramArray::Create("metrics_jmp", 2, LifetimePolicy::kIgnore);
  REQUIRE(array.ok());
  uint32_t array_id = array->map().id();
  Program target = testing::LoadReturning(3, "metrics_target");
  Program caller = testing::LoadTailCaller(array->map(), 0, 7, "metrics_caller");
  REQUIRE(array->Set(0, target).ok());
  // In this process's graph the array lives by this process's handle alone.
  CHECK(HasHazard(FindHazards(graph()), {NodeKind::kMap, array_id},
                  HazardKind::kSingleProcessProgramArray));

  // A socket filter whose program handle goes: only the socket holds it.
  int sock = socket(AF_INET, SOCK_DGRAM, 0);
  REQUIRE(sock >= 0);
  uint32_t filter_id = 0;
  {
    Program filter = testing::LoadReturning(0, "metrics_filter");
    filter_id = filter.id();
    REQUIRE(AttachSocketFilter(filter, sock).ok());
  }

  // Dropped, the array is the kernel's alone (a scan leaves out the
  // scanning process's own fds, so the program's fd does not count).
  *array = ProgramArray();
  REQUIRE(testing::Eventually([&] { return testing::RunValue(caller) == 7; }));
  auto g = ScanSystem();
  REQUIRE(g.ok());
  std::vector<Hazard> hazards = FindHazards(**g);
  CHECK(HasHazard(hazards, {NodeKind::kMap, array_id}, HazardKind::kKernelOnlyProgramArray));
  CHECK(HasHazard(hazards, {NodeKind::kProgram, filter_id}, HazardKind::kOrphanedLegacyHook));
  close(sock);
}

TEST_CASE("tether graph --format openmetrics parses with the Prometheus client", "[cli][metrics]") {
  auto array = ProgramArray::Create("metrics_cli", 2, LifetimePolicy::kIgnore);
  REQUIRE(array.ok());
  Program caller = testing::LoadTailCaller(array->map(), 0, 1, "metrics_cli_c");
  auto [rc, parsed] = RunWithInput(std::string(TETHER_CLI) + " graph --format openmetrics | " + kParser, "");
  INFO(parsed);
  REQUIRE(rc == 0);
  CHECK_THAT(parsed, Catch::Contains("tether_objects{kind=map}"));
  CHECK_THAT(parsed, Catch::Contains("tether_hazards{kind=kernel_only_program_array}"));
  // This process holds the array alone: the CLI (another process) counts it.
  std::string line = parsed.substr(parsed.find("tether_hazards{kind=single_process_program_array} "));
  CHECK(std::stoi(line.substr(line.find(' ') + 1)) >= 1);
}
