// Sockmaps and sockhashes with real TCP sockets on loopback: sockets go in
// by fd and come back as their cookies, and the programs attached to the
// map (AttachSockMap) move the bytes the test sends: a stream verdict
// redirects what arrives to another socket's egress, an sk_msg verdict
// counts each sendmsg in socket storage and redirects to another socket's
// receive queue. test/bpf/sockmap.bpf.c has the programs.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "link_fixtures.h"
#include "test_support.h"
#include "tether/attach.h"
#include "tether/collection.h"
#include "tether/graph.h"
#include "tether/probe.h"

using namespace tether;
using namespace tether::testing;

namespace {

// A connected TCP pair on 127.0.0.1: client and the server's accepted end.
struct TcpPair {
  int client = -1;
  int server = -1;
  TcpPair() {
    int lst = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(lst >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(lst, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(listen(lst, 1) == 0);
    socklen_t len = sizeof(addr);
    REQUIRE(getsockname(lst, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    server = accept4(lst, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(server >= 0);
    close(lst);
  }
  ~TcpPair() {
    close(client);
    close(server);
  }
  TcpPair(const TcpPair&) = delete;
  TcpPair& operator=(const TcpPair&) = delete;
};

uint64_t Cookie(int fd) {
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  REQUIRE(getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) == 0);
  return cookie;
}

void SendAll(int fd, const std::string& s) {
  REQUIRE(send(fd, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size()));
}

// Reads until `want` bytes came or 2 s passed.
std::string Receive(int fd, size_t want) {
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

// True if nothing is waiting on fd after a short grace period.
bool NothingArrives(int fd) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, 100) == 0;
}

uint64_t Slot(const Map& m, uint32_t k) {
  uint64_t v = 0;
  REQUIRE_OK(m.Lookup(k, &v));
  return v;
}

}  // namespace

TEST_CASE("sockmap: sockets in by fd, out as cookies; a stream verdict redirects what arrives",
          "[sockmap]") {
  auto spec = CollectionSpec::FromFile(BpfObjectPath("sockmap"));
  REQUIRE_OK(spec);
  Map sock_map, verdicts;
  Program verdict;
  REQUIRE_OK(LoadAndAssign(*spec, {{{"sock_map", &sock_map}, {"verdicts", &verdicts}},
                                   {{"skb_redirect", &verdict}}}));
  // An 8-byte value is what lets user space read the cookie back.
  CHECK(sock_map.value_size() == 8);

  REQUIRE_OK(AttachSockMap(verdict, sock_map, BPF_SK_SKB_STREAM_VERDICT));
  std::string why = graph().Explain(verdict).ToString();
  CHECK(absl::StrContains(why, "legacy hook"));
  CHECK(absl::StrContains(why, "sk_skb/stream_verdict on sockmap 'sock_map'"));

  TcpPair one, two;
  REQUIRE_OK(sock_map.Update(uint32_t{0}, uint64_t(one.server)));
  REQUIRE_OK(sock_map.Update(uint32_t{1}, uint64_t(two.client)));
  CHECK(Slot(sock_map, 0) == Cookie(one.server));
  CHECK(Slot(sock_map, 1) == Cookie(two.client));
  uint64_t v = 0;
  CHECK(sock_map.Lookup(uint32_t{2}, &v).code() == absl::StatusCode::kNotFound);
  // A socket that is not established has nothing to redirect.
  int loose = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  auto refused = sock_map.Update(uint32_t{3}, uint64_t(loose));
  close(loose);
  CHECK_FALSE(refused.ok());
  CHECK_THAT(std::string(refused.message()), Catch::Contains("sock_map") && Catch::Contains("update"));

  // What one's client sends arrives at one.server, whose verdict sends it
  // out of two.client: two.server reads it, one.server never sees it.
  const std::string msg = "through the sockmap";
  SendAll(one.client, msg);
  CHECK(Receive(two.server, msg.size()) == msg);
  CHECK(NothingArrives(one.server));
  CHECK(Slot(verdicts, 0) >= 1);
  CHECK(Slot(verdicts, 1) == msg.size());

  // Out of the map, the socket is an ordinary socket again.
  REQUIRE_OK(sock_map.Delete(uint32_t{0}));
  SendAll(one.client, "plain");
  CHECK(Receive(one.server, 5) == "plain");
  CHECK(NothingArrives(two.server));

  REQUIRE_OK(DetachSockMap(verdict, sock_map, BPF_SK_SKB_STREAM_VERDICT));
  CHECK_FALSE(absl::StrContains(graph().Explain(verdict).ToString(), "legacy hook"));
  // Detaching twice: the kernel has nothing attached any more.
  auto again = DetachSockMap(verdict, sock_map, BPF_SK_SKB_STREAM_VERDICT);
  CHECK_FALSE(again.ok());
  CHECK_THAT(std::string(again.message()), Catch::Contains("BPF_PROG_DETACH") && Catch::Contains("skb_redirect"));
}

TEST_CASE("sockhash: an sk_msg verdict counts in socket storage and redirects to a receive queue",
          "[sockmap][sk_storage]") {
  auto spec = CollectionSpec::FromFile(BpfObjectPath("sockmap"));
  REQUIRE_OK(spec);
  Map sock_hash, msg_stats;
  Program verdict;
  REQUIRE_OK(LoadAndAssign(*spec, {{{"sock_hash", &sock_hash}, {"msg_stats", &msg_stats}},
                                   {{"msg_redirect", &verdict}}}));
  REQUIRE_OK(AttachSockMap(verdict, sock_hash, BPF_SK_MSG_VERDICT));
  TcpPair three, four;
  REQUIRE_OK(sock_hash.Update(uint32_t{1}, uint64_t(three.client)));
  REQUIRE_OK(sock_hash.Update(uint32_t{2}, uint64_t(four.client)));
  CHECK(Slot(sock_hash, 2) == Cookie(four.client));
  auto keys = sock_hash.Keys<uint32_t>();
  REQUIRE_OK(keys);
  CHECK(std::set<uint32_t>(keys->begin(), keys->end()) == std::set<uint32_t>{1, 2});

  // Each send is one sendmsg, one verdict: it lands on four.client's own
  // receive queue (BPF_F_INGRESS), and three.server gets nothing.
  std::string all;
  for (const std::string& part : {std::string("alpha"), std::string("beta-"), std::string("gamma-delta")}) {
    SendAll(three.client, part);
    all += part;
  }
  CHECK(Receive(four.client, all.size()) == all);
  CHECK(NothingArrives(three.server));

  // Socket storage is keyed from user space by the socket's fd.
  struct Stats {
    uint64_t msgs, bytes;
  } stats{};
  REQUIRE_OK(msg_stats.Lookup(int32_t(three.client), &stats));
  CHECK(stats.msgs == 3);
  CHECK(stats.bytes == all.size());
  CHECK(msg_stats.Lookup(int32_t(four.client), &stats).code() == absl::StatusCode::kNotFound);
  // User space may write a socket's storage too; the program adds to it.
  REQUIRE_OK(msg_stats.Update(int32_t(three.client), Stats{100, 0}));
  SendAll(three.client, "x");
  CHECK(Receive(four.client, 1) == "x");
  REQUIRE_OK(msg_stats.Lookup(int32_t(three.client), &stats));
  CHECK(stats.msgs == 101);
  CHECK(stats.bytes == 1);

  // Attaching to a map that holds no sockets is refused by tether first.
  auto wrong = AttachSockMap(verdict, msg_stats, BPF_SK_MSG_VERDICT);
  CHECK(wrong.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(wrong.message()), Catch::Contains("msg_stats") && Catch::Contains("sockmap or sockhash"));
  auto bad_type = AttachSockMap(verdict, sock_hash, BPF_CGROUP_INET_INGRESS);
  CHECK(bad_type.code() == absl::StatusCode::kInvalidArgument);
  REQUIRE_OK(DetachSockMap(verdict, sock_hash, BPF_SK_MSG_VERDICT));
}
