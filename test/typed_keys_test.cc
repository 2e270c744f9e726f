// Compile-time key and value checks of TypedMap and PerCpuMap: the
// static_asserts below are the compile-fail tests (this file stops
// compiling if a narrowing key is accepted again), and the test case
// checks that a bare literal reaches the kernel as K.
#include <concepts>

#include "map_test_support.h"
#include "tether/percpu.h"
#include "tether/typed_map.h"

using namespace tether;
using namespace tether::testing;

namespace {

template <typename M, typename A, typename V>
concept CanLookup = requires(const M& m, const A& a, V* v) { m.Lookup(a, v); };
template <typename M, typename A, typename B>
concept CanUpdate = requires(const M& m, const A& a, const B& b) { m.Update(a, b); };
template <typename M, typename A>
concept CanDelete = requires(const M& m, const A& a) { m.Delete(a); };

using U64Map = TypedMap<uint64_t, uint64_t>;
using U32Map = TypedMap<uint32_t, uint32_t>;
struct Pair { uint32_t a, b; };
using PairMap = TypedMap<Pair, uint32_t>;

// A literal (int) converts to a K at least as wide.
static_assert(CanLookup<U64Map, int, uint64_t>);
static_assert(CanLookup<U32Map, int, uint32_t>);
static_assert(CanLookup<U32Map, uint16_t, uint32_t>);
// A wider or floating key, or a value that would be cut, does not compile.
static_assert(!CanLookup<U32Map, uint64_t, uint32_t>);
static_assert(!CanLookup<U32Map, double, uint32_t>);
static_assert(!CanDelete<U32Map, int64_t>);
static_assert(!CanUpdate<U32Map, uint32_t, uint64_t>);
static_assert(!CanUpdate<U32Map, uint64_t, uint32_t>);
static_assert(CanUpdate<U64Map, int, int>);
// The value's pointer type is exact: no V* from another type.
static_assert(!CanLookup<U64Map, uint64_t, uint32_t>);
// Struct keys: only the struct (brace-initialised keys still work, below).
static_assert(CanLookup<PairMap, Pair, uint32_t>);
static_assert(!CanLookup<PairMap, uint64_t, uint32_t>);
// Per-CPU maps refuse narrowing keys the same way.
static_assert(!CanDelete<PerCpuMap<uint32_t, uint64_t>, uint64_t>);
static_assert(CanDelete<PerCpuMap<uint64_t, uint64_t>, int>);

}  // namespace

TEST_CASE("a bare literal key reaches a typed map as K", "[map][typed]") {
  auto m = MustOk(U64Map::Bind(MustCreate(BPF_MAP_TYPE_HASH, 8, 8, 4, 0, "typed_lit")));
  REQUIRE_OK(m.Update(1, 7));  // int, int -> uint64_t, uint64_t
  uint64_t v = 0;
  REQUIRE_OK(m.Lookup(1, &v));
  CHECK(v == 7);
  // The same key through the untyped Map, as 8 bytes: the typed call wrote it whole.
  REQUIRE_OK(m.map().Lookup(uint64_t{1}, &v));
  CHECK(v == 7);

  auto pairs = MustOk(PairMap::Bind(MustCreate(BPF_MAP_TYPE_HASH, 8, 4, 4, 0, "typed_pair")));
  REQUIRE_OK(pairs.Update({1, 2}, 3));
  CHECK(MustOk(pairs.Get({1, 2})) == 3);
}
