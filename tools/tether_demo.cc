// The README's first command. It shows the program-array trap and how
// tether catches it:
//   1. load a small tail-call chain from its generated skeleton
//      (tools/demo.bpf.c -> demo.skel.hpp, see docs/skeleton.md): entry
//      -> jmp_table[0] = stage_one -> jmp_table[1] = stage_two, the array
//      filled by the object's static initialiser;
//   2. run it (BPF_PROG_TEST_RUN): entry reaches stage_two;
//   3. print the object graph and render it with graphviz;
//   4. drop the last handle of jmp_table: tether warns, the kernel clears
//      the array, and the same run now misses both tail calls.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include "demo.skel.hpp"
#include "tether/tether.h"

namespace {

using namespace tether;

// What demo.bpf.c returns: how far the chain got.
constexpr int32_t kStageTwo = 2;
constexpr int32_t kMissedFirst = 100;
constexpr int32_t kMissedSecond = 101;

uint32_t Run(const Program& p) {
  std::vector<uint8_t> packet(64, 0);
  RunOptions o;
  o.data = packet;
  auto r = p.Run(o);
  if (!r.ok()) {
    fprintf(stderr, "run failed: %s\n", r.status().ToString().c_str());
    exit(1);
  }
  return r->return_value;
}

std::string Describe(uint32_t ret) {
  switch (ret) {
    case kStageTwo: return "reached stage_two through two tail calls";
    case kMissedFirst: return "the tail call into jmp_table[0] MISSED (fell through)";
    case kMissedSecond: return "the tail call into jmp_table[1] MISSED (fell through)";
    default: return "unexpected";
  }
}

void Render(const std::string& dot_text, const std::string& out_dir, const std::string& stem) {
  std::string dot_path = out_dir + "/" + stem + ".dot";
  std::ofstream(dot_path) << dot_text;
  if (system("command -v dot >/dev/null 2>&1") != 0) {
    printf("  (graphviz `dot` is not installed; wrote %s only)\n", dot_path.c_str());
    return;
  }
  std::string svg = out_dir + "/" + stem + ".svg";
  std::string png = out_dir + "/" + stem + ".png";
  std::string cmd = "dot -Tsvg '" + dot_path + "' -o '" + svg + "' && dot -Tpng '" + dot_path +
                    "' -o '" + png + "'";
  if (system(cmd.c_str()) == 0) {
    printf("  rendered %s and %s\n", svg.c_str(), png.c_str());
  } else {
    printf("  dot failed to render %s\n", dot_path.c_str());
  }
}

template <typename T>
T Must(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) {
    fprintf(stderr, "%s: %s\n", what, v.status().ToString().c_str());
    exit(1);
  }
  return *std::move(v);
}

}  // namespace

int main(int argc, char** argv) {
  // Line-buffered, so the warning (on stderr) lands where it happens.
  setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string out_dir = argc > 1 ? argv[1] : "demo-out";
  mkdir(out_dir.c_str(), 0755);
  if (geteuid() != 0) {
    fprintf(stderr, "tether-demo creates BPF maps and programs: run it as root\n");
    return 1;
  }

  printf("== 1. load a tail-call chain\n");
  Program entry, stage_one, stage_two;
  int sock = -1;
  {
    // The skeleton owns the maps and programs; the handles copied out here
    // outlive it, its jmp_table handle does not.
    demo::Skel skel = Must(demo::Skel::Open(), "open demo.bpf.o");
    if (auto st = skel.Load(); !st.ok()) return fprintf(stderr, "%s\n", st.ToString().c_str()), 1;
    entry = skel.progs.entry;
    stage_one = skel.progs.stage_one;
    stage_two = skel.progs.stage_two;
    Map& jmp_table = skel.maps.jmp_table;
    printf("  loaded %s: jmp_table[0] = stage_one, jmp_table[1] = stage_two (static initialiser)\n",
           demo::kObjectName);
    // Attached, entry lives beyond this process's handles: that is what
    // makes the array's last handle a real hazard (a program that only
    // handles keep alive would go with them, and tether would say nothing).
    sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0 || !AttachSocketFilter(entry, sock).ok()) {
      return fprintf(stderr, "cannot attach entry to a UDP socket\n"), 1;
    }
    printf("  attached entry to a UDP socket (SO_ATTACH_BPF): the socket holds it now\n");

    printf("\n== 2. run entry while jmp_table has a handle\n");
    uint32_t ret = Run(entry);
    printf("  entry returned %u: %s\n", ret, Describe(ret).c_str());

    printf("\n== 3. the object graph\n");
    printf("%s", graph().ToText().c_str());
    Render(graph().ToDot(), out_dir, "graph-before");
    printf("\n  why is stage_two alive?\n  %s\n", graph().Explain(stage_two).ToString().c_str());
    printf("\n  what breaks if jmp_table's last handle goes?\n");
    for (const auto& line : graph().WhatBreaks(jmp_table)) printf("  - %s\n", line.c_str());

    printf("\n== 4. jmp_table's last handle goes out of scope (policy: %s)\n",
           LifetimePolicyName(graph().default_policy()));
  }  // <- the warning fires here, when the skeleton drops jmp_table's last handle

  // The kernel empties the array in deferred work; give it a moment.
  uint32_t ret = Run(entry);
  for (int i = 0; i < 100 && ret == kStageTwo; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ret = Run(entry);
  }
  printf("\n  entry returned %u: %s\n", ret, Describe(ret).c_str());
  // Nothing in the kernel counts a miss; the counter the loader put after
  // each bpf_tail_call does (CollectionOptions::count_tail_call_misses).
  for (int i = 0; i < 9; ++i) Run(entry);
  printf("  ran entry 9 more times; tether's miss counters for entry's call sites:\n");
  auto sites = TailCallMisses(entry);
  if (!sites.ok()) printf("  (cannot read them: %s)\n", sites.status().ToString().c_str());
  for (const TailCallSite& s : sites.ok() ? *sites : std::vector<TailCallSite>()) {
    printf("    %s:%u, bpf_tail_call through %s: %s MISSED\n", s.file.c_str(), s.line,
           s.array.c_str(), std::to_string(s.misses).c_str());
  }
  printf("\n== 5. the graph after the drop\n%s", graph().ToText().c_str());
  Render(graph().ToDot(), out_dir, "graph-after");
  printf("\nThe fix: keep a handle, pin the array (Map::Pin), or choose\n"
         "LifetimePolicy::kKeepAlive / kPin. See docs/lifecycle.md.\n");
  if (!DetachSocketFilter(entry, sock).ok()) fprintf(stderr, "detaching entry failed\n");
  close(sock);
  return ret == kStageTwo ? 1 : 0;
}
