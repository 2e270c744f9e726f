// Objects as older toolchains made them: program sections without a
// function symbol, and legacy maps each in a "maps/<name>" section
// (test/bpf/old_toolchain.bpf.c, stripped by the build).
#include <string>

#include "cli_support.h"
#include "test_programs.h"
#include "test_support.h"
#include "tether/collection.h"
#include "tether/collection_spec.h"
#include "tether/map_in_map.h"

using namespace tether;

namespace {

CollectionSpec OldSpec() {
  auto spec = CollectionSpec::FromFile(testing::BpfObjectPath("old_toolchain"));
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  return *std::move(spec);
}

}  // namespace

TEST_CASE("a program section without a function symbol is one program named after it",
          "[elf][old_toolchain]") {
  CollectionSpec spec = OldSpec();
  CHECK_FALSE(spec.btf);  // built with -g0
  REQUIRE(spec.programs.size() == 2);
  REQUIRE(spec.programs.count("socket1") == 1);
  REQUIRE(spec.programs.count("xdp_inner") == 1);
  const ProgramSpec& sock = spec.programs.at("socket1");
  CHECK(sock.section == "socket1");
  CHECK(sock.type == BPF_PROG_TYPE_SOCKET_FILTER);
  CHECK(sock.code.insns.size() == 0x60 / 8);  // the whole section
  CHECK(spec.programs.at("xdp_inner").type == BPF_PROG_TYPE_XDP);
}

TEST_CASE("maps/<name> sections are legacy map definitions", "[elf][old_toolchain]") {
  CollectionSpec spec = OldSpec();
  REQUIRE(spec.maps.size() == 4);
  const MapSpec& counters = spec.maps.at("counters");
  CHECK(counters.section == "maps/counters");
  CHECK(counters.type == BPF_MAP_TYPE_ARRAY);
  CHECK(counters.value_size == 8);
  CHECK(counters.max_entries == 4);
  // The stripped symbol: the section names the map.
  REQUIRE(spec.maps.count("spare_map") == 1);
  CHECK(spec.maps.at("spare_map").type == BPF_MAP_TYPE_HASH);
  CHECK(spec.maps.at("spare_map").max_entries == 8);
  // inner_map_idx 1 counts definitions across the maps/ sections, in order.
  const MapSpec& outer = spec.maps.at("outer");
  REQUIRE(outer.inner);
  CHECK(outer.inner->type == BPF_MAP_TYPE_ARRAY);
  CHECK(outer.inner->max_entries == 1);
  CHECK(outer.inner->value_size == 8);
}

TEST_CASE("an old-toolchain object loads and its programs run", "[elf][old_toolchain][collection]") {
  auto coll = Collection::Load(OldSpec());
  INFO(coll.status().ToString());
  REQUIRE(coll.ok());
  Program sock = coll->program("socket1");
  REQUIRE(sock);
  CHECK(testing::RunValue(sock) == 7);
  CHECK(testing::RunValue(sock) == 7);
  uint32_t key = 0;
  uint64_t count = 0;
  REQUIRE(coll->map("counters").Lookup(key, &count).ok());
  CHECK(count == 2);
  // The map-in-map takes an inner map made like its template.
  auto outer = ArrayOfMaps::FromMap(coll->map("outer"));
  REQUIRE(outer.ok());
  MapOptions o;
  o.type = BPF_MAP_TYPE_ARRAY;
  o.key_size = 4;
  o.value_size = 8;
  o.max_entries = 1;
  auto inner = Map::Create(o);
  REQUIRE(inner.ok());
  uint64_t five = 5;
  REQUIRE(inner->Update(key, five).ok());
  Program xdp = coll->program("xdp_inner");
  CHECK(testing::RunValue(xdp) == 1);  // outer[0] is empty
  REQUIRE(outer->Set(0, *inner).ok());
  CHECK(testing::RunValue(xdp) == 2);
}

TEST_CASE("tether inspect names old-toolchain programs after their sections", "[cli][old_toolchain]") {
  testing::CliResult r = testing::RunCli("inspect " + testing::BpfObjectPath("old_toolchain"));
  const std::string& out = r.out;
  INFO(out << r.err);
  CHECK(r.exit_code == 0);
  CHECK_THAT(out, Catch::Contains("  socket1 ") && Catch::Contains("section socket1") &&
                      Catch::Contains("  xdp_inner ") && Catch::Contains("maps: counters") &&
                      Catch::Contains("spare_map"));
}
