// The redirect maps (devmap, devmap_hash, cpumap, xskmap) and the LPM trie
// driven by programs (test/bpf/redirect_maps.bpf.c). bpf_redirect_map
// answers XDP_REDIRECT from a populated slot and its fallback from an
// empty one; with BPF_F_TEST_XDP_LIVE_FRAMES the kernel really redirects
// the test frames: through a cpumap to another CPU and up the stack to a
// UDP socket, through a devmap out of a veth to a socket behind it, and
// through an xskmap into an AF_XDP socket's ring.
#include <arpa/inet.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"

#include "link_fixtures.h"
#include "map_test_programs.h"
#include "test_support.h"
#include "tether/attach.h"
#include "tether/collection.h"
#include "tether/percpu.h"
#include "tether/perf_reader.h"

using namespace tether;
using namespace tether::testing;

namespace {

constexpr size_t kKeyOffset = 14 + 20 + 8;  // KEY_OFFSET in the BPF source

uint16_t Checksum(const uint8_t* p, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t{p[i]} << 8 | p[i + 1];
  if (n & 1) sum += uint32_t{p[n - 1]} << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// Ethernet (to 00:00:00:00:00:00, loopback's address) + IPv4 src -> dst
// + UDP to `port` (no UDP checksum), payload: key, then `text`.
std::vector<uint8_t> Frame(uint16_t port, uint8_t key, const std::string& text,
                           uint32_t src = INADDR_LOOPBACK, uint32_t dst = INADDR_LOOPBACK) {
  const size_t payload = 1 + text.size();
  std::vector<uint8_t> f(14 + 20 + 8 + payload, 0);
  f[12] = 0x08;  // ETH_P_IP
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x45;
  uint16_t tot = htons(static_cast<uint16_t>(20 + 8 + payload));
  memcpy(ip + 2, &tot, 2);
  ip[8] = 64;  // TTL
  ip[9] = IPPROTO_UDP;
  uint32_t saddr = htonl(src), daddr = htonl(dst);
  memcpy(ip + 12, &saddr, 4);
  memcpy(ip + 16, &daddr, 4);
  uint16_t csum = htons(Checksum(ip, 20));
  memcpy(ip + 10, &csum, 2);
  uint8_t* udp = ip + 20;
  uint16_t sport = htons(9), dport = htons(port), ulen = htons(static_cast<uint16_t>(8 + payload));
  memcpy(udp, &sport, 2);
  memcpy(udp + 2, &dport, 2);
  memcpy(udp + 4, &ulen, 2);
  f[kKeyOffset] = key;
  memcpy(f.data() + kKeyOffset + 1, text.data(), text.size());
  return f;
}

// A plain test run: the program's verdict.
uint32_t Verdict(const Program& p, const std::vector<uint8_t>& frame) {
  RunOptions o;
  o.data = frame;
  auto r = p.Run(o);
  REQUIRE_OK(r);
  return r->return_value;
}

// A live test run: the kernel acts on the verdict, `repeat` times.
absl::Status RunLive(const Program& p, const std::vector<uint8_t>& frame, uint32_t repeat = 1) {
  RunOptions o;
  o.data = frame;
  o.repeat = repeat;
  o.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
  return p.Run(o, absl::Span<uint8_t>(), nullptr).status();
}

struct Redirects {
  Map tx_port, tx_hash, cpus, xsks, on_cpu_count;
  Program to_devmap, to_devmap_hash, to_cpumap, to_xskmap, on_cpu;
};

Redirects Load() {
  auto spec = CollectionSpec::FromFile(BpfObjectPath("redirect_maps"));
  REQUIRE_OK(spec);
  Redirects r;
  REQUIRE_OK(LoadAndAssign(*spec, {{{"tx_port", &r.tx_port},
                                    {"tx_hash", &r.tx_hash},
                                    {"cpus", &r.cpus},
                                    {"xsks", &r.xsks},
                                    {"on_cpu_count", &r.on_cpu_count}},
                                   {{"to_devmap", &r.to_devmap},
                                    {"to_devmap_hash", &r.to_devmap_hash},
                                    {"to_cpumap", &r.to_cpumap},
                                    {"to_xskmap", &r.to_xskmap},
                                    {"on_cpu", &r.on_cpu}}}));
  return r;
}

// An AF_XDP socket in copy mode on queue 0 of `ifindex`, with a UMEM of
// 8 frames all handed to the kernel through the fill ring, and an RX ring
// to read from. Everything is set up with plain syscalls: tether has no
// AF_XDP API.
class XdpSocket {
 public:
  static constexpr uint32_t kFrames = 8, kFrameSize = 4096, kRing = 8;

  // Empty error() on success.
  explicit XdpSocket(int ifindex) { Setup(ifindex); }
  ~XdpSocket() {
    if (rx_ && rx_ != MAP_FAILED) munmap(rx_, rx_len_);
    if (fill_ && fill_ != MAP_FAILED) munmap(fill_, fill_len_);
    if (umem_ && umem_ != MAP_FAILED) munmap(umem_, kFrames * kFrameSize);
    if (fd_ >= 0) close(fd_);
  }
  XdpSocket(const XdpSocket&) = delete;
  XdpSocket& operator=(const XdpSocket&) = delete;

  void Setup(int ifindex) {
    fd_ = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return Fail("socket(AF_XDP)");
    umem_ = static_cast<uint8_t*>(mmap(nullptr, kFrames * kFrameSize, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (umem_ == MAP_FAILED) return Fail("mmap (umem)");
    xdp_umem_reg reg{};
    reg.addr = reinterpret_cast<uintptr_t>(umem_);
    reg.len = kFrames * kFrameSize;
    reg.chunk_size = kFrameSize;
    if (setsockopt(fd_, SOL_XDP, XDP_UMEM_REG, &reg, sizeof(reg)) != 0) return Fail("XDP_UMEM_REG");
    uint32_t n = kRing;
    if (setsockopt(fd_, SOL_XDP, XDP_UMEM_FILL_RING, &n, sizeof(n)) != 0) return Fail("XDP_UMEM_FILL_RING");
    if (setsockopt(fd_, SOL_XDP, XDP_UMEM_COMPLETION_RING, &n, sizeof(n)) != 0)
      return Fail("XDP_UMEM_COMPLETION_RING");
    if (setsockopt(fd_, SOL_XDP, XDP_RX_RING, &n, sizeof(n)) != 0) return Fail("XDP_RX_RING");
    xdp_mmap_offsets off{};
    socklen_t len = sizeof(off);
    if (getsockopt(fd_, SOL_XDP, XDP_MMAP_OFFSETS, &off, &len) != 0) return Fail("XDP_MMAP_OFFSETS");
    fill_len_ = off.fr.desc + kRing * sizeof(uint64_t);
    fill_ = static_cast<uint8_t*>(mmap(nullptr, fill_len_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_,
                                       XDP_UMEM_PGOFF_FILL_RING));
    if (fill_ == MAP_FAILED) return Fail("mmap (fill ring)");
    rx_len_ = off.rx.desc + kRing * sizeof(xdp_desc);
    rx_ = static_cast<uint8_t*>(mmap(nullptr, rx_len_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_,
                                     XDP_PGOFF_RX_RING));
    if (rx_ == MAP_FAILED) return Fail("mmap (rx ring)");
    off_ = off;
    auto* fill_desc = reinterpret_cast<uint64_t*>(fill_ + off.fr.desc);
    for (uint32_t i = 0; i < kFrames; ++i) fill_desc[i] = uint64_t{i} * kFrameSize;
    std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(fill_ + off.fr.producer))
        .store(kFrames, std::memory_order_release);
    sockaddr_xdp addr{};
    addr.sxdp_family = AF_XDP;
    addr.sxdp_ifindex = static_cast<uint32_t>(ifindex);
    addr.sxdp_queue_id = 0;
    addr.sxdp_flags = XDP_COPY;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return Fail("bind");
  }
  int fd() const { return fd_; }
  const std::string& error() const { return error_; }

  // The frames in the RX ring now, consumed.
  std::vector<std::vector<uint8_t>> Take() {
    std::vector<std::vector<uint8_t>> out;
    auto prod = std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(rx_ + off_.rx.producer))
                    .load(std::memory_order_acquire);
    auto& cons = *reinterpret_cast<uint32_t*>(rx_ + off_.rx.consumer);
    auto* descs = reinterpret_cast<xdp_desc*>(rx_ + off_.rx.desc);
    for (; cons != prod; ++cons) {
      const xdp_desc& d = descs[cons % kRing];
      out.emplace_back(umem_ + d.addr, umem_ + d.addr + d.len);
    }
    std::atomic_ref<uint32_t>(cons).store(cons, std::memory_order_release);
    return out;
  }

 private:
  void Fail(const char* what) { error_ = std::string(what) + ": " + strerror(errno); }

  int fd_ = -1;
  uint8_t* umem_ = nullptr;
  uint8_t* fill_ = nullptr;
  uint8_t* rx_ = nullptr;
  size_t fill_len_ = 0, rx_len_ = 0;
  xdp_mmap_offsets off_{};
  std::string error_;
};

}  // namespace

TEST_CASE("redirect maps: a populated slot redirects, an empty one falls back to the flags' action",
          "[map][redirect]") {
  Redirects r = Load();
  const uint32_t lo = if_nametoindex("lo");
  auto frame = [](uint8_t key) { return Frame(9, key, "verdict"); };

  CHECK(Verdict(r.to_devmap, frame(1)) == XDP_PASS);
  REQUIRE_OK(r.tx_port.Update(uint32_t{1}, lo));
  CHECK(Verdict(r.to_devmap, frame(1)) == XDP_REDIRECT);
  CHECK(Verdict(r.to_devmap, frame(2)) == XDP_PASS);
  REQUIRE_OK(r.tx_port.Delete(uint32_t{1}));
  CHECK(Verdict(r.to_devmap, frame(1)) == XDP_PASS);

  // devmap_hash keys are any u32, not indexes.
  CHECK(Verdict(r.to_devmap_hash, frame(200)) == XDP_DROP);
  REQUIRE_OK(r.tx_hash.Update(uint32_t{200}, lo));
  CHECK(Verdict(r.to_devmap_hash, frame(200)) == XDP_REDIRECT);
  CHECK(Verdict(r.to_devmap_hash, frame(3)) == XDP_DROP);

  // cpumap keys are CPU numbers; the value is the queue size (and an
  // optional program).
  const uint32_t cpu = OnlineCpus().back();
  CHECK(Verdict(r.to_cpumap, frame(static_cast<uint8_t>(cpu))) == XDP_TX);
  REQUIRE_OK(r.cpus.Update(cpu, bpf_cpumap_val{64, {0}}));
  CHECK(Verdict(r.to_cpumap, frame(static_cast<uint8_t>(cpu))) == XDP_REDIRECT);
  bpf_cpumap_val back{};
  REQUIRE_OK(r.cpus.Lookup(cpu, &back));
  CHECK(back.qsize == 64);
  CHECK(back.bpf_prog.id == 0);

  // An xskmap slot without a socket falls back; see the AF_XDP test for a
  // populated one.
  CHECK(Verdict(r.to_xskmap, frame(0)) == XDP_PASS);
}

TEST_CASE("cpumap: live frames go to the chosen CPU, through its program, up to a UDP socket",
          "[map][redirect][cpumap]") {
  Redirects r = Load();
  std::vector<uint32_t> online = OnlineCpus();
  const uint32_t target = online.back();
  bpf_cpumap_val val{};
  val.qsize = 64;
  val.bpf_prog.fd = r.on_cpu.fd();
  REQUIRE_OK(r.cpus.Update(target, val));
  bpf_cpumap_val back{};
  REQUIRE_OK(r.cpus.Lookup(target, &back));
  CHECK(back.bpf_prog.id == r.on_cpu.id());

  // The frames enter the stack on the loopback of the namespace that runs
  // them, without the route that locally sent packets carry. Addressed to
  // 127.0.0.1 they were received (IpInReceives) but never delivered; to an
  // address of its own on a private namespace's loopback they are.
  TestNetns ns;
  constexpr uint32_t kLocal = 0x0ad30001, kPeer = 0x0ad30002;  // 10.211.0.1, .2
  REQUIRE(system(("ip -n " + ns.name() + " addr add 10.211.0.1/32 dev lo").c_str()) == 0);
  std::string setup_error;
  absl::Status live;
  std::vector<std::string> payloads;
  ns.Run([&] {
    int rx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(kLocal);
    addr.sin_port = htons(4243);
    if (bind(rx, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      setup_error = std::string("bind: ") + strerror(errno);
      close(rx);
      return;
    }
    // Sent from another CPU where there is one, so the move is visible.
    PinToCpu pin(online.front());
    live = RunLive(r.to_cpumap, Frame(4243, static_cast<uint8_t>(target), "via cpumap", kPeer, kLocal), 3);
    for (int i = 0; i < 3 && live.ok(); ++i) {
      pollfd p{rx, POLLIN, 0};
      if (poll(&p, 1, 2000) <= 0) break;
      char buf[64] = {0};
      ssize_t n = recv(rx, buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 1) payloads.emplace_back(buf + 1, static_cast<size_t>(n) - 1);
    }
    close(rx);
  });
  INFO(setup_error);
  REQUIRE(setup_error.empty());
  REQUIRE_OK(live);
  CHECK(payloads == std::vector<std::string>(3, "via cpumap"));

  auto counts = PerCpuMap<uint32_t, uint64_t>::Bind(r.on_cpu_count);
  REQUIRE_OK(counts);
  PerCpuValues<uint64_t> per_cpu = counts->MakeValues();
  REQUIRE_OK(counts->Lookup(0, &per_cpu));
  for (uint32_t c = 0; c < per_cpu.cpus(); ++c) {
    INFO("cpu " << c);
    CHECK(per_cpu[c] == (c == target ? 3u : 0u));
  }
}

TEST_CASE("devmap and devmap_hash: live frames leave through a veth and reach a socket behind it",
          "[map][redirect][devmap]") {
  Redirects r = Load();
  VethPair net;
  // The receiving end needs an XDP program before veth takes redirected
  // frames (it turns the peer's NAPI on); this one counts them and passes.
  Map arrived = CounterMap("devmap_arrived");
  Program pass = LoadCounter(arrived, {BPF_PROG_TYPE_XDP, 0, 0, XDP_PASS, "vb_pass"});
  Link vb_link;
  uint8_t vb_mac[6] = {0}, va_mac[6] = {0};
  auto mac_of = [](int sock, const char* ifname, uint8_t* mac) {
    ifreq ifr{};
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    if (ioctl(sock, SIOCGIFHWADDR, &ifr) == 0) memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
  };
  net.b.Run([&] {
    auto l = AttachXdp(pass, net.ifindex_b);
    if (l.ok()) vb_link = *l;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    mac_of(s, "vb", vb_mac);
    close(s);
  });
  REQUIRE(vb_link);
  int rx = net.ReceiverInB(4244);
  // Ifindexes in a device map resolve in the updating thread's namespace.
  absl::Status dev_update, hash_update;
  net.a.Run([&] {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    mac_of(s, "va", va_mac);
    close(s);
    dev_update = r.tx_port.Update(uint32_t{1}, uint32_t(net.ifindex_a));
    hash_update = r.tx_hash.Update(uint32_t{200}, uint32_t(net.ifindex_a));
  });
  REQUIRE_OK(dev_update);
  REQUIRE_OK(hash_update);

  auto frame = [&](uint8_t key, const std::string& text) {
    std::vector<uint8_t> f = Frame(4244, key, text, ntohl(inet_addr(net.ip_a.c_str())),
                                   ntohl(inet_addr(net.ip_b.c_str())));
    memcpy(f.data(), vb_mac, 6);
    memcpy(f.data() + 6, va_mac, 6);
    return f;
  };
  absl::Status live_dev, live_hash;
  net.a.Run([&] {
    live_dev = RunLive(r.to_devmap, frame(1, "via devmap"), 2);
    live_hash = RunLive(r.to_devmap_hash, frame(200, "via devmap_hash"));
  });
  REQUIRE_OK(live_dev);
  REQUIRE_OK(live_hash);
  std::multiset<std::string> got;
  for (int i = 0; i < 3; ++i) {
    char buf[64] = {0};
    ssize_t n = recv(rx, buf, sizeof(buf), 0);
    if (n <= 1) break;
    got.insert(std::string(buf + 1, static_cast<size_t>(n) - 1));
  }
  close(rx);
  CHECK(got == std::multiset<std::string>{"via devmap", "via devmap", "via devmap_hash"});
  // The veth also carries the namespaces' own chatter (IPv6 neighbour
  // discovery): at least the redirected frames passed vb's program.
  CHECK(ReadCounter(arrived) >= 3);
}

TEST_CASE("xskmap: an AF_XDP socket on loopback's queue 0 receives the frames redirected to it",
          "[map][redirect][xskmap]") {
  Redirects r = Load();
  // In a namespace of its own, so that no other AF_XDP user of the host's
  // loopback can hold queue 0; live test frames arrive on the loopback of
  // the namespace that runs them.
  TestNetns ns;
  std::string setup_error;
  std::vector<std::vector<uint8_t>> received;
  uint32_t verdict_empty = 0, verdict_full = 0;
  absl::Status update, live;
  std::vector<uint8_t> sent = Frame(4242, 0, "to the xsk");
  ns.Run([&] {
    XdpSocket xsk(static_cast<int>(if_nametoindex("lo")));
    if (!xsk.error().empty()) {
      setup_error = xsk.error();
      return;
    }
    RunOptions o;
    o.data = sent;
    auto v = r.to_xskmap.Run(o);
    if (v.ok()) verdict_empty = v->return_value;
    update = r.xsks.Update(uint32_t{0}, uint32_t(xsk.fd()));
    if (!update.ok()) return;
    v = r.to_xskmap.Run(o);
    if (v.ok()) verdict_full = v->return_value;
    live = RunLive(r.to_xskmap, sent, 2);
    for (int i = 0; i < 50 && received.size() < 2; ++i) {
      for (auto& f : xsk.Take()) received.push_back(std::move(f));
      if (received.size() < 2) usleep(10000);
    }
    (void)r.xsks.Delete(uint32_t{0});
  });
  INFO(setup_error);
  REQUIRE(setup_error.empty());
  REQUIRE_OK(update);
  REQUIRE_OK(live);
  CHECK(verdict_empty == XDP_PASS);
  CHECK(verdict_full == XDP_REDIRECT);
  REQUIRE(received.size() == 2);
  for (const auto& f : received) CHECK(f == sent);
}

TEST_CASE("LPM trie: a program routes by longest prefix and records what it saw", "[map][lpm]") {
  auto spec = CollectionSpec::FromFile(BpfObjectPath("redirect_maps"));
  REQUIRE_OK(spec);
  Map routes, seen;
  Program route;
  REQUIRE_OK(LoadAndAssign(*spec, {{{"routes", &routes}, {"seen", &seen}}, {{"route", &route}}}));
  struct Key {
    uint32_t prefixlen;
    uint8_t addr[4];
  };
  REQUIRE_OK(routes.Update(Key{8, {10, 0, 0, 0}}, uint32_t{8}));
  REQUIRE_OK(routes.Update(Key{16, {10, 1, 0, 0}}, uint32_t{16}));
  REQUIRE_OK(routes.Update(Key{24, {10, 1, 2, 0}}, uint32_t{24}));
  REQUIRE_OK(routes.Update(Key{32, {10, 1, 2, 3}}, uint32_t{32}));

  // The socket filter's test skb: IPv4 destination at 16 after the
  // Ethernet header the kernel pulls.
  auto to = [](uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    std::vector<uint8_t> pkt(14 + 20 + 8, 0);
    pkt[14 + 16] = a;
    pkt[14 + 17] = b;
    pkt[14 + 18] = c;
    pkt[14 + 19] = d;
    return pkt;
  };
  auto verdict = [&](std::vector<uint8_t> pkt) {
    RunOptions o;
    o.data = pkt;
    auto res = route.Run(o);
    REQUIRE_OK(res);
    return res->return_value;
  };
  CHECK(verdict(to(10, 1, 2, 3)) == 32);
  CHECK(verdict(to(10, 1, 2, 9)) == 24);
  CHECK(verdict(to(10, 1, 9, 9)) == 16);
  CHECK(verdict(to(10, 9, 9, 9)) == 8);
  CHECK(verdict(to(11, 0, 0, 1)) == 0);
  CHECK(verdict(to(10, 1, 2, 9)) == 24);
  // A route withdrawn from user space: the next shorter prefix answers.
  REQUIRE_OK(routes.Delete(Key{24, {10, 1, 2, 0}}));
  CHECK(verdict(to(10, 1, 2, 9)) == 16);

  // What the program inserted: one /32 per destination, with its count.
  auto keys = seen.Keys<Key>();
  REQUIRE_OK(keys);
  std::map<std::string, uint64_t> counts;
  for (const Key& k : *keys) {
    CHECK(k.prefixlen == 32);
    uint64_t n = 0;
    REQUIRE_OK(seen.Lookup(k, &n));
    counts[absl::StrCat(k.addr[0], ".", k.addr[1], ".", k.addr[2], ".", k.addr[3])] = n;
  }
  CHECK(counts == std::map<std::string, uint64_t>{
                      {"10.1.2.3", 1}, {"10.1.2.9", 3}, {"10.1.9.9", 1}, {"10.9.9.9", 1}, {"11.0.0.1", 1}});
  // A lookup from user space matches by prefix too.
  uint32_t v = 0;
  REQUIRE_OK(routes.Lookup(Key{32, {10, 200, 0, 1}}, &v));
  CHECK(v == 8);
}
