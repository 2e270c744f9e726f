// The bad-input catalogue, for what reaches the kernel: objects that parse
// but must not load, and pins that must not be used. Each row gets one
// precise error and leaves no fd and no pin behind. Malformed ELF and BTF
// rows are in elf_reader_test.cc ("bad inputs give one precise error
// each") and btf_test.cc ("BTF errors are precise"); docs/reliability.md
// lists the whole catalogue.
#include <fcntl.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "test_support.h"
#include "tether/collection.h"
#include "tether/map.h"
#include "tether/pin.h"

using namespace tether;

namespace {

absl::Status LoadObject(const std::string& name, const std::string& pin_dir) {
  auto spec = CollectionSpec::FromFile(testing::BpfObjectPath(name));
  if (!spec.ok()) return spec.status();
  CollectionOptions o;
  o.pin_dir = pin_dir;
  return Collection::Load(*spec, o).status();
}

struct Row {
  std::string what;
  std::function<absl::Status(const testing::TempPinDir&)> run;
  std::vector<std::string> message;  // every piece must be in the error
};

}  // namespace

TEST_CASE("the bad input catalogue: one precise error each, nothing left behind", "[bad]") {
  testing::TempPinDir dir;
  std::string not_bpffs = "/tmp/tether-bad-input-" + std::to_string(getpid());
  const std::vector<Row> rows = {
      {"a hash map with key_size 0",
       [](const testing::TempPinDir& d) { return LoadObject("bad_key_size", d.path()); },
       {"map 'keyless'", "create", "hash needs key_size > 0"}},
      {"a program array with value_size 8",
       [](const testing::TempPinDir& d) { return LoadObject("bad_prog_array_value", d.path()); },
       {"map 'wide_jmp'", "prog_array needs value_size 4 (an fd), got 8"}},
      {"a pin path outside bpffs",
       [&](const testing::TempPinDir&) {
         auto m = Map::Create({.type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 4,
                               .max_entries = 1, .name = "bad_pin"});
         if (!m.ok()) return m.status();
         return m->Pin(not_bpffs + "/bad_pin");
       },
       {"not on bpffs", not_bpffs}},
      {"an incompatible pin",
       [](const testing::TempPinDir& d) -> absl::Status {
         auto spec = CollectionSpec::FromFile(testing::BpfObjectPath("collection"));
         if (!spec.ok()) return spec.status();
         CollectionOptions o;
         o.pin_dir = d.path();
         {
           auto first = Collection::Load(*spec, o);
           if (!first.ok()) return first.status();
         }
         spec->FindMap("shared_counter")->value_size = 16;
         absl::Status st = Collection::Load(*spec, o).status();
         auto pinned = Map::LoadPinned(d.Sub("shared_counter"));
         if (!pinned.ok()) return pinned.status();
         absl::Status unpin = pinned->Unpin();
         if (!unpin.ok()) return unpin;
         if (!IsIncompatiblePin(st)) return absl::InternalError("not an incompatible-pin error");
         return st;
       },
       {"shared_counter", "value_size is 8 there but 16"}},
  };
  for (const Row& row : rows) {
    INFO(row.what);
    size_t fds = testing::CountOpenFds();
    absl::Status st = row.run(dir);
    INFO(st.ToString());
    REQUIRE_FALSE(st.ok());
    for (const std::string& piece : row.message) {
      CHECK_THAT(std::string(st.message()), Catch::Contains(piece));
    }
    CHECK(testing::CountOpenFds() == fds);
    CHECK(access(not_bpffs.c_str(), F_OK) != 0);  // nothing was made outside bpffs
  }
}
