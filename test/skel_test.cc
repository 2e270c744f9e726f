// Skeletons made by tether-skel at build time (test/meson.build) from
// test/bpf/collection.bpf.c and test/bpf/skel_types.bpf.c: they load, run,
// read and write globals through their typed structs, and load partially
// with LoadAndAssign's refusal intact.
#include <sys/syscall.h>
#include <unistd.h>

#include <concepts>
#include <cstring>
#include <type_traits>

#include "collection.skel.hpp"
#include "skel_types.skel.hpp"
#include "test_programs.h"
#include "test_support.h"
#include "tether/graph.h"

using namespace tether;
using testing::RunValue;

namespace {

template <typename T>
T Must(absl::StatusOr<T> v) {
  INFO(v.status().ToString());
  REQUIRE(v.ok());
  return *std::move(v);
}

// The typed view the skeleton made for shared_counter (__u32 -> __u64).
using SharedCounter = std::remove_cvref_t<decltype(*std::declval<collection::Skel&>().typed_shared_counter())>;
static_assert(std::is_same_v<SharedCounter, TypedMap<uint32_t, uint64_t>>);
template <typename M, typename A>
concept CanLookupWith = requires(const M& m, const A& a, uint64_t* v) { m.Lookup(a, v); };
static_assert(CanLookupWith<SharedCounter, int>);          // a literal converts to __u32
static_assert(!CanLookupWith<SharedCounter, uint64_t>);    // a wider key does not compile

CollectionOptions PinIn(const testing::TempPinDir& dir) {
  CollectionOptions o;
  o.pin_dir = dir.path();
  return o;
}

}  // namespace

TEST_CASE("a skeleton loads its embedded object and runs the chain", "[skel]") {
  testing::TempPinDir dir;
  collection::Skel skel = Must(collection::Skel::Open());
  CHECK_FALSE(skel.loaded());
  CHECK_FALSE(skel.progs.entry);
  CHECK(absl::IsFailedPrecondition(skel.typed_shared_counter().status()));
  REQUIRE(skel.Load(PinIn(dir)).ok());
  CHECK(skel.loaded());
  CHECK(skel.created_pins() == std::vector<std::string>{dir.Sub("shared_counter")});

  CHECK(RunValue(skel.progs.entry) == 42);
  CHECK(RunValue(skel.progs.stage_two) == 42);
  // .bss is mapped: the program's counter is read in place, and through
  // the map it is the same.
  REQUIRE(skel.bss() != nullptr);
  CHECK(skel.bss()->runs == 1);
  RunValue(skel.progs.entry);
  CHECK(skel.bss()->runs == 2);
  CHECK(Must(skel.ReadBss()).runs == 2);
  uint64_t shared = 0;
  REQUIRE(skel.maps.shared_counter.Lookup(uint32_t{0}, &shared).ok());
  CHECK(shared == 2);
  // The typed view reads the same value with a bare literal key.
  SharedCounter counter = Must(skel.typed_shared_counter());
  CHECK(Must(counter.Get(0)) == 2);

  // .data is written in place and the next run sees it.
  REQUIRE(skel.data() != nullptr);
  CHECK(skel.data()->seed == 5);
  skel.data()->seed = 8;
  CHECK(RunValue(skel.progs.entry) == 45);
  REQUIRE(skel.WriteData({5}).ok());
  CHECK(RunValue(skel.progs.entry) == 42);

  // .rodata is frozen: no pointer to write through, and the kernel refuses.
  CHECK(skel.mutable_rodata() == nullptr);
  CHECK(skel.rodata().stage_two_result == 42);
  CHECK(Must(skel.ReadRodata()).stage_two_result == 42);

  // The graph sees the static entries the skeleton's handle keeps alive.
  auto breaks = graph().WhatBreaks(skel.maps.jmp_table);
  REQUIRE_FALSE(breaks.empty());
  CHECK_THAT(breaks[0], Catch::Contains("jmp_table[0..1] will miss"));

  auto again = skel.Load(PinIn(dir));
  CHECK(again.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(again.message()), Catch::Contains("already loaded"));
  // Socket filters need a socket: Attach() has nothing to do on its own.
  CHECK(skel.Attach().ok());
  REQUIRE(skel.maps.shared_counter.Unpin().ok());
}

TEST_CASE("a skeleton's rodata constant is rewritten before load", "[skel]") {
  testing::TempPinDir dir;
  collection::Skel skel = Must(collection::Skel::Open());
  REQUIRE(skel.mutable_rodata() != nullptr);
  CHECK(skel.rodata().stage_two_result == 42);  // the object's initial value
  skel.mutable_rodata()->stage_two_result = 7;
  // The write went into the spec, the same bytes SetVariable changes.
  uint32_t in_spec = 0;
  memcpy(&in_spec, Must(skel.spec().GetVariable("stage_two_result")).data(), 4);
  CHECK(in_spec == 7);
  REQUIRE(skel.Load(PinIn(dir)).ok());
  CHECK(RunValue(skel.progs.entry) == 7);
  CHECK(skel.rodata().stage_two_result == 7);  // now the frozen map, mapped
  CHECK(skel.bss()->runs == 1);
  REQUIRE(skel.maps.shared_counter.Unpin().ok());
}

TEST_CASE("a skeleton's partial load refuses to orphan the array, and accepts it bound",
          "[skel][assign]") {
  testing::TempPinDir dir;
  collection::Skel skel = Must(collection::Skel::Open());
  size_t fds = testing::CountOpenFds();
  using P = collection::Skel::ProgramId;
  using M = collection::Skel::MapId;
  auto refused = skel.LoadSelected({{P::entry}, {}}, PinIn(dir));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(refused.message()),
             Catch::Contains("jmp_table") && Catch::Contains("[0]=stage_one"));
  CHECK_FALSE(skel.loaded());
  CHECK_FALSE(skel.progs.entry);
  CHECK_FALSE(skel.maps.bss);
  CHECK(testing::CountOpenFds() == fds);

  REQUIRE(skel.LoadSelected({{P::entry}, {M::jmp_table}}, PinIn(dir)).ok());
  CHECK(skel.loaded());
  CHECK(RunValue(skel.progs.entry) == 42);
  // stage_one and stage_two were loaded for the array, without handles here.
  CHECK_FALSE(skel.progs.stage_one);
  CHECK_FALSE(skel.progs.stage_two);
  REQUIRE(skel.maps.jmp_table);
  // Global data maps come along, so the typed accessors work.
  REQUIRE(skel.bss() != nullptr);
  CHECK(skel.bss()->runs == 1);
  REQUIRE(Map::LoadPinned(dir.Sub("shared_counter"))->Unpin().ok());
}

TEST_CASE("a skeleton opened from a path checks the object's shape", "[skel]") {
  auto same = collection::Skel::Open(testing::BpfObjectPath("collection"));
  INFO(same.status().ToString());
  CHECK(same.ok());
  auto other = collection::Skel::Open(testing::BpfObjectPath("skel_types"));
  REQUIRE_FALSE(other.ok());
  CHECK(other.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(other.status().message()),
             Catch::Contains("skel_types") && Catch::Contains("jmp_table") &&
                 Catch::Contains("regenerate"));
  auto missing = collection::Skel::Open("/nonexistent/x.bpf.o");
  CHECK_FALSE(missing.ok());
}

TEST_CASE("skeleton types from BTF match the object's globals", "[skel][btf]") {
  skel_types::Skel skel = Must(skel_types::Skel::Open());
  // Values come from the object's initialisers, read through the structs.
  const skel_types::config& cfg = skel.rodata().cfg;
  CHECK(cfg.mode == 1);
  CHECK(cfg.limit == 1000);
  CHECK(cfg.corners[0].x == 1);
  CHECK(cfg.corners[1].y == 4);
  CHECK(std::string(cfg.label.data()) == "skel");
  CHECK(cfg.anon0.word == 0x01020304);
  CHECK(cfg.color == skel_types::color::BLACK);
  CHECK(cfg.enabled);
  CHECK(skel.data()->origin.x == 10);
  CHECK(skel.data()->pair.hi == 9);
  // Bitfields stay bytes: a = 5 in bits 0..2, b = 17 in bits 3..7.
  CHECK(int(skel.data()->fl.bytes[0]) == (5 | (17 << 3)));
  static_assert(sizeof(skel_types::Bss) == 38 || sizeof(skel_types::Bss) == 46);

  skel.mutable_rodata()->cfg.limit = 5;
  skel.mutable_rodata()->bonus = 2;
  REQUIRE(skel.Load().ok());
  // limit + mode + bonus + (color == BLACK)
  CHECK(RunValue(skel.progs.probe) == 5 + 1 + 2 + 1);
  skel_types::Bss* bss = skel.bss();
  REQUIRE(bss != nullptr);
  CHECK(bss->hits[1] == 1);
  CHECK(bss->last_x == 3 + 10);
  CHECK(bss->small == 7 + 9);
  skel.data()->pair.lo = 100;
  RunValue(skel.progs.probe);
  CHECK(bss->small == 100 + 9);
  CHECK(bss->hits[1] == 2);
}

TEST_CASE("a skeleton attaches what its sections name", "[skel][attach]") {
  skel_types::Skel skel = Must(skel_types::Skel::Open());
  absl::StatusCode early = skel.Attach().code();
  CHECK((early == absl::StatusCode::kFailedPrecondition || early == absl::StatusCode::kUnimplemented));
  REQUIRE(skel.Load().ok());
  absl::Status st = skel.Attach();
#ifdef TETHER_SKEL_HAVE_ATTACH
  INFO(st.ToString());
  REQUIRE(st.ok());
  REQUIRE(skel.links.on_getpid);
  uint64_t before = skel.bss()->hits[0];
  syscall(SYS_getpid);
  CHECK(skel.bss()->hits[0] > before);
#else
  // This tether has no attach API: the skeleton says so and names what
  // the caller must attach by hand.
  CHECK(st.code() == absl::StatusCode::kUnimplemented);
  CHECK_THAT(std::string(st.message()), Catch::Contains("on_getpid") && Catch::Contains("attach.h"));
#endif
}
