// struct_ops maps loaded from an object: a TCP congestion control written
// in BPF (test/bpf/struct_ops.bpf.c) registers, runs on a TCP connection
// over loopback, and unregisters on the last reference; its link variant
// (6.4+) is registered by a link and updated to another map. Bad
// struct_ops input is refused before anything is left behind.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "loopback_support.h"
#include "sys/bpf.h"
#include "test_support.h"
#include "tether/collection.h"
#include "tether/collection_spec.h"
#include "tether/graph.h"
#include "tether/probe.h"
#include "tether/struct_ops.h"
#include "tether/system_graph.h"

using namespace tether;

namespace {

// Whether the kernel lists `name` among its TCP congestion controls (a
// read that, unlike setsockopt, never asks modprobe for a module).
bool CongestionControlRegistered(const std::string& name) {
  std::ifstream in("/proc/sys/net/ipv4/tcp_available_congestion_control");
  std::string word;
  while (in >> word) {
    if (word == name) return true;
  }
  return false;
}

// setsockopt(TCP_CONGESTION, name) on a fresh socket: 0 or the errno.
int SelectCongestionControl(const std::string& name) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return errno;
  int err = setsockopt(s, IPPROTO_TCP, TCP_CONGESTION, name.data(), name.size()) == 0 ? 0 : errno;
  close(s);
  return err;
}

struct TcpRun {
  std::string error;      // empty when the connection ran
  std::string ca_in_use;  // what getsockopt(TCP_CONGESTION) read on the sender
  size_t received = 0;
};

// Sends `bytes` from a socket using congestion control `ca` to a receiver,
// over the loopback of a private network namespace (a thread of its own).
TcpRun SendOverLoopback(const std::string& ca, size_t bytes) {
  TcpRun run;
  std::thread worker([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      run.error = std::string("unshare(CLONE_NEWNET): ") + strerror(errno);
      return;
    }
    if (!testing::BringUpLoopback(&run.error)) return;
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int sender = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (listener < 0 || sender < 0 ||
        bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(listener, 1) != 0 ||
        getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      run.error = std::string("listening on loopback: ") + strerror(errno);
    } else if (setsockopt(sender, IPPROTO_TCP, TCP_CONGESTION, ca.data(), ca.size()) != 0) {
      run.error = "setsockopt(TCP_CONGESTION, " + ca + "): " + strerror(errno);
    } else if (connect(sender, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      run.error = std::string("connect: ") + strerror(errno);
    } else {
      int receiver = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      std::thread reader([&] {
        std::vector<char> buf(1 << 16);
        ssize_t n;
        while (receiver >= 0 && (n = recv(receiver, buf.data(), buf.size(), 0)) > 0) run.received += n;
      });
      std::vector<char> chunk(1 << 16, 'x');
      for (size_t sent = 0; sent < bytes;) {
        ssize_t n = send(sender, chunk.data(), std::min(chunk.size(), bytes - sent), MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += n;
      }
      char name[16] = {};
      socklen_t name_len = sizeof(name);
      getsockopt(sender, IPPROTO_TCP, TCP_CONGESTION, name, &name_len);
      run.ca_in_use.assign(name, strnlen(name, sizeof(name)));
      shutdown(sender, SHUT_WR);
      reader.join();
      if (receiver >= 0) close(receiver);
    }
    if (listener >= 0) close(listener);
    if (sender >= 0) close(sender);
  });
  worker.join();
  return run;
}

uint64_t ReadCounter(const CollectionSpec& spec, const Map& bss, const std::string& name) {
  auto it = spec.variables.find(name);
  REQUIRE(it != spec.variables.end());
  std::vector<uint8_t> value(bss.value_size());
  uint32_t zero = 0;
  REQUIRE(bss.Lookup(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&zero), 4),
                     absl::MakeSpan(value))
              .ok());
  uint64_t counter = 0;
  memcpy(&counter, value.data() + it->second.offset, sizeof(counter));
  return counter;
}

bool KernelHasMap(uint32_t id) { return sys::GetFdById(sys::ObjectKind::kMap, id).ok(); }

std::vector<GraphEdge> EdgesFrom(NodeRef from, EdgeKind kind) {
  std::vector<GraphEdge> out;
  for (const GraphEdge& e : graph().Edges()) {
    if (e.from == from && e.kind == kind) out.push_back(e);
  }
  return out;
}

CollectionSpec LoadSpec(const std::string& name) {
  auto spec = CollectionSpec::FromFile(testing::BpfObjectPath(name));
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  return *std::move(spec);
}

}  // namespace

TEST_CASE("struct_ops: a BPF tcp_congestion_ops registers, runs on a TCP socket, and "
          "unregisters on its last reference",
          "[struct_ops][collection]") {
  TETHER_REQUIRE_FEATURE("struct_ops", probe::HaveStructOps());
  CollectionSpec spec = LoadSpec("struct_ops");
  const MapSpec& ops = spec.maps.at("tether_ca");
  CHECK(ops.type == BPF_MAP_TYPE_STRUCT_OPS);
  CHECK(ops.init.size() == 4);
  REQUIRE_FALSE(CongestionControlRegistered("tether_ca"));
  size_t fds = testing::CountOpenFds();

  uint32_t map_id = 0;
  {
    Map ca, bss;
    Assignment a;
    a.maps = {{"tether_ca", &ca}, {".bss", &bss}};
    absl::Status st = LoadAndAssign(spec, a);
    INFO(st.ToString());
    REQUIRE(st.ok());
    map_id = ca.id();
    // The kernel's value type, not the object's struct, sized the map.
    CHECK(ca.type() == BPF_MAP_TYPE_STRUCT_OPS);
    CHECK(ca.value_size() > ops.value_size);
    CHECK(CongestionControlRegistered("tether_ca"));

    // The graph: the map holds its four programs, one per member, and the
    // registration is a hook on the map.
    auto held = EdgesFrom(NodeOf(ca), EdgeKind::kStructOps);
    CHECK(held.size() == 4);
    auto node = graph().Node(NodeOf(ca));
    REQUIRE(node.has_value());
    CHECK(node->legacy_hooks.size() == 1);
    std::string text = graph().ToText();
    CHECK_THAT(text, Catch::Contains("struct_ops ["));
    // A system scan (`tether graph`) reads the same from the kernel: the
    // program ids in the map's value, and the registration.
    SystemScanOptions so;
    so.hooks = false;
    auto scanned = ScanSystem(so);
    REQUIRE(scanned.ok());
    size_t seen = 0;
    for (const GraphEdge& e : (*scanned)->Edges()) {
      if (e.from != NodeOf(ca) || e.kind != EdgeKind::kStructOps) continue;
      ++seen;
      CHECK(std::any_of(held.begin(), held.end(), [&](const GraphEdge& h) {
        return h.to == e.to && h.slot == e.slot;
      }));
    }
    CHECK(seen == 4);
    auto scanned_node = (*scanned)->Node(NodeOf(ca));
    REQUIRE(scanned_node.has_value());
    CHECK(scanned_node->legacy_hooks.size() == 1);

    TcpRun run = SendOverLoopback("tether_ca", 4u << 20);
    INFO(run.error);
    REQUIRE(run.error.empty());
    CHECK(run.ca_in_use == "tether_ca");
    CHECK(run.received == (4u << 20));
    CHECK(ReadCounter(spec, bss, "init_calls") >= 1);
    CHECK(ReadCounter(spec, bss, "cong_avoid_calls") >= 1);
    INFO("ssthresh ran " << ReadCounter(spec, bss, "ssthresh_calls") << " times (no loss needed)");
  }
  // Every handle is gone: tether deleted the registration, which the
  // kernel would otherwise keep (it holds the map while registered), and
  // the map itself went with it.
  CHECK(testing::Eventually([] { return !CongestionControlRegistered("tether_ca"); }));
  CHECK(SelectCongestionControl("tether_ca") == ENOENT);
  CHECK(testing::Eventually([&] { return !KernelHasMap(map_id); }));
  CHECK(testing::CountOpenFds() == fds);
}

TEST_CASE("struct_ops: UnregisterStructOps ends a registration before the last handle goes",
          "[struct_ops][collection]") {
  TETHER_REQUIRE_FEATURE("struct_ops", probe::HaveStructOps());
  CollectionSpec spec = LoadSpec("struct_ops");
  Map ca;
  Assignment a;
  a.maps = {{"tether_ca", &ca}};
  absl::Status st = LoadAndAssign(spec, a);
  INFO(st.ToString());
  REQUIRE(st.ok());
  CHECK(SelectCongestionControl("tether_ca") == 0);
  REQUIRE(UnregisterStructOps(ca).ok());
  CHECK(testing::Eventually([] { return !CongestionControlRegistered("tether_ca"); }));
  CHECK(graph().Node(NodeOf(ca))->legacy_hooks.empty());
  // A link call on a map that no link may register says why.
  auto attached = AttachStructOps(ca);
  CHECK(absl::IsInvalidArgument(attached.status()));
  CHECK_THAT(std::string(attached.status().message()), Catch::Contains("BPF_F_LINK"));
}

TEST_CASE("struct_ops link: a link registers one version, is updated to the other, and "
          "unregisters when it goes",
          "[struct_ops][collection][link]") {
  TETHER_REQUIRE_FEATURE("struct_ops", probe::HaveStructOps());
  TETHER_REQUIRE_FEATURE(probe::LinkKindName(probe::LinkKind::kStructOps),
                         probe::HaveLinkKind(probe::LinkKind::kStructOps));
  CollectionSpec spec = LoadSpec("struct_ops");
  CHECK((spec.maps.at("tether_ca_l1").flags & (1u << 13)) != 0);  // BPF_F_LINK
  REQUIRE_FALSE(CongestionControlRegistered("tether_ca_link"));
  size_t fds = testing::CountOpenFds();
  {
    Map l1, l2, bss;
    Link link;
    Assignment a;
    a.maps = {{"tether_ca_l1", &l1}, {"tether_ca_l2", &l2}, {".bss", &bss}};
    a.links = {{"tether_ca_l1", &link}};  // tether_ca_l2: value set, not linked
    absl::Status st = LoadAndAssign(spec, a);
    INFO(st.ToString());
    REQUIRE(st.ok());
    REQUIRE(link);
    CHECK(link.type() == BPF_LINK_TYPE_STRUCT_OPS);
    CHECK(CongestionControlRegistered("tether_ca_link"));
    auto holds = EdgesFrom(NodeOf(link), EdgeKind::kLinkHolds);
    REQUIRE(holds.size() == 1);
    CHECK(holds[0].to == NodeOf(l1));
    CHECK(EdgesFrom(NodeOf(l2), EdgeKind::kStructOps).size() == 4);

    TcpRun run = SendOverLoopback("tether_ca_link", 1u << 20);
    INFO(run.error);
    REQUIRE(run.error.empty());
    CHECK(run.ca_in_use == "tether_ca_link");
    CHECK(ReadCounter(spec, bss, "l1_init_calls") >= 1);
    CHECK(ReadCounter(spec, bss, "l2_init_calls") == 0);

    // The link moves to the other version, under the same name.
    st = UpdateStructOpsLink(link, l2, &l1);
    INFO(st.ToString());
    REQUIRE(st.ok());
    CHECK(CongestionControlRegistered("tether_ca_link"));
    holds = EdgesFrom(NodeOf(link), EdgeKind::kLinkHolds);
    REQUIRE(holds.size() == 1);
    CHECK(holds[0].to == NodeOf(l2));
    uint64_t l1_before = ReadCounter(spec, bss, "l1_init_calls");
    run = SendOverLoopback("tether_ca_link", 1u << 20);
    REQUIRE(run.error.empty());
    CHECK(ReadCounter(spec, bss, "l2_init_calls") >= 1);
    CHECK(ReadCounter(spec, bss, "l1_init_calls") == l1_before);
    // The expected map is no longer the link's: refused, nothing changes.
    absl::Status stale = UpdateStructOpsLink(link, l1, &l1);
    CHECK(absl::IsFailedPrecondition(stale));
    holds = EdgesFrom(NodeOf(link), EdgeKind::kLinkHolds);
    REQUIRE(holds.size() == 1);
    CHECK(holds[0].to == NodeOf(l2));

    // The link's last reference goes while the maps stay: unregistered.
    link = Link();
    CHECK(testing::Eventually([] { return !CongestionControlRegistered("tether_ca_link"); }));
    CHECK(SelectCongestionControl("tether_ca_link") == ENOENT);
    CHECK(l2);
    // A map whose value is set can be linked again.
    auto again = AttachStructOps(l1);
    INFO(again.status().ToString());
    REQUIRE(again.ok());
    CHECK(CongestionControlRegistered("tether_ca_link"));
  }
  CHECK(testing::Eventually([] { return !CongestionControlRegistered("tether_ca_link"); }));
  CHECK(testing::CountOpenFds() == fds);
}

TEST_CASE("struct_ops: a type the kernel lacks and a member it lacks are refused, leaving "
          "nothing behind",
          "[struct_ops][collection][bad_input]") {
  TETHER_REQUIRE_FEATURE("vmlinux_btf", probe::HaveVmlinuxBtf());
  CollectionSpec spec = LoadSpec("struct_ops_bad");
  size_t fds = testing::CountOpenFds();

  Map map;
  Assignment no_type;
  no_type.maps = {{"no_such_type", &map}};
  absl::Status st = LoadAndAssign(spec, no_type);
  CHECK(absl::IsNotFound(st));
  CHECK_THAT(std::string(st.message()),
             Catch::Contains("struct_ops map 'no_such_type'") &&
                 Catch::Contains("no struct_ops type 'tether_no_such_ops'"));
  CHECK_FALSE(map);
  CHECK(testing::CountOpenFds() == fds);

  // A struct_ops program alone: no map says which member it implements.
  CollectionSpec good = LoadSpec("struct_ops");
  Program init;
  Assignment alone;
  alone.programs = {{"tether_init", &init}};
  st = LoadAndAssign(good, alone);
  CHECK(absl::IsFailedPrecondition(st));
  CHECK_THAT(std::string(st.message()),
             Catch::Contains("struct_ops program 'tether_init' is not used by any struct_ops map"));
  CHECK_FALSE(init);
  CHECK(testing::CountOpenFds() == fds);

  // Before 6.4, a .struct_ops.link map says which release it needs.
  if (absl::IsUnimplemented(probe::HaveLinkKind(probe::LinkKind::kStructOps))) {
    Map l1;
    Assignment link_map;
    link_map.maps = {{"tether_ca_l1", &l1}};
    st = LoadAndAssign(good, link_map);
    CHECK(absl::IsUnimplemented(st));
    CHECK_THAT(std::string(st.message()),
               Catch::Contains("struct_ops map 'tether_ca_l1' is in .struct_ops.link") &&
                   Catch::Contains("6.4"));
    CHECK(testing::CountOpenFds() == fds);
  }

  // A whole load fails the same way, on the first bad map.
  auto whole = Collection::Load(spec);
  CHECK_FALSE(whole.ok());
  CHECK(testing::CountOpenFds() == fds);

  // The extra member is found once the programs are loaded, when the
  // value is built: that needs struct_ops programs.
  absl::Status have = probe::HaveStructOps();
  if (!have.ok()) {
    INFO("extra member: struct_ops programs do not load here: " << have.ToString());
    CHECK(probe::Unusable(have));
    return;
  }
  Assignment extra;
  extra.maps = {{"extra_member", &map}};
  st = LoadAndAssign(spec, extra);
  CHECK(absl::IsInvalidArgument(st));
  CHECK_THAT(std::string(st.message()),
             Catch::Contains("struct_ops map 'extra_member'") &&
                 Catch::Contains("member 'tether_no_such_member' is set (non-zero)") &&
                 Catch::Contains("tcp_congestion_ops"));
  CHECK_FALSE(map);
  CHECK_FALSE(CongestionControlRegistered("tether_bad"));
  CHECK(testing::CountOpenFds() == fds);
}

TEST_CASE("struct_ops: a whole-object load registers its map and skips a struct_ops program "
          "no map uses",
          "[struct_ops][collection]") {
  TETHER_REQUIRE_FEATURE("struct_ops", probe::HaveStructOps());
  CollectionSpec spec = LoadSpec("struct_ops_full");
  REQUIRE_FALSE(CongestionControlRegistered("tether_ca_full"));
  size_t fds = testing::CountOpenFds();
  {
    auto coll = Collection::Load(spec);
    INFO(coll.status().ToString());
    REQUIRE(coll.ok());
    CHECK(coll->skipped_programs() == std::vector<std::string>{"full_unused"});
    CHECK_FALSE(coll->program("full_unused"));
    CHECK(coll->programs().size() == 3);
    CHECK(CongestionControlRegistered("tether_ca_full"));
    CHECK(coll->links().empty());  // a .struct_ops map needs no link
  }
  CHECK(testing::Eventually([] { return !CongestionControlRegistered("tether_ca_full"); }));
  CHECK(testing::CountOpenFds() == fds);
}
