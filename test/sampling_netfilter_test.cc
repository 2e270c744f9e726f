// Attach kinds proven by their effect: perf-event sampling (a profiler's
// CPU-clock event on every CPU) and netfilter hooks (6.4) that see and drop
// packets in a private network namespace.
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "loopback_support.h"
#include "test_support.h"
#include "tether/attach.h"
#include "tether/collection.h"
#include "tether/collection_spec.h"
#include "tether/probe.h"

using namespace tether;

namespace {

Collection LoadObject(const std::string& name) {
  auto spec = CollectionSpec::FromFile(testing::BpfObjectPath(name));
  REQUIRE(spec.ok());
  auto coll = Collection::Load(*spec);
  INFO(coll.status().ToString());
  REQUIRE(coll.ok());
  return *std::move(coll);
}

uint64_t ReadSlot(const Map& map, uint32_t key) {
  uint64_t value = 0;
  REQUIRE(map.Lookup(key, &value).ok());
  return value;
}

void Spin(std::chrono::milliseconds how_long) {
  volatile uint64_t sink = 0;
  auto until = std::chrono::steady_clock::now() + how_long;
  while (std::chrono::steady_clock::now() < until) {
    for (int i = 0; i < 10000; ++i) sink = sink + i;
  }
}

}  // namespace

TEST_CASE("a perf_event program samples the CPU clock on every CPU until its links go",
          "[attach][perf_event]") {
  TETHER_REQUIRE_FEATURE("prog_type:perf_event", probe::HaveProgramType(BPF_PROG_TYPE_PERF_EVENT));
  TETHER_REQUIRE_FEATURE(probe::LinkKindName(probe::LinkKind::kPerfEvent),
                         probe::HaveLinkKind(probe::LinkKind::kPerfEvent));
  Collection coll = LoadObject("sampling");
  Map samples = coll.map("samples");
  PerfSampling sampling;
  sampling.frequency = 1000;
  auto links = AttachPerfEventPerCpu(coll.program("count_samples"), sampling);
  INFO(links.status().ToString());
  REQUIRE(links.ok());
  CHECK(links->size() == std::thread::hardware_concurrency());
  Spin(std::chrono::milliseconds(300));
  uint64_t while_attached = ReadSlot(samples, 0);
  // 300 ms of one busy CPU at 1000 Hz is about 300 samples; under qemu's
  // TCG the clock ticks far fewer times, so ask only for some.
  CHECK(while_attached >= 5);
  links->clear();  // the links held the events: sampling stops with them
  uint64_t after_drop = ReadSlot(samples, 0);
  Spin(std::chrono::milliseconds(100));
  CHECK(ReadSlot(samples, 0) == after_drop);

  // A period instead of a frequency, on the CPU this thread is pinned to:
  // cpu-clock counts nanoseconds, so every 1 ms.
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(0, &one);
  cpu_set_t saved;
  REQUIRE(sched_getaffinity(0, sizeof(saved), &saved) == 0);
  REQUIRE(sched_setaffinity(0, sizeof(one), &one) == 0);
  PerfSampling by_period;
  by_period.frequency = 0;
  by_period.period = 1000000;
  auto link = AttachPerfEvent(coll.program("count_samples"), by_period, 0);
  INFO(link.status().ToString());
  bool attached = link.ok();
  Spin(std::chrono::milliseconds(200));
  uint64_t with_period = ReadSlot(samples, 0) - after_drop;
  sched_setaffinity(0, sizeof(saved), &saved);
  REQUIRE(attached);
  CHECK(with_period >= 5);
  // Bad requests are refused with the event named, and nothing attached.
  PerfSampling neither;
  neither.frequency = 0;
  auto bad = AttachPerfEvent(coll.program("count_samples"), neither, 0);
  CHECK(absl::IsInvalidArgument(bad.status()));
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("needs a period or a frequency"));
}

namespace {

struct NetfilterRun {
  std::string error;  // empty: every step ran
  bool sent_while_accepting = false, received_while_accepting = false;
  int send_errno_while_dropping = 0;
  bool received_while_dropping = false;
  bool sent_after_detach = false;
  uint64_t seen_accepting = 0, seen_dropping = 0, seen_after_detach = 0;
};

// Runs in a thread of its own in a fresh network namespace, so that the
// hook sees only this test's packets and the host's traffic is untouched.
void RunNetfilter(const Collection& coll, NetfilterRun* run) {
  if (unshare(CLONE_NEWNET) != 0) {
    run->error = std::string("unshare(CLONE_NEWNET): ") + strerror(errno);
    return;
  }
  if (!testing::BringUpLoopback(&run->error)) return;
  uint16_t port = 0;
  int rx = testing::BoundUdpReceiver(&port);
  int tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (rx < 0 || tx < 0) {
    run->error = std::string("udp sockets: ") + strerror(errno);
    if (rx >= 0) close(rx);
    if (tx >= 0) close(tx);
    return;
  }
  Map state = coll.map("nf_state");
  const uint32_t drop_key = 0, seen_key = 1;
  auto seen = [&] {
    uint64_t v = 0;
    state.Lookup(seen_key, &v).IgnoreError();
    return v;
  };
  NetfilterHook hook;
  hook.family = 2;  // NFPROTO_IPV4
  hook.hook = 3;    // NF_INET_LOCAL_OUT
  hook.priority = -100;
  auto link = AttachNetfilter(coll.program("count_and_filter"), hook);
  if (!link.ok()) {
    run->error = link.status().ToString();
  } else {
    int err = 0;
    run->sent_while_accepting = testing::SendUdpOnce(tx, rx, port, &err, &run->received_while_accepting);
    run->seen_accepting = seen();
    uint64_t one = 1;
    state.Update(drop_key, one).IgnoreError();
    bool received = false;
    testing::SendUdpOnce(tx, rx, port, &run->send_errno_while_dropping, &received);
    run->received_while_dropping = received;
    run->seen_dropping = seen();
    *link = Link();  // detaches the hook
    run->sent_after_detach = testing::SendUdpOnce(tx, rx, port, &err, &received) && received;
    run->seen_after_detach = seen();
  }
  close(rx);
  close(tx);
}

}  // namespace

TEST_CASE("a netfilter hook sees and drops packets until its link goes", "[attach][netfilter]") {
  TETHER_REQUIRE_FEATURE(probe::LinkKindName(probe::LinkKind::kNetfilter),
                         probe::HaveLinkKind(probe::LinkKind::kNetfilter));
  Collection coll = LoadObject("netfilter");
  NetfilterRun run;
  std::thread t([&] { RunNetfilter(coll, &run); });
  t.join();
  INFO(run.error);
  REQUIRE(run.error.empty());
  CHECK(run.sent_while_accepting);
  CHECK(run.received_while_accepting);
  CHECK(run.seen_accepting == 1);
  // NF_DROP on the way out: the sender hears EPERM, the receiver nothing.
  CHECK(run.send_errno_while_dropping == EPERM);
  CHECK_FALSE(run.received_while_dropping);
  CHECK(run.seen_dropping == 2);
  // Detached: the drop flag is still set, but nothing runs the program.
  CHECK(run.sent_after_detach);
  CHECK(run.seen_after_detach == 2);
}
