// Live replacement of a tail-call pipeline under real traffic: a veth pair
// in a private network namespace, frames sent without pause from one end,
// an XDP entry on the other with three tail calls behind it
// (test/bpf/pipeline.bpf.c). The pipeline is replaced 1,000 times in
// process and 100 times across processes while the frames flow; no tail
// call may miss and every frame the entry saw must be counted by exactly
// one build. The naive orders, run the same way, must show misses, which
// proves the counters can see them.
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "sys/rtnetlink.h"
#include "test_support.h"
#include "tether/attach.h"
#include "tether/collection.h"
#include "tether/collection_spec.h"
#include "tether/prog_array.h"
#include "tether/replace.h"

using namespace tether;
using tether::testing::Eventually;

namespace {

using Clock = std::chrono::steady_clock;

// XDP, or tcx under emulation. Each swap of the XDP program on an
// interface re-patches the kernel's XDP dispatcher (live kernel text
// patching); in a CI run under QEMU's TCG that panicked the 6.12 guest in
// the middle of a frame (RIP inside bpf_dispatcher_xdp_func, "Fatal
// exception in interrupt") during the thousand swaps. A tcx link swaps a
// pointer in an array instead. So under TCG (the VM runner says so), where
// tcx exists, the pipeline runs as tcx ingress programs; on the host and
// on 6.1 (no tcx) it runs as XDP. The protocol and every check are the same.
// The tcx build also makes its tail-call indexes opaque to the verifier:
// a later run panicked the 6.12 guest inside a direct tail-call jump that
// the kernel was re-patching on a slot update (pipeline.bpf.c says more).
bool UseTcx() {
  static const bool tcx = [] {
    const char* accel = getenv("TETHER_VM_ACCEL_USED");
    return accel != nullptr && std::string(accel) == "tcg" &&
           probe::HaveLinkKind(probe::LinkKind::kTcx).ok();
  }();
  return tcx;
}

const char* PipelineObject() { return UseTcx() ? "pipeline_tcx" : "pipeline"; }
const char* Hook() { return UseTcx() ? "tcx ingress" : "XDP"; }

// The sender: a thread in its own network namespace with a veth pair; the
// entry is attached there (an ifindex means something only in its
// namespace), then raw frames go out of one end without pause until
// Stop(). The namespace, and with it the veth and the XDP link's hook, go
// when the thread ends.
class Traffic {
 public:
  // `attach` runs in the namespace with the receiving end's ifindex.
  explicit Traffic(std::function<absl::StatusOr<Link>(int ifindex)> attach)
      : thread_([this, attach] { Run(attach); }) {
    ready_.get_future().wait();
  }
  ~Traffic() { Stop(); }

  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  const std::string& error() const { return error_; }
  const Link& link() const { return link_; }
  uint64_t sent() const { return sent_; }

 private:
  void Run(const std::function<absl::StatusOr<Link>(int)>& attach) {
    int tx = Setup(attach);
    ready_.set_value();
    if (tx < 0) return;
    unsigned char frame[60] = {};
    memset(frame, 0xff, 6);               // broadcast: the peer takes it
    frame[6] = 0x02;                      // a locally administered source
    frame[12] = 0x88, frame[13] = 0xb5;   // the local experimental ethertype
    // Bursts with short pauses: a steady stream (tens of thousands of
    // frames a second, dozens per replacement) that leaves the second CPU
    // of a small machine to the replacements.
    while (!stop_) {
      for (int i = 0; i < kBurst; ++i) {
        if (send(tx, frame, sizeof(frame), 0) == sizeof(frame)) ++sent_;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    close(tx);
  }

  int Setup(const std::function<absl::StatusOr<Link>(int)>& attach) {
    if (unshare(CLONE_NEWNET) != 0) return Fail("unshare(CLONE_NEWNET)");
    auto nl = sys::RtNetlink::Open();
    absl::Status st = nl.ok() ? nl->AddVethPair("pl_tx", "pl_rx") : nl.status();
    if (!st.ok()) return Fail(st.ToString(), false);
    int tx_index = static_cast<int>(if_nametoindex("pl_tx"));
    int rx_index = static_cast<int>(if_nametoindex("pl_rx"));
    auto link = attach(rx_index);
    if (!link.ok()) return Fail(link.status().ToString(), false);
    link_ = *link;
    int tx = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    sockaddr_ll addr{};
    addr.sll_family = AF_PACKET;
    addr.sll_ifindex = tx_index;
    if (tx < 0 || bind(tx, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return Fail("AF_PACKET socket on pl_tx");
    }
    return tx;
  }

  int Fail(const std::string& what, bool with_errno = true) {
    error_ = with_errno ? what + ": " + strerror(errno) : what;
    return -1;
  }

  static constexpr int kBurst = 8;
  std::promise<void> ready_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> sent_{0};
  std::string error_;
  Link link_;
  std::thread thread_;
};

uint64_t Read(const Map& map, uint32_t key) {
  uint64_t v = 0;
  map.Lookup(key, &v).IgnoreError();
  return v;
}

// The pipeline's counters, through maps every build shares.
struct Counts {
  uint64_t seen = 0, counted = 0, misses = 0;
  uint32_t versions = 0;  // versions that counted at least one frame
};

Counts ReadCounts(const Map& seen, const Map& counters, const Map& misses) {
  Counts c;
  c.seen = Read(seen, 0);
  for (uint32_t site = 0; site < 3; ++site) c.misses += Read(misses, site);
  for (uint32_t v = 0; v < counters.max_entries(); ++v) {
    uint64_t n = Read(counters, v);
    c.counted += n;
    c.versions += n != 0;
  }
  return c;
}

// After the sender stopped: frames still queued drain within moments, and
// the kernel's own frames (IPv6 autoconfiguration) may still arrive, so
// poll until what the entry saw is what the builds counted.
Counts Settle(const Map& seen, const Map& counters, const Map& misses) {
  Counts c;
  Eventually([&] {
    c = ReadCounts(seen, counters, misses);
    return c.seen == c.counted + c.misses;
  });
  return c;
}

absl::StatusOr<CollectionSpec> Build(const CollectionSpec& base, uint32_t version) {
  CollectionSpec spec = base.Copy();
  absl::Status st = spec.SetVariable("version", version);
  if (!st.ok()) return st;
  return spec;
}

// The first build: loaded, finals[0] filled by hand (it has no static
// entry), attached by the sender's thread.
struct Started {
  Collection first;
  std::unique_ptr<Traffic> traffic;
};

Started Start(const CollectionSpec& base, const CollectionOptions& options = {}) {
  Started s;
  auto spec = Build(base, 1);
  REQUIRE(spec.ok());
  auto coll = Collection::Load(*spec, options);
  REQUIRE(coll.ok());
  s.first = std::move(*coll);
  auto finals = ProgramArray::FromMap(s.first.map("finals"), false);
  REQUIRE(finals.ok());
  REQUIRE(finals->Set(0, s.first.program("stage_three")).ok());
  Program entry = s.first.program("entry");
  s.traffic = std::make_unique<Traffic>([entry](int ifindex) {
    if (UseTcx()) return AttachTcx(entry, ifindex, TcxDirection::kIngress);
    return AttachXdp(entry, ifindex, XDP_FLAGS_SKB_MODE);
  });
  INFO(s.traffic->error());
  REQUIRE(s.traffic->error().empty());
  // Frames flow before anything is replaced.
  Map seen = s.first.map("seen");
  REQUIRE(Eventually([&] { return Read(seen, 0) > 1000; }));
  return s;
}

CollectionSpec PipelineSpec() {
  auto spec = CollectionSpec::FromFile(testing::BpfObjectPath(PipelineObject()));
  REQUIRE(spec.ok());
  return *spec;
}

// Ends a child that still waits on its stdin.
void Retire(pid_t pid, int stdin_fd) {
  close(stdin_fd);
  int status = 0;
  waitpid(pid, &status, 0);
}

struct Agent {
  pid_t pid = -1;
  int stdin_fd = -1;
  std::string line;  // its first line: "ok ..." or "error: ..."
};

Agent SpawnAgent(const std::string& dir, uint32_t version) {
  Agent a;
  int in[2], out[2];
  REQUIRE(pipe2(in, O_CLOEXEC) == 0);
  REQUIRE(pipe2(out, O_CLOEXEC) == 0);
  std::string object = testing::BpfObjectPath(PipelineObject());
  std::string ver = std::to_string(version);
  // posix_spawn (vfork semantics): the test binary is large, and copying
  // its page tables for each of the hundred agents would be most of their cost.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  const char* argv[] = {TETHER_PIPELINE_AGENT, object.c_str(), dir.c_str(), ver.c_str(), nullptr};
  int err = posix_spawn(&a.pid, TETHER_PIPELINE_AGENT, &actions, nullptr,
                        const_cast<char* const*>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  INFO("posix_spawn " << TETHER_PIPELINE_AGENT << ": " << strerror(err));
  REQUIRE(err == 0);
  close(in[0]);
  close(out[1]);
  a.stdin_fd = in[1];
  char buf[4096];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof(buf))) > 0) {
    a.line.append(buf, static_cast<size_t>(n));
    if (a.line.find('\n') != std::string::npos) break;
  }
  close(out[0]);
  return a;
}

// The host runs the full counts; under emulation (the 6.1/6.12 VMs run
// under TCG, 20-30x slower) a replacement takes tens of milliseconds, and
// the counts are cut to a tenth, which the test prints.
uint32_t Scaled(uint32_t full, double first_replacement_ms) {
  if (first_replacement_ms <= 40) return full;
  WARN("the first replacement took " << first_replacement_ms << " ms (emulation?): running "
                                     << full / 10 << " replacements instead of " << full);
  return full / 10;
}

// The loader's own counters (the tether_misses map each build carries),
// summed over `programs`: an independent count of the same event the
// hand-written misses[] counts. `sites` gets how many sites were read, so a
// caller can require counters were there at all.
uint64_t LoaderMisses(const std::vector<Program>& programs, size_t* sites = nullptr) {
  uint64_t sum = 0;
  for (const Program& prog : programs) {
    auto read = TailCallMisses(prog);
    INFO(prog.name() << ": " << read.status().ToString());
    REQUIRE(read.ok());
    for (const TailCallSite& site : *read) sum += site.misses;
    if (sites != nullptr) *sites += read->size();
  }
  return sum;
}

std::vector<Program> ProgramsOf(const std::map<std::string, Program>& programs) {
  std::vector<Program> out;
  for (const auto& [name, prog] : programs) out.push_back(prog);
  return out;
}

// The programs of the build a pinned pipeline runs now: the link's program
// and every entry of its program arrays (as the agent opens them).
std::vector<Program> OpenPinnedBuild(const CollectionSpec& spec, const std::string& dir) {
  auto adopted = Pipeline::AdoptPinned(spec, dir, "entry");
  INFO(adopted.status().ToString());
  REQUIRE(adopted.ok());
  auto entry_id = adopted->link.ProgramId();
  REQUIRE(entry_id.ok());
  auto entry = Program::FromId(*entry_id);
  REQUIRE(entry.ok());
  std::vector<Program> out{*entry};
  for (const auto& [name, map] : adopted->maps) {
    if (map.info().type != BPF_MAP_TYPE_PROG_ARRAY) continue;
    auto array = ProgramArray::FromMap(map, false);
    REQUIRE(array.ok());
    for (uint32_t slot = 0; slot < map.info().max_entries; ++slot) {
      auto id = array->Get(slot);
      REQUIRE(id.ok());
      if (!id->has_value()) continue;
      auto prog = Program::FromId(**id);
      REQUIRE(prog.ok());
      out.push_back(*prog);
    }
  }
  return out;
}

// The loader_misses=<n> an agent printed on its "ok" line; -1 if absent.
int64_t AgentLoaderMisses(const std::string& line) {
  size_t at = line.find("loader_misses=");
  if (at == std::string::npos) return -1;
  return std::strtoll(line.c_str() + at + strlen("loader_misses="), nullptr, 10);
}

}  // namespace

TEST_CASE("pipeline: 1000 in-process replacements under traffic miss nothing", "[replace][traffic]") {
  CollectionSpec base = PipelineSpec();
  Started s = Start(base);
  Pipeline running = Pipeline::FromCollection(s.first, "entry", s.traffic->link());
  Map seen = s.first.map("seen"), counters = s.first.map("counters"), misses = s.first.map("misses");
  s.first = Collection();  // from here the pipeline holds the build

  auto t0 = Clock::now();
  uint64_t loader_misses = 0;
  double reading = 0;  // ms spent reading the loader's counters
  uint32_t replacements = 1000;
  for (uint32_t v = 2; v < 2 + replacements; ++v) {
    auto spec = Build(base, v);
    REQUIRE(spec.ok());
    ReplaceStats stats;
    std::vector<Program> old = ProgramsOf(running.programs);
    absl::Status st = ReplacePipeline(running, *spec, {}, &stats);
    INFO("replacement to version " << v << ": " << st.ToString());
    REQUIRE(st.ok());
    // The old build is switched away from and drained: its counters are final.
    size_t sites = 0;
    auto read_start = Clock::now();
    loader_misses += LoaderMisses(old, &sites);
    reading += std::chrono::duration<double, std::milli>(Clock::now() - read_start).count();
    CHECK(sites == 3);  // entry, stage_one, stage_two each have one site
    if (v == 2) {
      // counters, misses, seen; and the tcx build's .bss (slot_base).
      CHECK(stats.maps_kept == (UseTcx() ? 4u : 3u));
      CHECK(stats.arrays_new == 2);
      CHECK(stats.slots_filled == 1);  // finals[0], which no static entry fills
      replacements = Scaled(replacements,
                            std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
  }
  double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  s.traffic->Stop();
  Counts c = Settle(seen, counters, misses);
  loader_misses += LoaderMisses(ProgramsOf(running.programs));
  printf("pipeline in-process (%s): %u replacements in %.2f s, %llu frames seen by the entry, "
         "%llu counted, %u versions counted frames, %llu misses (hand-written), "
         "%llu misses (loader, read in %.1f ms in all)\n",
         Hook(), replacements, seconds, static_cast<unsigned long long>(c.seen),
         static_cast<unsigned long long>(c.counted), c.versions,
         static_cast<unsigned long long>(c.misses),
         static_cast<unsigned long long>(loader_misses), reading);
  CHECK(c.misses == 0);
  CHECK(loader_misses == 0);
  CHECK(c.counted == c.seen);
  // Traffic flowed all along: many builds counted frames.
  CHECK(c.seen > replacements);
  CHECK(c.versions > replacements / 2);
  // The entry the link runs is the last build's.
  auto prog_id = running.link.ProgramId();
  REQUIRE(prog_id.ok());
  CHECK(*prog_id == running.programs.at("entry").id());
}

TEST_CASE("pipeline: 100 replacements across processes under traffic miss nothing",
          "[replace][traffic]") {
  std::string why;
  if (!testing::EnsureBpffs(&why)) TETHER_SKIP_OR_FAIL(why);
  testing::TempPinDir dir;
  CollectionSpec base = PipelineSpec();
  Started s = Start(base);
  Map seen = s.first.map("seen"), counters = s.first.map("counters"), misses = s.first.map("misses");
  {
    // Version 1 pins what must outlive it, then lets go of its handles.
    Pipeline first = Pipeline::FromCollection(s.first, "entry", s.traffic->link());
    REQUIRE(PinPipeline(first, dir.path()).ok());
    s.first = Collection();
  }

  auto t0 = Clock::now();
  uint32_t replacements = 100;
  uint64_t loader_misses = 0;
  Agent previous;
  for (uint32_t v = 2; v < 2 + replacements; ++v) {
    Agent next = SpawnAgent(dir.path(), v);
    INFO("agent version " << v << ": " << next.line);
    if (v == 2) {
      CHECK(next.line.rfind("ok kept=3 in_place=2 filled=1", 0) == 0);
      replacements = Scaled(replacements,
                            std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / 4);
    }
    bool ok = next.line.rfind("ok", 0) == 0;
    // The agent summed the loader's counters of the build it replaced.
    if (ok) {
      int64_t agent_misses = AgentLoaderMisses(next.line);
      CHECK(agent_misses == 0);
      if (agent_misses > 0) loader_misses += static_cast<uint64_t>(agent_misses);
    }
    if (previous.pid > 0) Retire(previous.pid, previous.stdin_fd);  // the old agent exits
    previous = next;
    REQUIRE(ok);
  }
  Retire(previous.pid, previous.stdin_fd);
  double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  // Every agent has exited; the pins still hold the pipeline and its hook.
  uint64_t before = Read(seen, 0);
  CHECK(Eventually([&] { return Read(seen, 0) > before + 100; }));
  s.traffic->Stop();
  Counts c = Settle(seen, counters, misses);
  // The last agent's build, still held by the pins: read the same way.
  size_t sites = 0;
  loader_misses += LoaderMisses(OpenPinnedBuild(base, dir.path()), &sites);
  CHECK(sites == 3);
  printf("pipeline across processes (%s): %u replacements in %.2f s, %llu frames seen by the entry, "
         "%llu counted, %u versions counted frames, %llu misses (hand-written), "
         "%llu misses (loader)\n",
         Hook(), replacements, seconds, static_cast<unsigned long long>(c.seen),
         static_cast<unsigned long long>(c.counted), c.versions,
         static_cast<unsigned long long>(c.misses),
         static_cast<unsigned long long>(loader_misses));
  CHECK(c.misses == 0);
  CHECK(loader_misses == 0);
  CHECK(c.counted == c.seen);
  CHECK(c.versions > replacements / 2);
  CHECK(Read(counters, 1 + replacements) > 0);  // the last agent's build runs
}

TEST_CASE("pipeline: switching before the arrays are filled misses, and the plan refuses it",
          "[replace][traffic]") {
  CollectionSpec base = PipelineSpec();
  Started s = Start(base);
  Pipeline running = Pipeline::FromCollection(s.first, "entry", s.traffic->link());
  Map seen = s.first.map("seen"), counters = s.first.map("counters"), misses = s.first.map("misses");

  auto spec = Build(base, 2);
  REQUIRE(spec.ok());
  auto prepared = PrepareReplacement(running, *spec);
  REQUIRE(prepared.ok());
  REQUIRE(prepared->steps().size() == 3);
  CHECK(prepared->Check().ok());
  // The same plan with the switch first: the graph refuses it, naming the
  // empty slot, and nothing runs.
  std::rotate(prepared->steps().begin(), prepared->steps().begin() + 1,
              prepared->steps().begin() + 2);
  REQUIRE(prepared->steps()[0].kind == ReplacementStep::Kind::kSwitchEntry);
  absl::Status refused = prepared->Commit(running);
  INFO(refused.ToString());
  CHECK(refused.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(refused.message().find("slot 0 of program array 'finals'") != std::string::npos);
  auto prog_id = running.link.ProgramId();
  REQUIRE(prog_id.ok());
  CHECK(*prog_id == s.first.program("entry").id());

  // The naive way: switch, then fill. Frames that arrive in between miss.
  const Collection& next = prepared->collection();
  REQUIRE(running.link.Update(next.program("entry"), s.first.program("entry")).ok());
  uint64_t at_switch = Read(seen, 0);
  Eventually([&] { return Read(seen, 0) > at_switch + 100; });
  auto finals = ProgramArray::FromMap(next.map("finals"), false);
  REQUIRE(finals.ok());
  REQUIRE(finals->Set(0, next.program("stage_three")).ok());
  s.traffic->Stop();
  Counts c = Settle(seen, counters, misses);
  size_t sites = 0;
  std::vector<Program> both = ProgramsOf(s.first.programs());
  for (const Program& p : ProgramsOf(next.programs())) both.push_back(p);
  uint64_t loader_misses = LoaderMisses(both, &sites);
  printf("pipeline, switch before fill: %llu frames, %llu misses (hand-written), "
         "%llu misses (loader)\n",
         static_cast<unsigned long long>(c.seen), static_cast<unsigned long long>(c.misses),
         static_cast<unsigned long long>(loader_misses));
  CHECK(sites == 6);  // three sites per build: the loader counted
  CHECK(c.misses > 0);
  CHECK(Read(misses, 2) == c.misses);  // all at stage_two's call into finals
  // The loader's counter sits right after the same bpf_tail_call as the
  // hand-written one: the two counts agree exactly.
  CHECK(loader_misses == c.misses);
  CHECK(LoaderMisses({next.program("stage_two")}) == c.misses);
}

TEST_CASE("pipeline: releasing the old build before the switch misses", "[replace][traffic]") {
  CollectionSpec base = PipelineSpec();
  Started s = Start(base);
  Map seen = s.first.map("seen"), counters = s.first.map("counters"), misses = s.first.map("misses");
  Program old_entry = s.first.program("entry");
  // Program handles hold no user reference on the arrays, so keeping them
  // does not change what the kernel clears; they keep the old build's
  // loader counters readable.
  std::vector<Program> old = ProgramsOf(s.first.programs());
  // The naive way: close the old collection, then load the new one and
  // attach it. The old entry still runs meanwhile; the kernel cleared its
  // arrays with their last user reference.
  for (const auto& [name, map] : s.first.maps()) map.SetLifetimePolicy(LifetimePolicy::kIgnore);
  s.first = Collection();
  CHECK(Eventually([&] { return Read(misses, 0) > 0; }));

  CollectionOptions options;
  options.replace_maps = {{"seen", seen}, {"counters", counters}, {"misses", misses}};
  auto spec = Build(base, 2);
  REQUIRE(spec.ok());
  auto next = Collection::Load(*spec, options);
  REQUIRE(next.ok());
  auto finals = ProgramArray::FromMap(next->map("finals"), false);
  REQUIRE(finals.ok());
  REQUIRE(finals->Set(0, next->program("stage_three")).ok());
  REQUIRE(s.traffic->link().Update(next->program("entry"), old_entry).ok());
  s.traffic->Stop();
  Counts c = Settle(seen, counters, misses);
  size_t sites = 0;
  std::vector<Program> both = old;
  for (const Program& p : ProgramsOf(next->programs())) both.push_back(p);
  uint64_t loader_misses = LoaderMisses(both, &sites);
  printf("pipeline, release before switch: %llu frames, %llu misses (hand-written), "
         "%llu misses (loader)\n",
         static_cast<unsigned long long>(c.seen), static_cast<unsigned long long>(c.misses),
         static_cast<unsigned long long>(loader_misses));
  CHECK(sites == 6);
  CHECK(c.misses > 0);
  CHECK(c.counted + c.misses == c.seen);
  CHECK(loader_misses > 0);
  CHECK(loader_misses == c.misses);  // same event, counted independently
}

TEST_CASE("pipeline: a changed map is refused without a migration, carried with one", "[replace]") {
  CollectionSpec base = PipelineSpec();
  auto first_spec = Build(base, 1);
  REQUIRE(first_spec.ok());
  auto first = Collection::Load(*first_spec);
  REQUIRE(first.ok());
  auto finals = ProgramArray::FromMap(first->map("finals"), false);
  REQUIRE(finals.ok());
  REQUIRE(finals->Set(0, first->program("stage_three")).ok());
  // The dispatcher case: the entry sits in a slot of an array the caller owns.
  auto dispatcher = ProgramArray::Create("pl_dispatch", 1, LifetimePolicy::kIgnore);
  REQUIRE(dispatcher.ok());
  REQUIRE(dispatcher->Set(0, first->program("entry")).ok());
  Pipeline running = Pipeline::FromCollection(*first, "entry", Link());
  running.entry_array = *dispatcher;
  REQUIRE(first->map("counters").Update(uint32_t{7}, uint64_t{1234}).ok());

  auto next = Build(base, 2);
  REQUIRE(next.ok());
  next->FindMap("counters")->max_entries = 8192;
  absl::Status refused = ReplacePipeline(running, *next);
  INFO(refused.ToString());
  CHECK(refused.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(refused.message().find("map 'counters' changed its max_entries") != std::string::npos);
  CHECK(running.programs.at("entry").id() == first->program("entry").id());

  ReplaceOptions options;
  int migrated = 0;
  options.migrations["counters"] = [&](const Map& old_map, const MapSpec& spec, const Map& new_map) {
    ++migrated;
    CHECK(spec.max_entries == 8192);
    CHECK(new_map.max_entries() == 8192);
    for (uint32_t k = 0; k < old_map.max_entries(); ++k) {
      uint64_t v = 0;
      absl::Status st = old_map.Lookup(k, &v);
      if (!st.ok()) return st;
      if (v == 0) continue;
      st = new_map.Update(k, v);
      if (!st.ok()) return st;
    }
    return absl::OkStatus();
  };
  ReplaceStats stats;
  absl::Status st = ReplacePipeline(running, *next, options, &stats);
  INFO(st.ToString());
  REQUIRE(st.ok());
  CHECK(migrated == 1);
  CHECK(stats.maps_migrated == 1);
  CHECK(Read(running.maps.at("counters"), 7) == 1234);
  auto slot = dispatcher->Get(0);
  REQUIRE(slot.ok());
  REQUIRE(slot->has_value());
  CHECK(**slot == running.programs.at("entry").id());
  CHECK(running.programs.at("entry").id() != first->program("entry").id());
}
