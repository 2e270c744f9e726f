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

// A UDP socket bound to 127.0.0.1 with a 200 ms receive timeout; its port.
int BoundReceiver(uint16_t* port) {
  int rx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  timeval timeout{0, 200000};
  if (rx < 0 || bind(rx, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(rx, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      setsockopt(rx, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) != 0) {
    if (rx >= 0) close(rx);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return rx;
}

bool Deliver(int tx, int rx, uint16_t port) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  char byte = 'x', got = 0;
  sendto(tx, &byte, 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
  return recv(rx, &got, 1, 0) == 1;
}

std::vector<std::string> Hooks(const Program& p) {
  auto node = graph().Node(NodeOf(p));
  return node ? node->legacy_hooks : std::vector<std::string>{};
}

// In a fresh network namespace, so the filter sees only this test's packets.
void RunTc(const Collection& coll, TcRun* run) {
  if (unshare(CLONE_NEWNET) != 0) return void(Fail(run, "unshare(CLONE_NEWNET)"));
  int ctl = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr{};
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(ctl, SIOCGIFFLAGS, &ifr) != 0) return void(Fail(run, "SIOCGIFFLAGS lo"));
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(ctl, SIOCSIFFLAGS, &ifr) != 0) return void(Fail(run, "SIOCSIFFLAGS lo"));
  close(ctl);
  uint16_t port = 0;
  int rx = BoundReceiver(&port);
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
