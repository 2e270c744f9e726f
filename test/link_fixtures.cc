#include "link_fixtures.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "sys/bpf.h"
#include "test_support.h"
#include "tether/insn.h"

namespace tether::testing {

Map CounterMap(const std::string& name) {
  MapOptions o;
  o.type = BPF_MAP_TYPE_ARRAY;
  o.key_size = 4;
  o.value_size = 8;
  o.max_entries = 1;
  o.name = name;
  auto m = Map::Create(o);
  REQUIRE(m.ok());
  return *m;
}

uint64_t ReadCounter(const Map& counter) {
  uint32_t key = 0;
  uint64_t value = 0;
  absl::Status st = counter.Lookup(key, &value);
  REQUIRE(st.ok());
  return value;
}

Program LoadCounter(const Map& counter, const CounterProgram& spec, std::string* error) {
  std::vector<bpf_insn> prog;
  prog.push_back(insn::MovReg(BPF_REG_6, BPF_REG_1));
  prog.insert(prog.end(), spec.prelude.begin(), spec.prelude.end());
  prog.push_back(insn::StoreImm32(BPF_REG_10, -4, 0));
  prog.push_back(insn::MovReg(BPF_REG_2, BPF_REG_10));
  prog.push_back(insn::AddImm(BPF_REG_2, -4));
  prog.resize(prog.size() + 2);
  insn::LdMapFd(BPF_REG_1, counter.fd(), &prog[prog.size() - 2]);
  prog.push_back(insn::Call(BPF_FUNC_map_lookup_elem));
  prog.push_back(insn::JeqImm(BPF_REG_0, 0, 2));
  prog.push_back(insn::MovImm(BPF_REG_1, 1));
  prog.push_back(insn::AtomicAdd64(BPF_REG_0, 0, BPF_REG_1));
  prog.push_back(insn::MovImm(BPF_REG_0, spec.return_value));
  prog.push_back(insn::Exit());
  ProgramLoadOptions o;
  o.type = spec.type;
  o.instructions = prog;
  o.name = spec.name;
  o.expected_attach_type = spec.expected_attach_type;
  o.attach_btf_id = spec.attach_btf_id;
  auto p = Program::Load(o);
  if (!p.ok()) {
    if (error) *error = p.status().ToString();
    else FAIL("loading " << spec.name << ": " << p.status());
    return Program();
  }
  return *p;
}

bool KernelHasLink(uint32_t id) { return sys::GetFdById(sys::ObjectKind::kLink, id).ok(); }

namespace {

int Sh(const std::string& cmd) {
  int rc = system((cmd + " >/dev/null 2>&1").c_str());
  return rc;
}

std::atomic<int> g_counter{0};

}  // namespace

TestNetns::TestNetns() {
  name_ = "tether-" + std::to_string(getpid()) + "-" + std::to_string(g_counter++);
  Sh("ip netns del " + name_);
  REQUIRE(Sh("ip netns add " + name_) == 0);
  REQUIRE(Sh("ip -n " + name_ + " link set lo up") == 0);
  fd_ = open(("/var/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd_ >= 0);
}

TestNetns::~TestNetns() {
  if (fd_ >= 0) close(fd_);
  Sh("ip netns del " + name_);
}

void TestNetns::Run(const std::function<void()>& fn) const {
  bool entered = false;
  std::thread t([&] {
    // Only this thread changes namespace, and it ends here.
    if (setns(fd_, CLONE_NEWNET) != 0) return;
    entered = true;
    fn();
  });
  t.join();
  REQUIRE(entered);
}

int TestNetns::Ifindex(const std::string& ifname) const {
  int index = 0;
  Run([&] { index = static_cast<int>(if_nametoindex(ifname.c_str())); });
  REQUIRE(index > 0);
  return index;
}

int TestNetns::Socket(int domain, int type) const {
  int fd = -1;
  Run([&] { fd = socket(domain, type | SOCK_CLOEXEC, 0); });
  REQUIRE(fd >= 0);
  return fd;
}

VethPair::VethPair() {
  int n = 100 + (getpid() + g_counter) % 100;
  ip_a = "10." + std::to_string(n) + ".0.1";
  ip_b = "10." + std::to_string(n) + ".0.2";
  REQUIRE(Sh("ip -n " + a.name() + " link add va type veth peer name vb netns " + b.name()) == 0);
  REQUIRE(Sh("ip -n " + a.name() + " addr add " + ip_a + "/24 dev va") == 0);
  REQUIRE(Sh("ip -n " + b.name() + " addr add " + ip_b + "/24 dev vb") == 0);
  REQUIRE(Sh("ip -n " + a.name() + " link set va up") == 0);
  REQUIRE(Sh("ip -n " + b.name() + " link set vb up") == 0);
  ifindex_a = a.Ifindex("va");
  ifindex_b = b.Ifindex("vb");
}

void VethPair::SendAtoB(uint16_t port, int count) const {
  int s = a.Socket(AF_INET, SOCK_DGRAM);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  inet_pton(AF_INET, ip_b.c_str(), &to.sin_addr);
  for (int i = 0; i < count; ++i) {
    char msg[] = "tether";
    sendto(s, msg, sizeof(msg), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
    usleep(2000);
  }
  close(s);
}

int VethPair::ReceiverInB(uint16_t port) const {
  int s = b.Socket(AF_INET, SOCK_DGRAM);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, ip_b.c_str(), &addr.sin_addr);
  REQUIRE(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  timeval tv{0, 300 * 1000};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return s;
}

bool ReceiveOne(int sock) {
  char buf[256];
  return recv(sock, buf, sizeof(buf), 0) > 0;
}

int LoopbackUdpSocket(uint16_t* port) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(s >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  timeval tv{0, 200 * 1000};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return s;
}

void SendLoopback(int sock, uint16_t port) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  char msg[] = "tether";
  sendto(sock, msg, sizeof(msg), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
}

namespace {

// The first cgroup2 mount, or a private one made for the tests.
std::string Cgroup2Root(std::string* why) {
  std::ifstream mounts("/proc/self/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream in(line);
    std::string dev, dir, fstype;
    in >> dev >> dir >> fstype;
    if (fstype == "cgroup2") return dir;
  }
  const char* dir = "/run/tether-test-cgroup2";
  mkdir(dir, 0755);
  if (mount("cgroup2", dir, "cgroup2", 0, nullptr) != 0) {
    *why = std::string("no cgroup2 mount, and mounting one failed: ") + strerror(errno);
    return "";
  }
  return dir;
}

}  // namespace

TempCgroup::TempCgroup() {
  std::string root = Cgroup2Root(&why_);
  if (root.empty()) return;
  std::string path =
      root + "/tether-test-" + std::to_string(getpid()) + "-" + std::to_string(g_counter++);
  if (mkdir(path.c_str(), 0755) != 0) {
    why_ = "mkdir " + path + ": " + strerror(errno);
    return;
  }
  path_ = path;
}

TempCgroup::~TempCgroup() {
  if (path_.empty()) return;
  // A reaped child may linger in the cgroup for a moment.
  Eventually([&] { return rmdir(path_.c_str()) == 0 || errno == ENOENT; }, 2000);
}

int TempCgroup::RunInChild(const std::function<int()>& fn) const {
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Only async-signal-safe work until fn: the parent has other threads.
    std::string procs = path_ + "/cgroup.procs";
    int fd = open(procs.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1) _exit(120);
    close(fd);
    _exit(fn());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace tether::testing
