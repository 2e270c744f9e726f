// cgroup_storage and percpu_cgroup_storage with real traffic: a
// cgroup_skb egress program (test/bpf/cgroup_storage.bpf.c) attached to a
// throwaway cgroup counts the datagrams that a child in that cgroup sends
// over loopback, and the test reads the counts back by the storage key
// {cgroup id, attach type}. BPF_PROG_TEST_RUN would not do: it gives the
// program fresh storage of its own, not the map's.
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "link_fixtures.h"
#include "test_support.h"
#include "tether/attach.h"
#include "tether/collection.h"
#include "tether/percpu.h"
#include "tether/typed_map.h"

using namespace tether;
using namespace tether::testing;

namespace {

struct Counts {
  uint64_t packets;
  uint64_t bytes;
};

// A child in the cgroup sends `count` datagrams to 127.0.0.1:port.
void SendFromCgroup(const TempCgroup& cg, uint16_t port, int count) {
  int rc = cg.RunInChild([&] {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return 1;
    for (int i = 0; i < count; ++i) SendLoopback(s, port);
    close(s);
    return 0;
  });
  REQUIRE(rc == 0);
}

}  // namespace

TEST_CASE("cgroup storage: an egress program counts a cgroup's packets in its storage",
          "[map][cgroup_storage]") {
  TempCgroup cg;
  if (!cg.ok()) TETHER_SKIP_OR_FAIL(cg.why());
  auto spec = CollectionSpec::FromFile(BpfObjectPath("cgroup_storage"));
  REQUIRE_OK(spec);
  Map shared, per_cpu;
  Program count;
  REQUIRE_OK(LoadAndAssign(*spec, {{{"shared", &shared}, {"per_cpu", &per_cpu}}, {{"count_egress", &count}}}));

  // The key: the cgroup's id (its inode on cgroup2) and the attach type.
  struct stat st;
  REQUIRE(stat(cg.path().c_str(), &st) == 0);
  bpf_cgroup_storage_key key{};
  key.cgroup_inode_id = st.st_ino;
  key.attach_type = BPF_CGROUP_INET_EGRESS;
  Counts c{};
  CHECK(shared.Lookup(key, &c).code() == absl::StatusCode::kNotFound);

  {
    // Attaching makes the storage, zeroed.
    auto link = AttachCgroup(count, cg.path(), BPF_CGROUP_INET_EGRESS);
    REQUIRE_OK(link);
    REQUIRE_OK(shared.Lookup(key, &c));
    CHECK(c.packets == 0);
    auto keys = shared.Keys<bpf_cgroup_storage_key>();
    REQUIRE_OK(keys);
    REQUIRE(keys->size() == 1);
    CHECK((*keys)[0].cgroup_inode_id == key.cgroup_inode_id);
    CHECK((*keys)[0].attach_type == key.attach_type);

    uint16_t port = 0;
    int rx = LoopbackUdpSocket(&port);
    SendFromCgroup(cg, port, 7);
    int received = 0;
    for (int i = 0; i < 7; ++i) received += ReceiveOne(rx);
    CHECK(received == 7);
    REQUIRE_OK(shared.Lookup(key, &c));
    CHECK(c.packets == 7);
    // skb->len at egress covers the IPv4 and UDP headers and the 7-byte
    // payload (SendLoopback's "tether" and its NUL).
    CHECK(c.bytes == 7 * (20 + 8 + 7));

    auto pc = PerCpuMap<bpf_cgroup_storage_key, uint64_t>::Bind(per_cpu);
    REQUIRE_OK(pc);
    PerCpuValues<uint64_t> vals = pc->MakeValues();
    REQUIRE_OK(pc->Lookup(key, &vals));
    CHECK(vals.Sum() == 7);

    // Traffic from outside the cgroup is not counted.
    int outside = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    SendLoopback(outside, port);
    close(outside);
    CHECK(ReceiveOne(rx));
    REQUIRE_OK(shared.Lookup(key, &c));
    CHECK(c.packets == 7);

    // User space may set the storage; the program goes on from there.
    REQUIRE_OK(shared.Update(key, Counts{100, 0}));
    for (uint32_t cpu = 0; cpu < vals.cpus(); ++cpu) vals.Set(cpu, 1000);
    REQUIRE_OK(pc->Update(key, vals));
    SendFromCgroup(cg, port, 2);
    CHECK(ReceiveOne(rx));
    CHECK(ReceiveOne(rx));
    REQUIRE_OK(shared.Lookup(key, &c));
    CHECK(c.packets == 102);
    CHECK(c.bytes == 2 * 35);
    REQUIRE_OK(pc->Lookup(key, &vals));
    CHECK(vals.Sum() == 1000ull * vals.cpus() + 2);
    close(rx);
  }
  // Since 5.9 the storage outlives the attachment: it goes with the cgroup
  // or the map, and the next program attached there carries on with it.
  REQUIRE_OK(shared.Lookup(key, &c));
  CHECK(c.packets == 102);
  auto again = AttachCgroup(count, cg.path(), BPF_CGROUP_INET_EGRESS);
  REQUIRE_OK(again);
  uint16_t port = 0;
  int rx = LoopbackUdpSocket(&port);
  SendFromCgroup(cg, port, 1);
  CHECK(ReceiveOne(rx));
  close(rx);
  REQUIRE_OK(shared.Lookup(key, &c));
  CHECK(c.packets == 103);
}
