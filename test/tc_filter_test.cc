// TC through rtnetlink (clsact + cls_bpf in direct-action mode), the way
// kernels before tcx take it: proven by its effect on packets over the
// loopback of a private network namespace.
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "sys/rtnetlink.h"
#include "loopback_support.h"
#include "test_support.h"
#include "tether/attach.h"
#include "tether/collection.h"
#include "tether/collection_spec.h"
#include "tether/graph.h"

using namespace tether;

namespace {

struct TcRun {
  std::string error;  // empty: every step ran
  bool received_passing = false, received_dropping = false, received_after_detach = false;
  uint64_t seen_passing = 0, seen_dropping = 0, seen_after_detach = 0;
  TcFilter filter;
  std::vector<sys::TcBpfFilter> listed;
  std::vector<std::string> hooks_attached, hooks_detached;
  absl::Status second_attach, bad_detach;
};

bool Fail(TcRun* run, const std::string& what) {
  run->error = what + ": " + strerror(errno);
  return false;
}

bool Deliver(int tx, int rx, uint16_t port) {
  int err = 0;
  bool received = false;
  testing::SendUdpOnce(tx, rx, port, &err, &received);
  return received;
}

std::vector<std::string> Hooks(const Program& p) {
  auto node = graph().Node(NodeOf(p));
  return node ? node->legacy_hooks : std::vector<std::string>{};
}

// In a fresh network namespace, so the filter sees only this test's packets.
void RunTc(const Collection& coll, TcRun* run) {
  if (unshare(CLONE_NEWNET) != 0) return void(Fail(run, "unshare(CLONE_NEWNET)"));
  if (!testing::BringUpLoopback(&run->error)) return;
  uint16_t port = 0;
  int rx = testing::BoundUdpReceiver(&port);
  int tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (rx < 0 || tx < 0) return void(Fail(run, "udp sockets"));
  Program prog = coll.program("tc_count");
  Map state = coll.map("tc_state");
  auto seen = [&] {
    uint64_t v = 0;
    state.Lookup(uint32_t{1}, &v).IgnoreError();
    return v;
  };
  const int lo = static_cast<int>(if_nametoindex("lo"));
  auto filter = AttachTcFilter(prog, lo, TcxDirection::kIngress);
  if (!filter.ok()) {
    run->error = filter.status().ToString();
  } else {
    run->filter = *filter;
    run->hooks_attached = Hooks(prog);
    auto nl = sys::RtNetlink::Open();
    if (nl.ok()) {
      auto listed = nl->TcBpfFilters(static_cast<uint32_t>(lo), true);
      if (listed.ok()) run->listed = *listed;
    }
    run->second_attach = AttachTcFilter(prog, lo, TcxDirection::kIngress, filter->priority,
                                        filter->handle).status();
    run->received_passing = Deliver(tx, rx, port);
    run->seen_passing = seen();
    state.Update(uint32_t{0}, uint64_t{1}).IgnoreError();
    run->received_dropping = Deliver(tx, rx, port);
    run->seen_dropping = seen();
    absl::Status detached = DetachTcFilter(prog, *filter);
    if (!detached.ok()) run->error = detached.ToString();
    run->hooks_detached = Hooks(prog);
    run->received_after_detach = Deliver(tx, rx, port);
    run->seen_after_detach = seen();
    run->bad_detach = DetachTcFilter(prog, *filter);
  }
  close(rx);
  close(tx);
}

}  // namespace

TEST_CASE("a cls_bpf filter on clsact passes, drops, and goes with DetachTcFilter", "[attach][tc]") {
  auto spec = CollectionSpec::FromFile(testing::BpfObjectPath("tc_filter"));
  REQUIRE(spec.ok());
  auto coll = Collection::Load(*spec);
  INFO(coll.status().ToString());
  REQUIRE(coll.ok());
  TcRun run;
  std::thread t([&] { RunTc(*coll, &run); });
  t.join();
  INFO(run.error);
  REQUIRE(run.error.empty());
  // The kernel chose the priority and handle, and lists the filter.
  CHECK(run.filter.priority != 0);
  CHECK(run.filter.handle != 0);
  REQUIRE(run.listed.size() == 1);
  CHECK(run.listed[0].prog_id == coll->program("tc_count").id());
  CHECK(run.listed[0].prio == run.filter.priority);
  CHECK(run.listed[0].handle == run.filter.handle);
  CHECK(run.listed[0].name == "tc_count");
  // The same priority and handle again: refused, nothing replaced.
  CHECK_FALSE(run.second_attach.ok());
  CHECK_THAT(std::string(run.second_attach.message()), Catch::Contains("EEXIST"));
  // The graph records a legacy hook while the filter holds the program.
  REQUIRE(run.hooks_attached.size() == 1);
  CHECK_THAT(run.hooks_attached[0], Catch::Contains("tc ingress filter on lo (cls_bpf tc_count, pref ") &&
                                        Catch::Contains("cls_bpf tc_count"));
  CHECK(run.hooks_detached.empty());
  // Direct action: TC_ACT_OK delivers, TC_ACT_SHOT drops.
  CHECK(run.received_passing);
  CHECK(run.seen_passing == 1);
  CHECK_FALSE(run.received_dropping);
  CHECK(run.seen_dropping == 2);
  // Detached: the drop flag is still set, but nothing runs the program.
  CHECK(run.received_after_detach);
  CHECK(run.seen_after_detach == 2);
  CHECK_FALSE(run.bad_detach.ok());
  CHECK_THAT(std::string(run.bad_detach.message()), Catch::Contains("RTM_DELTFILTER"));
}
