// A skeleton attaches uprobes, uretprobes and USDT probes whose sections
// name the binary the way libbpf spells them (test/bpf/skel_user.bpf.c),
// here on the test binary itself (/proc/self/exe).
#include <sys/sdt.h>

#include <string>

#include "skel_user.skel.hpp"
#include "test_support.h"

using namespace tether;

extern "C" __attribute__((noinline, used)) long tether_skel_uprobe_target(long x) {
  asm volatile("" : "+r"(x));
  return x * 3 + 1;
}

namespace {

__attribute__((noinline)) void Ping(long value) {
  volatile long v = value;
  long copy = v;
  DTRACE_PROBE1(tether_skel, ping, copy);
}

}  // namespace

#ifdef TETHER_SKEL_HAVE_ATTACH
TEST_CASE("a skeleton attaches uprobe, uretprobe and usdt sections by themselves", "[skel][attach][usdt]") {
  TETHER_REQUIRE_FEATURE(probe::LinkKindName(probe::LinkKind::kUprobe),
                         probe::HaveLinkKind(probe::LinkKind::kUprobe));
  auto opened = skel_user::Skel::Open();
  REQUIRE(opened.ok());
  skel_user::Skel skel = *std::move(opened);
  REQUIRE(skel.Load().ok());
  absl::Status st = skel.Attach();
  INFO(st.ToString());
  REQUIRE(st.ok());
  REQUIRE(skel.links.on_entry);
  REQUIRE(skel.links.on_return);
  REQUIRE(skel.links.on_ping);
  CHECK(skel.links.on_ping.sites().size() == 1);

  skel_user::Bss* bss = skel.bss();
  REQUIRE(bss != nullptr);
  for (long i = 1; i <= 3; ++i) CHECK(tether_skel_uprobe_target(i * 10) == i * 30 + 1);
  CHECK(bss->entries == 3);
  CHECK(bss->returns == 3);
  CHECK(bss->last_return == 91);
  Ping(1234);
  Ping(-5);
  CHECK(bss->pings == 2);
  CHECK(bss->last_ping == -5);
  // usdt/<provider>:<name> names no binary: not attached, left to the caller.
  CHECK(bss->unused == 0);

  // Attached programs are skipped; dropping the links stops the counts.
  REQUIRE(skel.Attach().ok());
  tether_skel_uprobe_target(1);
  CHECK(bss->entries == 4);
  skel.links = {};
  tether_skel_uprobe_target(1);
  Ping(7);
  CHECK(bss->entries == 4);
  CHECK(bss->pings == 2);
}
#endif
