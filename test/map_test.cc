// Map handles on the live kernel: each common type, typed and byte forms,
// and clear errors for bad input.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <numeric>
#include <set>

#include "map_test_support.h"
#include "test_support.h"
#include "tether/map.h"

using namespace tether;

using tether::testing::MustCreate;

TEST_CASE("hash map: update, lookup, exist flags, delete, iterate", "[map]") {
  Map m = MustCreate(BPF_MAP_TYPE_HASH, 8, 8, 16, 0, "hash_ops");
  CHECK(m.name() == "hash_ops");
  CHECK(m.type() == BPF_MAP_TYPE_HASH);
  CHECK(m.key_size() == 8);
  CHECK(m.max_entries() == 16);
  CHECK(m.id() > 0);

  uint64_t v = 0;
  CHECK(m.Lookup(uint64_t{1}, &v).code() == absl::StatusCode::kNotFound);
  REQUIRE(m.Update(uint64_t{1}, uint64_t{100}).ok());
  REQUIRE(m.Lookup(uint64_t{1}, &v).ok());
  CHECK(v == 100);

  // NOEXIST on an existing key, EXIST on a missing one.
  auto st = m.Update(uint64_t{1}, uint64_t{5}, UpdateFlag::kNoExist);
  CHECK(st.code() == absl::StatusCode::kAlreadyExists);
  CHECK_THAT(std::string(st.message()), Catch::Contains("hash_ops") && Catch::Contains("EEXIST"));
  CHECK(m.Update(uint64_t{2}, uint64_t{5}, UpdateFlag::kExist).code() == absl::StatusCode::kNotFound);
  REQUIRE(m.Update(uint64_t{1}, uint64_t{7}, UpdateFlag::kExist).ok());
  REQUIRE(m.Lookup(uint64_t{1}, &v).ok());
  CHECK(v == 7);

  for (uint64_t k = 10; k < 15; ++k) REQUIRE(m.Update(k, k * 2).ok());
  auto keys = m.Keys<uint64_t>();
  REQUIRE(keys.ok());
  CHECK(std::set<uint64_t>(keys->begin(), keys->end()) == std::set<uint64_t>{1, 10, 11, 12, 13, 14});

  uint64_t out = 0;
  REQUIRE(m.LookupAndDelete(uint64_t{10}, &out).ok());
  CHECK(out == 20);
  REQUIRE(m.Delete(uint64_t{11}).ok());
  CHECK(m.Delete(uint64_t{11}).code() == absl::StatusCode::kNotFound);
  CHECK(m.Keys<uint64_t>()->size() == 4);
}

TEST_CASE("array map: byte spans and typed access agree", "[map]") {
  Map m = MustCreate(BPF_MAP_TYPE_ARRAY, 4, 12, 3, 0, "arr");
  uint32_t key = 2;
  uint8_t value[12];
  std::iota(value, value + 12, 1);
  REQUIRE(m.Update(absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&key), 4),
                   absl::MakeConstSpan(value, 12)).ok());
  struct V { uint8_t b[12]; } typed{};
  REQUIRE(m.Lookup(key, &typed).ok());
  CHECK(memcmp(typed.b, value, 12) == 0);
  // Arrays have every key; delete is refused.
  CHECK_FALSE(m.Delete(key).ok());
  auto keys = m.Keys<uint32_t>();
  REQUIRE(keys.ok());
  CHECK(*keys == std::vector<uint32_t>{0, 1, 2});
}

TEST_CASE("per-CPU array: one rounded slot per possible CPU", "[map]") {
  Map m = MustCreate(BPF_MAP_TYPE_PERCPU_ARRAY, 4, 4, 1, 0, "pcpu");
  uint32_t cpus = PossibleCpus();
  REQUIRE(cpus >= 1);
  CHECK(m.value_buffer_size() == 8 * cpus);
  std::vector<uint8_t> buf(m.value_buffer_size(), 0);
  for (uint32_t c = 0; c < cpus; ++c) buf[c * 8] = static_cast<uint8_t>(c + 1);
  uint32_t key = 0;
  REQUIRE(m.Update(absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&key), 4), buf).ok());
  std::vector<uint8_t> back(m.value_buffer_size(), 0xff);
  REQUIRE(m.Lookup(absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&key), 4), absl::MakeSpan(back)).ok());
  for (uint32_t c = 0; c < cpus; ++c) CHECK(back[c * 8] == c + 1);
  // A buffer for one CPU is the classic mistake; the error explains it.
  uint32_t one = 0;
  auto st = m.Lookup(key, &one);
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(st.message()), Catch::Contains("per-CPU") && Catch::Contains("possible CPUs"));
}

TEST_CASE("LRU hash evicts, queue and stack pop in order", "[map]") {
  Map lru = MustCreate(BPF_MAP_TYPE_LRU_HASH, 4, 4, 8, BPF_F_NO_COMMON_LRU, "lru");
  for (uint32_t k = 0; k < 64; ++k) REQUIRE(lru.Update(k, k).ok());
  CHECK(lru.Keys<uint32_t>()->size() <= 8);

  Map q = MustCreate(BPF_MAP_TYPE_QUEUE, 0, 4, 4, 0, "q");
  for (uint32_t v : {1u, 2u, 3u}) {
    REQUIRE(q.Update(absl::Span<const uint8_t>(), absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&v), 4)).ok());
  }
  uint32_t out = 0;
  REQUIRE(q.LookupAndDelete(absl::Span<const uint8_t>(), absl::MakeSpan(reinterpret_cast<uint8_t*>(&out), 4)).ok());
  CHECK(out == 1);

  Map s = MustCreate(BPF_MAP_TYPE_STACK, 0, 4, 4, 0, "s");
  for (uint32_t v : {1u, 2u, 3u}) {
    REQUIRE(s.Update(absl::Span<const uint8_t>(), absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&v), 4)).ok());
  }
  REQUIRE(s.LookupAndDelete(absl::Span<const uint8_t>(), absl::MakeSpan(reinterpret_cast<uint8_t*>(&out), 4)).ok());
  CHECK(out == 3);
}

TEST_CASE("ringbuf, LPM trie and freeze", "[map]") {
  Map rb = MustCreate(BPF_MAP_TYPE_RINGBUF, 0, 0, 4096 * 4, 0, "rb");
  CHECK(rb.type() == BPF_MAP_TYPE_RINGBUF);

  struct LpmKey { uint32_t prefixlen; uint8_t addr[4]; };
  Map trie = MustCreate(BPF_MAP_TYPE_LPM_TRIE, sizeof(LpmKey), 4, 16, BPF_F_NO_PREALLOC, "trie");
  LpmKey net{16, {10, 1, 0, 0}};
  REQUIRE(trie.Update(net, uint32_t{7}).ok());
  LpmKey host{32, {10, 1, 2, 3}};
  uint32_t v = 0;
  REQUIRE(trie.Lookup(host, &v).ok());
  CHECK(v == 7);

  Map frozen = MustCreate(BPF_MAP_TYPE_ARRAY, 4, 4, 1, 0, "frozen");
  REQUIRE(frozen.Update(uint32_t{0}, uint32_t{9}).ok());
  REQUIRE(frozen.Freeze().ok());
  auto st = frozen.Update(uint32_t{0}, uint32_t{10});
  CHECK_FALSE(st.ok());
  CHECK_THAT(std::string(st.message()), Catch::Contains("frozen") && Catch::Contains("EPERM"));
}

TEST_CASE("bad sizes, fds, flags and names give clear errors", "[map][errors]") {
  Map m = MustCreate(BPF_MAP_TYPE_HASH, 4, 8, 4, 0, "sizes");
  uint32_t small = 0;
  auto st = m.Lookup(uint32_t{1}, &small);
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(st.message()),
             Catch::Contains("sizes") && Catch::Contains("value_size 8") && Catch::Contains("4 bytes"));
  CHECK(m.Update(uint64_t{1}, uint64_t{1}).code() == absl::StatusCode::kInvalidArgument);

  // Unknown update flag bits are the kernel's EINVAL, reported as such.
  auto bad_flag = m.Update(uint32_t{1}, uint64_t{1}, static_cast<UpdateFlag>(1u << 10));
  CHECK(bad_flag.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(bad_flag.message()), Catch::Contains("EINVAL"));

  MapOptions o;
  o.type = BPF_MAP_TYPE_PROG_ARRAY;
  o.key_size = 4;
  o.value_size = 8;
  o.max_entries = 4;
  o.name = "jmp";
  auto pa = Map::Create(o);
  REQUIRE_FALSE(pa.ok());
  CHECK_THAT(std::string(pa.status().message()), Catch::Contains("prog_array needs value_size 4"));

  o.type = BPF_MAP_TYPE_HASH;
  o.key_size = 0;
  o.value_size = 4;
  auto zero_key = Map::Create(o);
  REQUIRE_FALSE(zero_key.ok());
  CHECK_THAT(std::string(zero_key.status().message()), Catch::Contains("key_size > 0"));

  o.key_size = 4;
  o.name = "bad!name";
  CHECK_THAT(std::string(Map::Create(o).status().message()), Catch::Contains("'!'"));

  o.name = "flags";
  o.flags = 1u << 30;
  auto bad_create = Map::Create(o);
  REQUIRE_FALSE(bad_create.ok());
  CHECK_THAT(std::string(bad_create.status().message()),
             Catch::Contains("BPF_MAP_CREATE") && Catch::Contains("EINVAL") && Catch::Contains("flags 0x40000000"));

  CHECK_FALSE(Map::FromFd(-1).ok());
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  auto not_bpf = Map::FromFd(devnull);  // takes ownership, closes it
  REQUIRE_FALSE(not_bpf.ok());
  CHECK_THAT(std::string(not_bpf.status().message()), Catch::Contains("BPF_OBJ_GET_INFO_BY_FD"));
  CHECK(fcntl(devnull, F_GETFD) == -1);  // closed, not leaked

  auto missing = Map::FromId(0xfffffff0u);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);

  Map empty;
  CHECK(empty.Lookup(uint32_t{1}, &small).code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("adoption by id and Clone share the kernel object", "[map]") {
  Map m = MustCreate(BPF_MAP_TYPE_ARRAY, 4, 4, 2, 0, "shared");
  REQUIRE(m.Update(uint32_t{1}, uint32_t{77}).ok());
  auto by_id = Map::FromId(m.id());
  REQUIRE(by_id.ok());
  CHECK(by_id->fd() != m.fd());
  CHECK(*by_id != m);  // a different object with its own fd
  uint32_t v = 0;
  REQUIRE(by_id->Lookup(uint32_t{1}, &v).ok());
  CHECK(v == 77);
  auto clone = m.Clone();
  REQUIRE(clone.ok());
  CHECK(clone->id() == m.id());
  CHECK(clone->name() == "shared");
}
