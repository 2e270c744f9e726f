// Memory: what tether and libbpf hold for the agent-scale object, and what
// one handle, graph node and graph edge cost in tether.
//
//   agent_memory [--json]
//
// Peak RSS is measured in a forked child per loader, so each starts from
// the same process image: the child resets its high-water mark
// (clear_refs 5), loads the object, and reports VmHWM minus its RSS
// before the load, plus the heap still in use once loaded.
// Per-handle, per-node and per-edge bytes come from the heap allocator's
// in-use count (mallinfo2) over 4096 synthetic objects (fd -1, as in
// graph_bench), so the figures are tether's own, without the kernel.
#include <bpf/libbpf.h>
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "graph_internal.h"
#include "load_common.h"
#include "tether/collection.h"
#include "tether/graph.h"
#include "tether/map.h"
#include "tether/program.h"

namespace {

using namespace tether;
using namespace tether::bench;

long StatusKib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  size_t n = strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0 && line[n] == ':') return atol(line.c_str() + n + 1);
  }
  return -1;
}

size_t HeapInUse() { return mallinfo2().uordblks; }

struct ChildResult {
  long rss_before_kib = 0;
  long peak_delta_kib = 0;
  long heap_held = 0;  // bytes still in use with the object loaded
  int ok = 0;
};

ChildResult InChild(bool libbpf) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    ChildResult r;
    r.rss_before_kib = StatusKib("VmRSS");
    std::ofstream("/proc/self/clear_refs") << "5";  // resets VmHWM
    size_t heap0 = HeapInUse();
    std::string dir = MakePinDir();
    if (libbpf) {
      absl::Status st;
      bpf_object* obj = LibbpfLoadKeep(AgentObject(), dir, &st);
      r.ok = obj != nullptr;
      r.heap_held = long(HeapInUse() - heap0);
      r.peak_delta_kib = StatusKib("VmHWM") - r.rss_before_kib;
      if (obj) bpf_object__close(obj);
    } else {
      auto spec = CollectionSpec::FromMemory(AgentObject().bytes, "agent.bpf.o");
      if (spec.ok()) {
        auto coll = Collection::Load(*spec);
        spec = absl::UnknownError("dropped");  // a loaded collection keeps no spec
        r.ok = coll.ok();
        r.heap_held = long(HeapInUse() - heap0);
        r.peak_delta_kib = StatusKib("VmHWM") - r.rss_before_kib;
      }
    }
    RemovePinDir(dir);
    if (write(fds[1], &r, sizeof r) != sizeof r) _exit(1);
    _exit(0);
  }
  close(fds[1]);
  ChildResult r;
  if (read(fds[0], &r, sizeof r) != sizeof r) r = {};
  close(fds[0]);
  waitpid(pid, nullptr, 0);
  return r;
}

constexpr uint32_t kN = 4096;
constexpr uint32_t kFakeId = 0x60000000;

MapInfo ArrayInfo(uint32_t id) {
  MapInfo info;
  info.id = id;
  info.type = BPF_MAP_TYPE_PROG_ARRAY;
  info.key_size = info.value_size = 4;
  info.max_entries = 4;
  info.name = "arr";  // fits the small-string buffer, like most names
  return info;
}

ProgramInfo ProgInfo(uint32_t id, uint32_t uses) {
  ProgramInfo info;
  info.id = id;
  info.type = BPF_PROG_TYPE_SOCKET_FILTER;
  info.name = "prog";
  if (uses) info.map_ids = {uses};
  return info;
}

}  // namespace

int main(int argc, char** argv) {
  bool json = argc > 1 && std::string(argv[1]) == "--json";
  SetDiagnosticSink([](const Diagnostic&) {});
  AgentObject();  // read before forking, so both children start equal
  ChildResult t = InChild(false), l = InChild(true);

  // One node per object: each new id is a new node with one handle.
  std::vector<RefPtr<detail::MapObject>> nodes;
  nodes.reserve(2 * kN);
  size_t h0 = HeapInUse();
  for (uint32_t i = 0; i < kN; ++i) {
    auto* obj = new detail::MapObject(-1, ArrayInfo(kFakeId + i));
    obj->set_policy(LifetimePolicy::kIgnore);
    nodes.emplace_back(obj);
  }
  double per_object_and_node = double(HeapInUse() - h0) / kN;
  // A second handle object on the same kernel object (what Clone() makes):
  // the node exists, only the object and its handle count are new.
  size_t h1 = HeapInUse();
  for (uint32_t i = 0; i < kN; ++i) {
    auto* obj = new detail::MapObject(-1, ArrayInfo(kFakeId + i));
    obj->set_policy(LifetimePolicy::kIgnore);
    nodes.emplace_back(obj);
  }
  double per_object = double(HeapInUse() - h1) / kN;
  // Programs using an array: a node plus a uses_map edge each; without the
  // map, a node alone.
  std::vector<RefPtr<detail::ProgramObject>> progs;
  progs.reserve(3 * kN);
  size_t h2 = HeapInUse();
  for (uint32_t i = 0; i < kN; ++i) progs.emplace_back(new detail::ProgramObject(-1, ProgInfo(kFakeId + kN + i, 0)));
  double prog_node = double(HeapInUse() - h2) / kN;
  size_t h3 = HeapInUse();
  for (uint32_t i = 0; i < kN; ++i)
    progs.emplace_back(new detail::ProgramObject(-1, ProgInfo(kFakeId + 2 * kN + i, kFakeId + i)));
  double prog_node_edge = double(HeapInUse() - h3) / kN;
  // Tail-call edges: array slot -> program.
  size_t h4 = HeapInUse();
  for (uint32_t i = 0; i < kN; ++i) detail::GraphSetTailCall(nodes[i].get(), 0, progs[i].get());
  double tail_edge = double(HeapInUse() - h4) / kN;
  for (uint32_t i = 0; i < kN; ++i) detail::GraphDeleteTailCall(nodes[i].get(), 0);
  progs.clear();
  nodes.clear();

  double node = per_object_and_node - per_object;
  double uses_edge = prog_node_edge - prog_node;
  if (json) {
    printf("{\"agent_peak_rss_kib\": {\"tether\": %ld, \"libbpf\": %ld},\n"
           " \"agent_heap_held_bytes\": {\"tether\": %ld, \"libbpf\": %ld},\n"
           " \"handle_bytes\": %zu, \"handle_object_bytes\": %.0f, \"graph_node_bytes\": %.0f,\n"
           " \"uses_map_edge_bytes\": %.0f, \"tail_call_edge_bytes\": %.0f}\n",
           t.peak_delta_kib, l.peak_delta_kib, t.heap_held, l.heap_held, sizeof(Map), per_object, node,
           uses_edge, tail_edge);
    return t.ok && l.ok ? 0 : 1;
  }
  printf("agent-scale object (100 programs, 50 maps, 5 program arrays), one forked child per loader:\n");
  printf("  %-8s %14s %18s %22s\n", "loader", "RSS before", "peak RSS growth", "heap held once loaded");
  printf("  %-8s %11ld KiB %14ld KiB %16ld bytes%s\n", "tether", t.rss_before_kib, t.peak_delta_kib, t.heap_held,
         t.ok ? "" : "  (load FAILED)");
  printf("  %-8s %11ld KiB %14ld KiB %16ld bytes%s\n", "libbpf", l.rss_before_kib, l.peak_delta_kib, l.heap_held,
         l.ok ? "" : "  (load FAILED)");
  if (l.peak_delta_kib > 0 && l.heap_held > 0) {
    printf("  ratio tether/libbpf: peak RSS growth %.2f, heap held %.2f\n",
           double(t.peak_delta_kib) / double(l.peak_delta_kib), double(t.heap_held) / double(l.heap_held));
  }
  printf("\ntether's own memory (heap in use, mean of %u):\n", kN);
  printf("  handle (Map/Program/Link value):       %zu bytes (one pointer)\n", sizeof(Map));
  printf("  object behind a handle, node existing: %.0f bytes (MapObject, fd, info, graph handle count)\n", per_object);
  printf("  graph node:                            %.0f bytes\n", node);
  printf("  uses_map edge:                         %.0f bytes\n", uses_edge);
  printf("  tail_call edge (array slot):           %.0f bytes\n", tail_edge);
  return t.ok && l.ok ? 0 : 1;
}
