// Maps of maps (map_in_map.h): slots, inner ids and graph edges.
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

TEST_CASE("array of maps: set, get, delete, and graph edges", "[map][map_in_map]") {
  Map tmpl = MustCreate(BPF_MAP_TYPE_HASH, 4, 4, 8, 0, "inner_tmpl");
  auto outer = MustOk(ArrayOfMaps::Create("aom", 4, tmpl));
  Map inner = MustCreate(BPF_MAP_TYPE_HASH, 4, 4, 8, 0, "inner1");
  REQUIRE_OK(inner.Update(uint32_t{1}, uint32_t{111}));
  REQUIRE_OK(outer.Set(2, inner));
  CHECK(MustOk(outer.Get(2)) == absl::optional<uint32_t>(inner.id()));
  CHECK(MustOk(outer.Get(1)) == absl::nullopt);
  CHECK(HasEdge(outer.map(), inner.id(), EdgeKind::kInnerMap));
  Map reopened = MustOk(outer.GetMap(2));
  CHECK(reopened.id() == inner.id());
  uint32_t v = 0;
  REQUIRE_OK(reopened.Lookup(uint32_t{1}, &v));
  CHECK(v == 111);

  // A map of another shape is refused with an explanation.
  Map wrong = MustCreate(BPF_MAP_TYPE_ARRAY, 4, 8, 8, 0, "wrong_inner");
  auto st = outer.Set(0, wrong);
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(st.message()), Catch::Contains("aom") && Catch::Contains("template"));

  REQUIRE_OK(outer.Delete(2));
  CHECK(MustOk(outer.Get(2)) == absl::nullopt);
  CHECK_FALSE(HasEdge(outer.map(), inner.id(), EdgeKind::kInnerMap));
  CHECK(outer.Delete(2).code() == absl::StatusCode::kNotFound);
}

TEST_CASE("hash of maps: keys, inner ids and graph edges", "[map][map_in_map]") {
  Map tmpl = MustCreate(BPF_MAP_TYPE_ARRAY, 4, 8, 4, 0, "hom_tmpl");
  struct Key { uint64_t a; uint32_t b; uint32_t c; };
  auto outer = MustOk(HashOfMaps::Create("hom", sizeof(Key), 8, tmpl));
  Map in1 = MustCreate(BPF_MAP_TYPE_ARRAY, 4, 8, 4, 0, "hom_in1");
  Map in2 = MustCreate(BPF_MAP_TYPE_ARRAY, 4, 8, 4, 0, "hom_in2");
  REQUIRE_OK(outer.Set(Key{1, 2, 3}, in1));
  REQUIRE_OK(outer.Set(Key{4, 5, 6}, in2));
  CHECK(MustOk(outer.Get(Key{1, 2, 3})) == absl::optional<uint32_t>(in1.id()));
  CHECK(MustOk(outer.Get(Key{4, 5, 6})) == absl::optional<uint32_t>(in2.id()));
  CHECK(HasEdge(outer.map(), in1.id(), EdgeKind::kInnerMap));
  CHECK(HasEdge(outer.map(), in2.id(), EdgeKind::kInnerMap));
  REQUIRE_OK(outer.Delete(Key{1, 2, 3}));
  CHECK_FALSE(HasEdge(outer.map(), in1.id(), EdgeKind::kInnerMap));
  CHECK(HasEdge(outer.map(), in2.id(), EdgeKind::kInnerMap));
  CHECK(MustOk(outer.Get(Key{1, 2, 3})) == absl::nullopt);
  CHECK(outer.Set(uint32_t{1}, in1).code() == absl::StatusCode::kInvalidArgument);
}
