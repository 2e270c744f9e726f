// Fixtures for the link tests: counting programs, network namespaces with
// a veth pair between them, throwaway cgroups, and children run inside
// them. Everything a fixture makes is torn down in its destructor.
#ifndef TETHER_TEST_LINK_FIXTURES_H_
#define TETHER_TEST_LINK_FIXTURES_H_

#include <linux/bpf.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tether/map.h"
#include "tether/program.h"

namespace tether::testing {

inline std::string StatusText(const absl::Status& s) { return s.ToString(); }
template <typename T>
std::string StatusText(const absl::StatusOr<T>& s) {
  return s.status().ToString();
}
// REQUIRE(x.ok()), showing the status when it fails.
#define REQUIRE_OK(expr)                                \
  do {                                                  \
    const auto& req_ok_ = (expr);                       \
    INFO(::tether::testing::StatusText(req_ok_));       \
    REQUIRE(req_ok_.ok());                              \
  } while (0)

// An ARRAY map with one u64 slot, the counter of a counting program.
Map CounterMap(const std::string& name = "counter");
uint64_t ReadCounter(const Map& counter);

struct CounterProgram {
  uint32_t type = BPF_PROG_TYPE_SOCKET_FILTER;
  uint32_t expected_attach_type = 0;
  uint32_t attach_btf_id = 0;
  int32_t return_value = 0;
  std::string name = "counter";
  // Runs first, with the context in r6 (which it must keep).
  std::vector<bpf_insn> prelude;
};
// Loads a program that adds one to slot 0 of `counter` and returns
// `spec.return_value`. Returns an empty Program and sets *error on failure.
Program LoadCounter(const Map& counter, const CounterProgram& spec, std::string* error = nullptr);

bool KernelHasLink(uint32_t id);

// A network namespace made with `ip netns add`, loopback up. Deleted (with
// its interfaces) on destruction.
class TestNetns {
 public:
  TestNetns();
  ~TestNetns();
  const std::string& name() const { return name_; }
  // /var/run/netns/<name>, open for as long as the namespace lives.
  int fd() const { return fd_; }
  // Runs `fn` on a thread inside the namespace: sockets it creates and
  // ifindexes it sees belong there.
  void Run(const std::function<void()>& fn) const;
  int Ifindex(const std::string& ifname) const;
  // A socket in this namespace (the caller closes it).
  int Socket(int domain, int type) const;

 private:
  std::string name_;
  int fd_ = -1;
};

// Two namespaces joined by a veth pair: `a` holds "va" (10.<n>.0.1/24),
// `b` holds "vb" (10.<n>.0.2/24).
class VethPair {
 public:
  VethPair();
  TestNetns a, b;
  std::string ip_a, ip_b;
  int ifindex_a = 0, ifindex_b = 0;

  // Sends `count` UDP datagrams from a to b:`port`.
  void SendAtoB(uint16_t port, int count) const;
  // A UDP socket in b bound to ip_b:`port`, with a short receive timeout.
  int ReceiverInB(uint16_t port) const;
};

// Receives one datagram within the socket's timeout; false if none came.
bool ReceiveOne(int sock);
// A UDP socket bound to 127.0.0.1 on an ephemeral port, 200 ms timeout.
int LoopbackUdpSocket(uint16_t* port);
// Sends one datagram from `sock` to 127.0.0.1:port.
void SendLoopback(int sock, uint16_t port);

// A cgroup v2 directory under the unified hierarchy, removed on
// destruction. ok() is false (with why()) when there is no cgroup2 mount.
class TempCgroup {
 public:
  TempCgroup();
  ~TempCgroup();
  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  const std::string& why() const { return why_; }
  // Forks a child that moves itself into the cgroup, runs `fn` and exits
  // with its result. Returns that exit code (or -1).
  int RunInChild(const std::function<int()>& fn) const;

 private:
  std::string path_;
  std::string why_;
};

}  // namespace tether::testing

#endif  // TETHER_TEST_LINK_FIXTURES_H_
