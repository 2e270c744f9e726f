// Collections loaded on several threads (CollectionOptions::load_threads):
// the same programs, counters and graph as a serial load, each program
// running as itself; a failing program's error is the serial load's, and a
// failed load leaves no fd behind.
#include <algorithm>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "sys/bpf.h"
#include "test_programs.h"
#include "test_support.h"
#include "tether/collection.h"
#include "tether/graph.h"
#include "tether/probe.h"

using namespace tether;
using testing::RunValue;

namespace {

constexpr uint32_t kPrograms = 12;  // p00..p11 in many_programs.bpf.c

CollectionSpec ManyPrograms(uint32_t fail_mask = 0) {
  auto spec = CollectionSpec::FromFile(testing::BpfObjectPath("many_programs"));
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  REQUIRE(spec->SetVariable("fail_mask", fail_mask).ok());
  return *std::move(spec);
}

CollectionOptions Threads(uint32_t n) {
  CollectionOptions o;
  o.load_threads = n;
  return o;
}

std::string Name(uint32_t k) { return absl::StrFormat("p%02u", k); }

// The error text without the kernel addresses its verifier log shows
// (each load's maps live elsewhere).
std::string WithoutAddresses(absl::string_view message) {
  return std::regex_replace(std::string(message), std::regex("0x[0-9a-f]{8,}"), "0x?");
}

uint64_t Hits(const Collection& c, uint32_t k) {
  uint64_t v = 0;
  Map hits = c.map("hits");
  REQUIRE(hits.Lookup(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&k), 4),
                      absl::MakeSpan(reinterpret_cast<uint8_t*>(&v), 8))
              .ok());
  return v;
}

// What a load made, in terms that do not depend on the order of the
// kernel's ids: names, the maps each program uses, the tail-call sites.
struct Shape {
  std::vector<std::string> programs, maps;
  std::vector<size_t> maps_used;
  std::vector<std::string> sites;
  bool operator==(const Shape&) const = default;
};
Shape ShapeOf(const Collection& c) {
  Shape s;
  for (const auto& [name, p] : c.programs()) {
    s.programs.push_back(name);
    s.maps_used.push_back(p.info().map_ids.size());
  }
  for (const auto& [name, m] : c.maps()) s.maps.push_back(name);
  auto sites = c.TailCallMisses();
  REQUIRE(sites.ok());
  for (const TailCallSite& t : *sites) {
    s.sites.push_back(absl::StrFormat("%s/%s@%u:%u[%s]#%u", t.program, t.function, t.insn, t.line,
                                      t.array, t.index));
  }
  return s;
}

}  // namespace

TEST_CASE("serial and threaded loads make the same programs, and each runs as itself",
          "[collection][parallel]") {
  CollectionSpec spec = ManyPrograms();
  absl::optional<Shape> serial_shape;
  for (uint32_t threads : {1u, 4u, 0u}) {
    INFO("load_threads " << threads);
    size_t fds = testing::CountOpenFds();
    {
      auto coll = Collection::Load(spec, Threads(threads));
      INFO(coll.status().ToString());
      REQUIRE(coll.ok());
      REQUIRE(coll->programs().size() == kPrograms);
      for (uint32_t k = 0; k < kPrograms; ++k) {
        Program p = coll->program(Name(k));
        REQUIRE(p);
        CHECK(p.info().name == Name(k));
        // Runs k + 1 times: the return value and the counter slot both
        // say which program ran.
        for (uint32_t run = 0; run <= k; ++run) CHECK(RunValue(p) == 1000 + k);
        CHECK(Hits(*coll, k) == k + 1);
      }
      // Each even program's miss counter counts its own misses: the slots
      // that the threads' re-linking gave match the site table.
      auto sites = coll->TailCallMisses();
      REQUIRE(sites.ok());
      REQUIRE(sites->size() == kPrograms / 2);
      for (const TailCallSite& t : *sites) {
        INFO(t.program);
        uint32_t k = static_cast<uint32_t>(std::stoul(t.program.substr(1)));
        CHECK(k % 2 == 0);
        CHECK(t.array == "empty_slots");
        CHECK(t.misses == k + 1);
      }
      // The graph knows every program and its use of `hits`.
      auto breaks = graph().WhatBreaks(coll->map("hits"));
      CHECK(breaks.size() >= 1);
      Shape shape = ShapeOf(*coll);
      if (!serial_shape) {
        serial_shape = shape;
      } else {
        CHECK(shape == *serial_shape);
      }
    }
    CHECK(testing::CountOpenFds() == fds);
  }
}

TEST_CASE("a failing program fails a threaded load with the serial load's error and no fd left",
          "[collection][parallel]") {
  // p05 and p09 are refused by the verifier; the serial load stops at
  // p05, so every threaded load must report p05 whatever ran first.
  CollectionSpec spec = ManyPrograms((1u << 5) | (1u << 9));
  size_t fds = testing::CountOpenFds();
  auto serial = Collection::Load(spec, Threads(1));
  REQUIRE_FALSE(serial.ok());
  std::string want = WithoutAddresses(serial.status().message());
  INFO(want);
  CHECK_THAT(want, Catch::Contains("program 'p05'"));
  CHECK_THAT(want, Catch::Contains("verifier log"));
  CHECK_THAT(want, !Catch::Contains("p09"));
  CHECK(testing::CountOpenFds() == fds);
  for (int round = 0; round < 8; ++round) {
    for (uint32_t threads : {2u, 4u, 8u}) {
      INFO("round " << round << ", load_threads " << threads);
      auto coll = Collection::Load(spec, Threads(threads));
      REQUIRE_FALSE(coll.ok());
      CHECK(coll.status().code() == serial.status().code());
      CHECK(WithoutAddresses(coll.status().message()) == want);
      CHECK(testing::CountOpenFds() == fds);
    }
  }
  // Only the last program fails: every other one loaded first and is closed.
  CollectionSpec last = ManyPrograms(1u << (kPrograms - 1));
  auto coll = Collection::Load(last, Threads(4));
  REQUIRE_FALSE(coll.ok());
  CHECK_THAT(std::string(coll.status().message()), Catch::Contains("program 'p11'"));
  CHECK(testing::CountOpenFds() == fds);
}

TEST_CASE("a refused BPF_PROG_LOAD on a threaded load names the program and leaves no fd",
          "[collection][parallel][faults]") {
  CollectionSpec spec = ManyPrograms();
  // The refusal's explanation reads the program-type probe: cached now,
  // so that the probe's own load is not the one the hook fails.
  (void)probe::HaveProgramType(BPF_PROG_TYPE_SOCKET_FILTER);
  size_t fds = testing::CountOpenFds();
  for (uint32_t threads : {1u, 4u}) {
    for (uint32_t n = 1; n <= kPrograms; ++n) {
      INFO("load_threads " << threads << ", refusing BPF_PROG_LOAD " << n);
      sys::testing::InjectProgLoadFault(n, EPERM);
      auto coll = Collection::Load(spec, Threads(threads));
      sys::testing::InjectProgLoadFault(0, 0);
      REQUIRE_FALSE(coll.ok());
      std::string msg(coll.status().message());
      INFO(msg);
      CHECK(coll.status().code() == absl::StatusCode::kPermissionDenied);
      CHECK_THAT(msg, Catch::Contains("EPERM"));
      if (threads == 1) {
        // In order: the nth load is the nth program by name.
        CHECK_THAT(msg, Catch::Contains(absl::StrFormat("program '%s'", Name(n - 1))));
      } else {
        // Workers race for the nth load; the one refused is named.
        bool named = false;
        for (uint32_t k = 0; k < kPrograms; ++k)
          named |= msg.find(absl::StrFormat("program '%s'", Name(k))) != std::string::npos;
        CHECK(named);
      }
      CHECK(testing::CountOpenFds() == fds);
    }
  }
}

TEST_CASE("load_threads past the number of programs, and on tiny collections, loads them all",
          "[collection][parallel]") {
  auto spec = CollectionSpec::FromFile(testing::BpfObjectPath("collection"));
  REQUIRE(spec.ok());
  testing::TempPinDir dir;
  for (uint32_t threads : {0u, 1u, 3u, 64u}) {
    INFO("load_threads " << threads);
    CollectionOptions o = Threads(threads);
    o.pin_dir = dir.path();
    auto coll = Collection::Load(*spec, o);
    INFO(coll.status().ToString());
    REQUIRE(coll.ok());
    CHECK(RunValue(coll->program("entry")) == 42);  // the tail-call chain
    REQUIRE(coll->map("shared_counter").Unpin().ok());
  }
}
