// UDP over the loopback of a private network namespace, for tests whose
// hooks (tc, netfilter) must see only their own packets. Call these from a
// thread that has done unshare(CLONE_NEWNET): a fresh namespace's lo is down.
#ifndef TETHER_TEST_LOOPBACK_SUPPORT_H_
#define TETHER_TEST_LOOPBACK_SUPPORT_H_

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace tether::testing {

// Sets lo up; on failure says why in *error.
inline bool BringUpLoopback(std::string* error) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  strcpy(ifr.ifr_name, "lo");
  bool ok = s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags |= IFF_UP;
  ok = ok && ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
  if (!ok) *error = std::string("bringing up lo: ") + strerror(errno);
  if (s >= 0) close(s);
  return ok;
}

// A UDP socket bound to 127.0.0.1 with a 200 ms receive timeout, and its
// port; -1 on failure (errno says why).
inline int BoundUdpReceiver(uint16_t* port) {
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

// One datagram from `tx` to 127.0.0.1:`port`. Returns whether the send
// succeeded (*send_errno says why not) and sets *received if `rx` got it
// within its timeout.
inline bool SendUdpOnce(int tx, int rx, uint16_t port, int* send_errno, bool* received) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  char byte = 'x';
  bool sent = sendto(tx, &byte, 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 1;
  *send_errno = sent ? 0 : errno;
  char got = 0;
  *received = recv(rx, &got, 1, 0) == 1;
  return sent;
}

}  // namespace tether::testing

#endif  // TETHER_TEST_LOOPBACK_SUPPORT_H_
