// Every map type the kernel has: create and one live operation; struct_ops maps.
#include <linux/btf.h>
#include <fcntl.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/mman.h>

#include <cstring>
#include <fstream>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "map_test_programs.h"
#include "sys/bpf.h"
#include "test_support.h"
#include "tether/bloom_filter.h"
#include "tether/btf.h"
#include "tether/graph.h"
#include "tether/map.h"
#include "tether/map_batch.h"
#include "tether/map_in_map.h"
#include "tether/mmap_array.h"
#include "tether/percpu.h"
#include "tether/perf_reader.h"
#include "tether/probe.h"
#include "tether/ringbuf.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tether/queue.h"
#include "tether/typed_map.h"
#include "map_test_support.h"

using namespace tether;
using namespace tether::testing;

namespace {

// A BTF blob with one type, [1] int (4 bytes), for the local-storage maps,
// which insist on BTF for their key and value.
sys::Fd LoadIntBtf() {
  struct {
    btf_header hdr;
    uint32_t type[4];
    char strings[5];
  } __attribute__((packed)) blob{};
  blob.hdr.magic = BTF_MAGIC;
  blob.hdr.version = BTF_VERSION;
  blob.hdr.hdr_len = sizeof(btf_header);
  blob.hdr.type_off = 0;
  blob.hdr.type_len = sizeof(blob.type);
  blob.hdr.str_off = sizeof(blob.type);
  blob.hdr.str_len = sizeof(blob.strings);
  blob.type[0] = 1;                       // name_off: "int"
  blob.type[1] = BTF_KIND_INT << 24;      // info
  blob.type[2] = 4;                       // size
  blob.type[3] = (BTF_INT_SIGNED << 24) | 32;
  memcpy(blob.strings, "\0int", 5);
  auto r = sys::BtfLoad(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&blob), sizeof(blob)));
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return std::move(r->fd);
}

struct TypeCase {
  uint32_t type;
  uint32_t key, value, max, flags;
  // The operation that shows the map works; gets the map.
  std::function<void(const Map&)> op;
  bool needs_btf = false;
  uint64_t map_extra = 0;
};

void ExpectEmptyNextKey(const Map& m) {
  std::vector<uint8_t> next(std::max<uint32_t>(m.key_size(), 1));
  auto more = m.NextKey(nullptr, next.data());
  INFO(more.status().ToString());
  REQUIRE(more.ok());
  CHECK_FALSE(*more);
}

void ExpectArrayNextKey(const Map& m) {
  uint32_t next = 99;
  auto more = m.NextKey(static_cast<const uint32_t*>(nullptr), &next);
  INFO(more.status().ToString());
  REQUIRE(more.ok());
  CHECK(*more);
  CHECK(next == 0);
}

// Local storage maps are keyed from user space by an fd of the owner: a
// socket, a file, a pidfd, a cgroup directory.
void ExpectFdKeyedRoundTrip(const Map& m, int owner_fd) {
  sys::Fd owner(owner_fd);
  REQUIRE(owner.valid());
  int32_t key = owner.get();
  REQUIRE_OK(m.Update(key, int32_t{1234}));
  int32_t v = 0;
  REQUIRE_OK(m.Lookup(key, &v));
  CHECK(v == 1234);
  REQUIRE_OK(m.Delete(key));
}

// Where cgroup v2 is mounted ("" if nowhere), from /proc/self/mountinfo.
std::string Cgroup2Mount() {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // "... mount_point options - fstype source ..."
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() > 4 && dash != f.end() && dash + 1 != f.end() && *(dash + 1) == "cgroup2") return f[4];
  }
  return "";
}

void ExpectRoundTrip(const Map& m) {
  std::vector<uint8_t> key(m.key_size(), 0), value(m.value_buffer_size(), 0x5a), back(m.value_buffer_size());
  key[0] = m.type() == BPF_MAP_TYPE_LPM_TRIE ? 8 : 1;  // LPM: the prefix length
  REQUIRE_OK(m.Update(key, value));
  REQUIRE_OK(m.Lookup(key, absl::MakeSpan(back)));
  CHECK(back == value);
}

}  // namespace

TEST_CASE("every map type the kernel has: create and one live operation", "[map][types]") {
  const unsigned lo = if_nametoindex("lo");
  Map inner_tmpl = MustCreate(BPF_MAP_TYPE_ARRAY, 4, 4, 1, 0, "tmpl");
  sys::Fd btf = LoadIntBtf();
  std::vector<TypeCase> cases = {
      {BPF_MAP_TYPE_HASH, 4, 8, 4, 0, ExpectRoundTrip},
      {BPF_MAP_TYPE_ARRAY, 4, 8, 4, 0, ExpectRoundTrip},
      {BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 4, 0, ExpectArrayNextKey},
      {BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 4, 0, ExpectArrayNextKey},
      {BPF_MAP_TYPE_PERCPU_HASH, 4, 8, 4, 0, ExpectRoundTrip},
      {BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 4, 0, ExpectRoundTrip},
      {BPF_MAP_TYPE_STACK_TRACE, 4, 8 * 16, 4, 0, ExpectEmptyNextKey},
      {BPF_MAP_TYPE_CGROUP_ARRAY, 4, 4, 4, 0, ExpectArrayNextKey},
      {BPF_MAP_TYPE_LRU_HASH, 4, 8, 4, 0, ExpectRoundTrip},
      {BPF_MAP_TYPE_LRU_PERCPU_HASH, 4, 8, 4, 0, ExpectRoundTrip},
      {BPF_MAP_TYPE_LPM_TRIE, 8, 8, 4, BPF_F_NO_PREALLOC, ExpectRoundTrip},
      {BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 4, 0,
       [&](const Map& m) {
         auto aom = MustOk(ArrayOfMaps::FromMap(m));
         REQUIRE_OK(aom.Set(1, inner_tmpl));
         CHECK(MustOk(aom.Get(1)) == absl::optional<uint32_t>(inner_tmpl.id()));
         REQUIRE_OK(aom.Delete(1));
       }},
      {BPF_MAP_TYPE_HASH_OF_MAPS, 4, 4, 4, 0,
       [&](const Map& m) {
         auto hom = MustOk(HashOfMaps::FromMap(m));
         REQUIRE_OK(hom.Set(uint32_t{9}, inner_tmpl));
         CHECK(MustOk(hom.Get(uint32_t{9})) == absl::optional<uint32_t>(inner_tmpl.id()));
         REQUIRE_OK(hom.Delete(uint32_t{9}));
       }},
      {BPF_MAP_TYPE_DEVMAP, 4, 4, 4, 0,
       [&](const Map& m) {
         REQUIRE_OK(m.Update(uint32_t{0}, uint32_t{lo}));
         uint32_t v = 0;
         REQUIRE_OK(m.Lookup(uint32_t{0}, &v));
         CHECK(v == lo);
       }},
      {BPF_MAP_TYPE_SOCKMAP, 4, 4, 4, 0, ExpectArrayNextKey},
      {BPF_MAP_TYPE_CPUMAP, 4, 4, 4, 0,
       [&](const Map& m) {
         REQUIRE_OK(m.Update(uint32_t{0}, uint32_t{192}));  // queue size
         uint32_t v = 0;
         REQUIRE_OK(m.Lookup(uint32_t{0}, &v));
         CHECK(v == 192);
       }},
      {BPF_MAP_TYPE_XSKMAP, 4, 4, 4, 0, ExpectArrayNextKey},
      {BPF_MAP_TYPE_SOCKHASH, 4, 4, 4, 0, ExpectEmptyNextKey},
      {BPF_MAP_TYPE_CGROUP_STORAGE, sizeof(bpf_cgroup_storage_key), 8, 0, 0, ExpectEmptyNextKey},
      {BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, 4, 4, 4, 0, ExpectArrayNextKey},
      {BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE, sizeof(bpf_cgroup_storage_key), 8, 0, 0, ExpectEmptyNextKey},
      {BPF_MAP_TYPE_QUEUE, 0, 4, 4, 0,
       [](const Map& m) {
         auto q = MustOk(Queue<uint32_t>::Bind(m));
         REQUIRE_OK(q.Push(5));
         uint32_t v = 0;
         REQUIRE_OK(q.Pop(&v));
         CHECK(v == 5);
       }},
      {BPF_MAP_TYPE_STACK, 0, 4, 4, 0,
       [](const Map& m) {
         auto s = MustOk(Queue<uint32_t>::Bind(m));
         REQUIRE_OK(s.Push(6));
         uint32_t v = 0;
         REQUIRE_OK(s.Peek(&v));
         CHECK(v == 6);
       }},
      {BPF_MAP_TYPE_SK_STORAGE, 4, 4, 0, BPF_F_NO_PREALLOC,
       [](const Map& m) { ExpectFdKeyedRoundTrip(m, socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)); },
       true},
      {BPF_MAP_TYPE_DEVMAP_HASH, 4, 4, 4, 0,
       [&](const Map& m) {
         REQUIRE_OK(m.Update(uint32_t{77}, uint32_t{lo}));
         uint32_t v = 0;
         REQUIRE_OK(m.Lookup(uint32_t{77}, &v));
         CHECK(v == lo);
       }},
      {BPF_MAP_TYPE_RINGBUF, 0, 0, 4096, 0,
       [](const Map& m) {
         RingBufferReader r = MustOk(RingBufferReader::Create());
         MustOk(r.Add(m, [](absl::Span<const uint8_t>) {}));
         CHECK(r.AvailableBytes(0) == 0);
       }},
      {BPF_MAP_TYPE_INODE_STORAGE, 4, 4, 0, BPF_F_NO_PREALLOC,
       [](const Map& m) { ExpectFdKeyedRoundTrip(m, open("/proc/self/exe", O_RDONLY | O_CLOEXEC)); },
       true},
      {BPF_MAP_TYPE_TASK_STORAGE, 4, 4, 0, BPF_F_NO_PREALLOC,
       [](const Map& m) {
         ExpectFdKeyedRoundTrip(m, static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0)));
       },
       true},
      {BPF_MAP_TYPE_BLOOM_FILTER, 0, 8, 16, 0,
       [](const Map& m) {
         auto bf = MustOk(BloomFilter<uint64_t>::Bind(m));
         REQUIRE_OK(bf.Add(3));
         CHECK(MustOk(bf.Test(3)));
       }},
      {BPF_MAP_TYPE_USER_RINGBUF, 0, 0, 4096, 0,
       [](const Map& m) {
         // The producer side is user space: its pages map writable.
         void* p = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, m.fd(), 0);
         REQUIRE(p != MAP_FAILED);
         munmap(p, 4096);
       }},
      {sys::uapi::kMapTypeCgrpStorage, 4, 4, 0, BPF_F_NO_PREALLOC,
       [](const Map& m) {
         std::string cg = Cgroup2Mount();
         if (cg.empty()) TETHER_SKIP_OR_FAIL("no cgroup2 mount to key cgrp_storage by");
         ExpectFdKeyedRoundTrip(m, open(cg.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
       },
       true},
      {sys::uapi::kMapTypeArena, 0, 0, 4, BPF_F_MMAPABLE,
       [](const Map& m) {
         // An arena is pages of memory shared with programs; map and touch one.
         long page = sysconf(_SC_PAGESIZE);
         void* p = mmap(nullptr, 4 * page, PROT_READ | PROT_WRITE, MAP_SHARED, m.fd(), 0);
         REQUIRE(p != MAP_FAILED);
         static_cast<volatile uint8_t*>(p)[0] = 1;
         CHECK(static_cast<volatile uint8_t*>(p)[0] == 1);
         munmap(p, 4 * page);
       }},
  };
  // STRUCT_OPS needs a kernel struct_ops type from vmlinux BTF: see the
  // test case below.
  for (const TypeCase& c : cases) {
    const char* name = MapTypeName(c.type);
    DYNAMIC_SECTION(name) {
      TETHER_REQUIRE_FEATURE(absl::StrCat("map_type:", name), probe::HaveMapType(c.type));
      MapOptions o;
      o.type = c.type;
      o.key_size = c.key;
      o.value_size = c.value;
      o.max_entries = c.max;
      o.flags = c.flags;
      o.map_extra = c.map_extra;
      o.name = std::string("ty_") + name;
      if (o.name.size() > 15) o.name.resize(15);
      if (c.type == BPF_MAP_TYPE_ARRAY_OF_MAPS || c.type == BPF_MAP_TYPE_HASH_OF_MAPS)
        o.inner_map = &inner_tmpl;
      if (c.needs_btf) {
        o.btf_fd = btf.get();
        o.btf_key_type_id = 1;
        o.btf_value_type_id = 1;
      }
      auto m = Map::Create(o);
      INFO(m.status().ToString());
      REQUIRE(m.ok());
      CHECK(m->type() == c.type);
      CHECK(m->id() > 0);
      c.op(*m);
    }
  }
}

TEST_CASE("a struct_ops map of a vmlinux struct_ops type: create and look up its state",
          "[map][types][struct_ops]") {
  auto vmlinux = Btf::LoadKernel();
  REQUIRE(vmlinux.ok());
  // The kernel's wrapper of tcp_congestion_ops: refcount and state first,
  // then the ops themselves (CONFIG_BPF_JIT and TCP are on every CI kernel).
  auto value_type = vmlinux->FindByNameKind("bpf_struct_ops_tcp_congestion_ops", BtfKind::kStruct);
  REQUIRE(value_type.has_value());
  auto size = vmlinux->SizeOf(*value_type);
  REQUIRE(size.ok());
  MapOptions o;
  o.type = BPF_MAP_TYPE_STRUCT_OPS;
  o.key_size = 4;
  o.value_size = static_cast<uint32_t>(*size);
  o.max_entries = 1;
  o.name = "ty_struct_ops";
  o.btf_vmlinux_value_type_id = *value_type;
  // The kernel wants the loading object's own BTF too, even though the
  // value's type is vmlinux's: without btf_fd it answers EINVAL.
  sys::Fd object_btf = LoadIntBtf();
  o.btf_fd = object_btf.get();
  auto m = Map::Create(o);
  INFO(m.status().ToString());
  REQUIRE(m.ok());
  CHECK(m->type() == BPF_MAP_TYPE_STRUCT_OPS);
  CHECK(m->value_size() == *size);
  // Nothing is registered yet: the state word (after the refcount) reads
  // BPF_STRUCT_OPS_STATE_INIT, 0.
  std::vector<uint8_t> value(*size, 0xff);
  REQUIRE_OK(m->Lookup(std::vector<uint8_t>(4, 0), absl::MakeSpan(value)));
  uint32_t state = 0xffffffff;
  memcpy(&state, value.data() + 4, sizeof(state));
  CHECK(state == 0);
  // Without the object's BTF, tether says what is missing before the
  // kernel's bare EINVAL.
  MapOptions no_btf = o;
  no_btf.btf_fd = -1;
  auto refused = Map::Create(no_btf);
  CHECK_FALSE(refused.ok());
  CHECK_THAT(std::string(refused.status().message()), Catch::Contains("struct_ops needs btf_fd"));
  // The kernel accepts only the exact size of that type.
  MapOptions wrong = o;
  wrong.value_size = o.value_size + 8;
  wrong.name = "ty_struct_bad";
  auto bad = Map::Create(wrong);
  CHECK_FALSE(bad.ok());
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("ty_struct_bad") && Catch::Contains("BPF_MAP_CREATE"));
}
