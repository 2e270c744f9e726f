// reuseport_sockarray with a real SO_REUSEPORT group: three UDP sockets on
// one loopback port, an sk_reuseport program (test/bpf/reuseport.bpf.c,
// AttachReuseport) that picks one by the datagram's first byte through the
// array, and the test checks which socket each datagram reached.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "link_fixtures.h"
#include "test_support.h"
#include "tether/attach.h"
#include "tether/collection.h"
#include "tether/graph.h"

using namespace tether;
using namespace tether::testing;

namespace {

int ReusePortSocket(uint16_t* port) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(s >= 0);
  int one = 1;
  REQUIRE(setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(*port);
  REQUIRE(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  REQUIRE(getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  *port = ntohs(addr.sin_port);
  return s;
}

void SendKey(uint16_t port, uint8_t key) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  uint8_t msg[4] = {key, 't', 'h', 'r'};
  REQUIRE(sendto(s, msg, sizeof(msg), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 4);
  close(s);
}

// Which of `socks` got a datagram (and its key byte), -1 if none within
// 300 ms. Drains everything that came.
int WhoGotIt(const std::vector<int>& socks, uint8_t* key) {
  std::vector<pollfd> p;
  for (int s : socks) p.push_back({s, POLLIN, 0});
  if (poll(p.data(), p.size(), 300) <= 0) return -1;
  int who = -1;
  for (size_t i = 0; i < socks.size(); ++i) {
    uint8_t buf[16];
    while (recv(socks[i], buf, sizeof(buf), MSG_DONTWAIT) > 0) {
      who = who == -1 ? static_cast<int>(i) : -2;  // -2: more than one socket got one
      *key = buf[0];
    }
  }
  return who;
}

uint64_t Cookie(int fd) {
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  REQUIRE(getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) == 0);
  return cookie;
}

}  // namespace

TEST_CASE("reuseport_sockarray: an sk_reuseport program picks the group's socket by key",
          "[map][reuseport]") {
  auto spec = CollectionSpec::FromFile(BpfObjectPath("reuseport"));
  REQUIRE_OK(spec);
  Map socks_map, picks;
  Program pick;
  REQUIRE_OK(LoadAndAssign(*spec, {{{"reuse_socks", &socks_map}, {"picks", &picks}},
                                   {{"pick_by_payload", &pick}}}));
  uint16_t port = 0;
  std::vector<int> socks;
  socks.push_back(ReusePortSocket(&port));
  socks.push_back(ReusePortSocket(&port));
  socks.push_back(ReusePortSocket(&port));
  REQUIRE_OK(AttachReuseport(pick, socks[0]));
  CHECK(absl::StrContains(graph().Explain(pick).ToString(), "SO_ATTACH_REUSEPORT_EBPF"));

  // Keys chosen so that slot order and socket order differ.
  REQUIRE_OK(socks_map.Update(uint32_t{0}, uint64_t(socks[2])));
  REQUIRE_OK(socks_map.Update(uint32_t{1}, uint64_t(socks[0])));
  REQUIRE_OK(socks_map.Update(uint32_t{2}, uint64_t(socks[1])));
  uint64_t cookie = 0;
  REQUIRE_OK(socks_map.Lookup(uint32_t{0}, &cookie));
  CHECK(cookie == Cookie(socks[2]));
  // A socket of another group (another port) goes in, but selecting it
  // from this group fails, so the program drops what is sent to its key.
  uint16_t other_port = 0;
  int stranger = ReusePortSocket(&other_port);
  REQUIRE_OK(socks_map.Update(uint32_t{3}, uint64_t(stranger)));

  const int expected_socket[] = {2, 0, 1};
  for (int round = 0; round < 2; ++round) {
    for (uint8_t key : {uint8_t{2}, uint8_t{0}, uint8_t{1}}) {
      SendKey(port, key);
      uint8_t got_key = 0xff;
      int who = WhoGotIt(socks, &got_key);
      INFO("key " << int(key));
      CHECK(who == expected_socket[key]);
      CHECK(got_key == key);
    }
  }
  auto slot = [&](uint32_t k) {
    uint64_t v = 0;
    REQUIRE_OK(picks.Lookup(k, &v));
    return v;
  };
  CHECK(slot(0) == 6);

  SendKey(port, 3);
  uint8_t ignored = 0;
  CHECK(WhoGotIt(socks, &ignored) == -1);
  CHECK(WhoGotIt({stranger}, &ignored) == -1);
  close(stranger);
  // No socket at the key: dropped too.
  REQUIRE_OK(socks_map.Delete(uint32_t{1}));
  SendKey(port, 1);
  CHECK(WhoGotIt(socks, &ignored) == -1);
  CHECK(slot(1) == 2);

  // Detached, the group spreads datagrams by hash again: someone gets it.
  REQUIRE_OK(DetachReuseport(pick, socks[0]));
  CHECK_FALSE(absl::StrContains(graph().Explain(pick).ToString(), "SO_ATTACH_REUSEPORT_EBPF"));
  SendKey(port, 3);
  CHECK(WhoGotIt(socks, &ignored) >= 0);
  for (int s : socks) close(s);
}
