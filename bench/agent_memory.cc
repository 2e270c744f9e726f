// Memory: what tether and libbpf hold for the agent-scale object, and what
// one handle, graph node and graph edge cost in tether.
//
//   agent_memory [--json]
//
// Peak RSS is measured in a forked child per loader, so each starts from
// the same process image: the child resets its high-water mark
// (clear_refs 5), loads the object, and reports VmHWM minus its RSS
// before the load, plus the heap still in use once loaded. A second pair
// of children loads and closes the object once first, so that the figure
// of a later load (code resident) can be told from the first one's.
// Per-handle, per-node and per-edge bytes come from the heap allocator's
// in-use count (mallinfo2) over 4096 synthetic objects (fd -1, as in
// graph_bench), so the figures are tether's own, without the kernel.
#include <bpf/libbpf.h>
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/types/optional.h"
#include "graph/graph_internal.h"
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

// Large blocks (a grown hash table) come from mmap and count in hblkhd.
size_t HeapInUse() {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

// Resident KiB per mapping, by the mapping's file (the executable, each
// shared library) or its kind ([heap], [anon] for unnamed mappings).
std::map<std::string, long> ResidentByMapping() {
  std::map<std::string, long> out;
  std::ifstream in("/proc/self/smaps");
  std::string line, current;
  while (std::getline(in, line)) {
    // A mapping's header starts "start-end perms offset dev inode [path]";
    // its fields ("Rss:      12 kB") start with a capitalised name.
    size_t dash = line.find('-');
    if (dash != std::string::npos && dash > 0 && isxdigit(static_cast<unsigned char>(line[0])) &&
        line.find(' ') > dash) {
      std::istringstream fields(line);
      std::string range, perms, offset, dev, inode, path;
      fields >> range >> perms >> offset >> dev >> inode >> path;
      current = path.empty() ? "[anon]" : path;
    } else if (line.compare(0, 4, "Rss:") == 0) {
      out[current] += atol(line.c_str() + 4);
    }
  }
  return out;
}

// The largest growths of one load, by mapping: where a first load's RSS
// goes (the code it maps in, per file, against the heap). Fixed-size so
// that it crosses the pipe as plain bytes.
struct MappingGrowth {
  char name[48] = {};
  long kib = 0;
};
constexpr int kMappings = 8;

void TopGrowths(const std::map<std::string, long>& before, const std::map<std::string, long>& after,
                MappingGrowth* out) {
  std::vector<std::pair<long, std::string>> grown;
  for (const auto& [name, kib] : after) {
    auto b = before.find(name);
    long d = kib - (b == before.end() ? 0 : b->second);
    if (d > 0) grown.emplace_back(d, name);
  }
  std::sort(grown.rbegin(), grown.rend());
  for (int i = 0; i < kMappings && i < int(grown.size()); ++i) {
    std::string name = grown[i].second;
    if (size_t slash = name.rfind('/'); slash != std::string::npos) name = name.substr(slash + 1);
    snprintf(out[i].name, sizeof out[i].name, "%s", name.c_str());
    out[i].kib = grown[i].first;
  }
}

struct ChildResult {
  long rss_before_kib = 0;
  long peak_delta_kib = 0;
  long file_delta_kib = 0;  // of which file-backed pages: code touched for the first time
  long heap_held = 0;       // bytes still in use with the object loaded
  MappingGrowth top[kMappings];
  int ok = 0;
};

// One load of the agent object, kept until the figures are read. libbpf's
// object is returned for the caller to close; tether's collection closes
// when the caller drops it.
struct HeldLoad {
  bpf_object* libbpf = nullptr;
  absl::optional<Collection> tether;
  bool ok() const { return libbpf != nullptr || tether.has_value(); }
  ~HeldLoad() {
    if (libbpf) bpf_object__close(libbpf);
  }
};

void LoadAgentObject(bool libbpf, const std::string& dir, HeldLoad* out) {
  if (libbpf) {
    absl::Status st;
    out->libbpf = LibbpfLoadKeep(AgentObject(), dir, &st);
    return;
  }
  auto spec = CollectionSpec::FromMemory(AgentObject().bytes, "agent.bpf.o");
  if (!spec.ok()) return;
  CollectionOptions o;
  o.pin_dir = dir;
  auto coll = Collection::Load(*spec, o);
  if (coll.ok()) out->tether = *std::move(coll);  // a loaded collection keeps no spec
}

// warm: the child loads and closes the object once before measuring, as an
// agent that reloads would: its code is resident and its allocator has
// grown, so the figure is what each later load costs.
ChildResult InChild(bool libbpf, bool warm) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    ChildResult r;
    std::string dir = MakePinDir();
    if (warm) {
      HeldLoad first;
      LoadAgentObject(libbpf, dir, &first);
    }
    RemovePinDir(dir);
    dir = MakePinDir();
    r.rss_before_kib = StatusKib("VmRSS");
    long file_before = StatusKib("RssFile");
    std::ofstream("/proc/self/clear_refs") << "5";  // resets VmHWM
    size_t heap0 = HeapInUse();
    std::map<std::string, long> mappings_before = ResidentByMapping();
    {
      HeldLoad held;
      LoadAgentObject(libbpf, dir, &held);
      r.ok = held.ok();
      r.heap_held = long(HeapInUse() - heap0);
      r.peak_delta_kib = StatusKib("VmHWM") - r.rss_before_kib;
      r.file_delta_kib = StatusKib("RssFile") - file_before;
      TopGrowths(mappings_before, ResidentByMapping(), r.top);
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

detail::MapObject* NewArray(uint32_t id) {
  auto* obj = new detail::MapObject(-1, ArrayInfo(id));
  obj->set_policy(LifetimePolicy::kIgnore);
  return obj;
}

template <typename F>
double Forked(F f) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    double d = f();
    _exit(write(fds[1], &d, sizeof d) == sizeof d ? 0 : 1);
  }
  close(fds[1]);
  double d = -1;
  if (read(fds[0], &d, sizeof d) != sizeof d) d = -1;
  close(fds[0]);
  waitpid(pid, nullptr, 0);
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  bool json = argc > 1 && std::string(argv[1]) == "--json";
  SetDiagnosticSink([](const Diagnostic&) {});
  AgentObject();  // read before forking, so both children start equal
  ChildResult t = InChild(false, false), l = InChild(true, false);
  ChildResult tw = InChild(false, true), lw = InChild(true, true);

  // Each figure is taken in a fresh child, so that both sides of a
  // difference start from the same graph and grow its tables alike.
  double per_object_and_node = Forked([] {
    std::vector<RefPtr<detail::MapObject>> nodes;
    nodes.reserve(kN);
    size_t h = HeapInUse();
    for (uint32_t i = 0; i < kN; ++i) nodes.emplace_back(NewArray(kFakeId + i));
    return double(HeapInUse() - h) / kN;
  });
  // A second handle object on the same kernel object (what Clone() makes):
  // the node exists, only the object and its handle count are new.
  double per_object = Forked([] {
    std::vector<RefPtr<detail::MapObject>> nodes;
    nodes.reserve(2 * kN);
    for (uint32_t i = 0; i < kN; ++i) nodes.emplace_back(NewArray(kFakeId + i));
    size_t h = HeapInUse();
    for (uint32_t i = 0; i < kN; ++i) nodes.emplace_back(NewArray(kFakeId + i));
    return double(HeapInUse() - h) / kN;
  });
  // Programs with and without a uses_map edge to an array each.
  auto programs = [](bool uses) {
    return [uses] {
      std::vector<RefPtr<detail::MapObject>> arrays;
      std::vector<RefPtr<detail::ProgramObject>> progs;
      arrays.reserve(kN);
      progs.reserve(kN);
      for (uint32_t i = 0; i < kN; ++i) arrays.emplace_back(NewArray(kFakeId + i));
      size_t h = HeapInUse();
      for (uint32_t i = 0; i < kN; ++i)
        progs.emplace_back(new detail::ProgramObject(-1, ProgInfo(kFakeId + kN + i, uses ? kFakeId + i : 0)));
      return double(HeapInUse() - h) / kN;
    };
  };
  double prog_node = Forked(programs(false));
  double prog_node_edge = Forked(programs(true));
  // Tail-call edges: array slot -> program.
  double tail_edge = Forked([] {
    std::vector<RefPtr<detail::MapObject>> arrays;
    std::vector<RefPtr<detail::ProgramObject>> progs;
    arrays.reserve(kN);
    progs.reserve(kN);
    for (uint32_t i = 0; i < kN; ++i) arrays.emplace_back(NewArray(kFakeId + i));
    for (uint32_t i = 0; i < kN; ++i) progs.emplace_back(new detail::ProgramObject(-1, ProgInfo(kFakeId + kN + i, 0)));
    size_t h = HeapInUse();
    for (uint32_t i = 0; i < kN; ++i) {
      const ProgramInfo& p = progs[i]->info();
      detail::GraphSetTailCall(arrays[i]->info().id, 0, p.id, p.name, p.type);
    }
    double d = double(HeapInUse() - h) / kN;
    for (uint32_t i = 0; i < kN; ++i) detail::GraphDeleteTailCall(arrays[i]->info().id, 0);
    return d;
  });

  double node = per_object_and_node - per_object;
  double uses_edge = prog_node_edge - prog_node;
  if (json) {
    printf("{\"agent_peak_rss_kib\": {\"tether\": %ld, \"libbpf\": %ld},\n"
           " \"agent_peak_rss_kib_warm\": {\"tether\": %ld, \"libbpf\": %ld},\n"
           " \"agent_file_rss_kib\": {\"tether\": %ld, \"libbpf\": %ld},\n"
           " \"agent_heap_held_bytes\": {\"tether\": %ld, \"libbpf\": %ld},\n"
           " \"handle_bytes\": %zu, \"handle_object_bytes\": %.0f, \"graph_node_bytes\": %.0f,\n"
           " \"uses_map_edge_bytes\": %.0f, \"tail_call_edge_bytes\": %.0f}\n",
           t.peak_delta_kib, l.peak_delta_kib, tw.peak_delta_kib, lw.peak_delta_kib, t.file_delta_kib,
           l.file_delta_kib, t.heap_held, l.heap_held, sizeof(Map), per_object, node, uses_edge, tail_edge);
    return t.ok && l.ok && tw.ok && lw.ok ? 0 : 1;
  }
  printf("agent-scale object (100 programs, 50 maps, 5 program arrays), one forked child per loader:\n");
  printf("  %-8s %-11s %12s %17s %19s %22s\n", "loader", "load", "RSS before", "peak RSS growth", "of which file pages",
         "heap held once loaded");
  auto line = [](const char* who, const char* which, const ChildResult& r) {
    printf("  %-8s %-11s %8ld KiB %13ld KiB %15ld KiB %16ld bytes%s\n", who, which, r.rss_before_kib,
           r.peak_delta_kib, r.file_delta_kib, r.heap_held, r.ok ? "" : "  (load FAILED)");
  };
  line("tether", "first", t);
  line("libbpf", "first", l);
  line("tether", "later", tw);
  line("libbpf", "later", lw);
  if (l.peak_delta_kib > 0 && l.heap_held > 0 && lw.peak_delta_kib > 0) {
    double rss_ratio = double(t.peak_delta_kib) / double(l.peak_delta_kib);
    printf("  ratio tether/libbpf: peak RSS growth %.2f (a later load: %.2f), heap held %.2f\n", rss_ratio,
           double(tw.peak_delta_kib) / double(lw.peak_delta_kib), double(t.heap_held) / double(l.heap_held));
    printf("  goal: peak RSS growth while loading <= 1.0x libbpf: %s\n", rss_ratio <= 1.0 ? "met" : "NOT met");
    printf("  (file pages: code mapped in by the first load, resident for every later one)\n");
  }
  // RSS after the load against before it (not the peak), per mapping.
  printf("\nfirst load, resident growth by mapping (KiB; file mappings are code and read-only data):\n");
  for (const auto& [who, r] : {std::pair<const char*, const ChildResult&>{"tether", t}, {"libbpf", l}}) {
    printf("  %-8s", who);
    for (const MappingGrowth& g : r.top)
      if (g.kib > 0) printf(" %s %ld;", g.name, g.kib);
    printf("\n");
  }
  printf("\ntether's own memory (heap in use, mean of %u):\n", kN);
  printf("  handle (Map/Program/Link value):       %zu bytes (one pointer)\n", sizeof(Map));
  printf("  object behind a handle, node existing: %.0f bytes (MapObject: fd, info, policy)\n", per_object);
  printf("  graph node (with its share of the tables): %.0f bytes\n", node);
  printf("  uses_map edge:                         %.0f bytes\n", uses_edge);
  printf("  tail_call edge (array slot):           %.0f bytes\n", tail_edge);
  return t.ok && l.ok && tw.ok && lw.ok ? 0 : 1;
}
