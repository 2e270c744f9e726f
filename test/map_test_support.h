// Helpers shared by the map tests: create or fail the test, unwrap or fail.
#ifndef TETHER_TEST_MAP_TEST_SUPPORT_H_
#define TETHER_TEST_MAP_TEST_SUPPORT_H_

#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "test_support.h"
#include "tether/graph.h"
#include "tether/map.h"

namespace tether::testing {

inline Map MustCreate(uint32_t type, uint32_t key, uint32_t value, uint32_t max, uint32_t flags = 0,
                      const std::string& name = "t") {
  MapOptions o;
  o.type = type;
  o.key_size = key;
  o.value_size = value;
  o.max_entries = max;
  o.flags = flags;
  o.name = name;
  auto m = Map::Create(o);
  INFO(m.status().ToString());
  REQUIRE(m.ok());
  return *m;
}

template <typename T>
T MustOk(absl::StatusOr<T> v) {
  INFO(v.status().ToString());
  REQUIRE(v.ok());
  return std::move(*v);
}

inline bool HasEdge(const Map& from, uint32_t to_id, EdgeKind kind) {
  for (const GraphEdge& e : graph().Edges()) {
    if (e.from == NodeOf(from) && e.to.id == to_id && e.kind == kind) return true;
  }
  return false;
}

}  // namespace tether::testing

#define REQUIRE_OK(...)                        \
  do {                                         \
    absl::Status _st = (__VA_ARGS__);          \
    INFO(_st.ToString());                      \
    REQUIRE(_st.ok());                         \
  } while (0)

#endif  // TETHER_TEST_MAP_TEST_SUPPORT_H_
