// The graph's edge lists (lib/graph/store.h): every edge is kept in its
// source's `out` and its target's `in`, each copy knowing where the other
// sits, so that an edge goes in constant time. Checked against a plain
// list of edges over random sequences, and on the shape that made removal
// quadratic: one map used by many programs, released in any order. No
// kernel objects: the graph's store is driven directly.
#include <algorithm>
#include <random>
#include <tuple>
#include <vector>

#include "catch2/catch.hpp"
#include "graph/cycles.h"
#include "graph/store.h"
#include "sys/bpf.h"

using namespace tether;
using namespace tether::detail;

namespace {

using Key = std::tuple<uint8_t, uint32_t, uint8_t, uint32_t, uint32_t, uint8_t>;

Key KeyOf(NodeRef from, NodeRef to, EdgeKind kind, uint32_t slot) {
  return Key{static_cast<uint8_t>(from.kind), from.id, static_cast<uint8_t>(to.kind), to.id, slot,
             static_cast<uint8_t>(kind)};
}

// Every copy has its mirror where `twin` says, pointing back; returns the
// edges as seen from the sources, sorted.
std::vector<Key> CheckMirroredAndList(const Store& store) {
  std::vector<Key> from_out, from_in;
  for (const auto& [ref, n] : store.state().nodes) {
    for (size_t i = 0; i < n.out.size(); ++i) {
      const Edge& e = n.out[i];
      REQUIRE(e.twin < e.peer->in.size());
      const Edge& m = e.peer->in[e.twin];
      REQUIRE(m.peer == &n);
      REQUIRE(m.twin == i);
      REQUIRE(m.kind == e.kind);
      REQUIRE(m.slot == e.slot);
      from_out.push_back(KeyOf(ref, e.peer_ref(), e.kind, e.slot));
    }
    for (const Edge& e : n.in) from_in.push_back(KeyOf(e.peer_ref(), ref, e.kind, e.slot));
  }
  std::sort(from_out.begin(), from_out.end());
  std::sort(from_in.begin(), from_in.end());
  REQUIRE(from_out == from_in);
  return from_out;
}

NodeRef ProgRef(uint32_t i) { return NodeRef{NodeKind::kProgram, 1000 + i}; }
NodeRef MapRef(uint32_t i) { return NodeRef{NodeKind::kMap, 2000 + i}; }

}  // namespace

TEST_CASE("edge lists stay mirrored over random adds and removals, parallel edges and self-loops "
          "included",
          "[graph][edges]") {
  GraphState state;
  LockedStore store(state);
  std::mt19937 rng(21);
  auto pick = [&](uint32_t n) { return static_cast<uint32_t>(rng() % n); };
  // Few nodes, so that lists are long and edges repeat: the same program
  // using the same map twice, an array holding one program in two slots.
  std::vector<NodeRef> nodes;
  for (uint32_t i = 0; i < 6; ++i) nodes.push_back(ProgRef(i));
  for (uint32_t i = 0; i < 4; ++i) nodes.push_back(MapRef(i));
  std::vector<Key> model;
  size_t removed = 0, max_in = 0;
  for (int step = 0; step < 6000; ++step) {
    INFO("step " << step);
    if (model.size() < 80 && pick(5) < 3) {
      NodeRef from = nodes[pick(nodes.size())], to = nodes[pick(nodes.size())];
      EdgeKind kind = static_cast<EdgeKind>(pick(6));
      uint32_t slot = pick(3);
      store.AddEdge(from, to, kind, slot);
      model.push_back(KeyOf(from, to, kind, slot));
    } else if (!model.empty()) {
      // One edge out of a node, matched by target, kind and slot: the
      // store removes the first such copy, any of them is the same edge.
      Key k = model[pick(model.size())];
      NodeRef from{static_cast<NodeKind>(std::get<0>(k)), std::get<1>(k)};
      NodeRef to{static_cast<NodeKind>(std::get<2>(k)), std::get<3>(k)};
      bool first = true;
      auto touched = store.RemoveEdges(from, [&](const Edge& e) {
        bool match = first && e.peer_ref() == to && e.slot == std::get<4>(k) &&
                     static_cast<uint8_t>(e.kind) == std::get<5>(k);
        if (match) first = false;
        return match;
      });
      REQUIRE(touched == std::vector<NodeRef>{to});
      model.erase(std::find(model.begin(), model.end(), k));
      ++removed;
    }
    std::vector<Key> got = CheckMirroredAndList(store);
    std::vector<Key> want = model;
    std::sort(want.begin(), want.end());
    REQUIRE(got == want);
    REQUIRE(state.edge_count == model.size());
    for (const auto& [ref, n] : state.nodes) max_in = std::max(max_in, n.in.size());
  }
  CHECK(removed > 1000);
  CHECK(max_in > 10);
}

TEST_CASE("a map with many users goes with its last user, whatever the release order",
          "[graph][edges][cycles]") {
  // The agent's shape: ~100 programs, each using its own map, a shared
  // counter map, and the program array it sits in; each program's entry
  // in the array closes a cycle with its use of the array.
  constexpr uint32_t kUsers = 95;
  for (int order = 0; order < 3; ++order) {
    INFO("order " << order);
    GraphState state;
    LockedStore store(state);
    const NodeRef shared = MapRef(0), array = MapRef(1);
    store.Ensure(shared).type = BPF_MAP_TYPE_ARRAY;
    store.Ensure(array).type = BPF_MAP_TYPE_PROG_ARRAY;
    store.Ensure(array).handles = 1;
    for (uint32_t i = 0; i < kUsers; ++i) {
      store.Ensure(ProgRef(i)).handles = 1;
      store.Ensure(MapRef(10 + i)).type = BPF_MAP_TYPE_HASH;
      store.AddEdge(ProgRef(i), MapRef(10 + i), EdgeKind::kUsesMap, 0);
      store.AddEdge(ProgRef(i), shared, EdgeKind::kUsesMap, 0);
      store.AddEdge(ProgRef(i), array, EdgeKind::kUsesMap, 0);
      CycleFinder(store).OnNewEdge(ProgRef(i), array, EdgeKind::kUsesMap);
      store.AddEdge(array, ProgRef(i), EdgeKind::kTailCall, i);
      CycleFinder(store).OnNewEdge(array, ProgRef(i), EdgeKind::kTailCall);
    }
    REQUIRE(state.cycles.size() == kUsers);
    REQUIRE(store.Find(shared)->in.size() == kUsers);
    std::vector<uint32_t> ids(kUsers);
    for (uint32_t i = 0; i < kUsers; ++i) ids[i] = i;
    if (order == 1) std::reverse(ids.begin(), ids.end());
    if (order == 2) std::shuffle(ids.begin(), ids.end(), std::mt19937(7));
    // Each program's handle goes, then its entry: it leaves the graph with
    // its own map, and its cycle with it.
    for (size_t k = 0; k < ids.size(); ++k) {
      uint32_t i = ids[k];
      store.Find(ProgRef(i))->handles = 0;
      store.Collect(ProgRef(i));
      REQUIRE(store.Find(ProgRef(i)) != nullptr);  // the array's entry holds it
      store.Collect(store.RemoveEntry(array, EdgeKind::kTailCall, i));
      REQUIRE(store.Find(ProgRef(i)) == nullptr);
      REQUIRE(store.Find(MapRef(10 + i)) == nullptr);
      size_t left = kUsers - k - 1;
      CheckMirroredAndList(store);
      REQUIRE(state.cycles.size() == left);
      if (left > 0) {
        REQUIRE(store.Find(shared) != nullptr);
        REQUIRE(store.Find(shared)->in.size() == left);
        REQUIRE(state.edge_count == 4 * left);
      }
    }
    // The shared map had no holder but its users: it went with the last.
    REQUIRE(store.Find(shared) == nullptr);
    REQUIRE(state.edge_count == 0);
    REQUIRE(state.nodes.size() == 1);  // the array, on its handle
  }
}

TEST_CASE("a graph copied for what-breaks points at its own nodes", "[graph][edges]") {
  GraphState state, copy_state;
  LockedStore store(state);
  for (uint32_t i = 0; i < 20; ++i) {
    store.AddEdge(ProgRef(i), MapRef(0), EdgeKind::kUsesMap, 0);
    store.AddEdge(MapRef(1), ProgRef(i), EdgeKind::kTailCall, i);
  }
  LockedStore copy(copy_state);
  copy.CopyNodesFrom(state);
  copy.state().edge_count = state.edge_count;
  for (const auto& [ref, n] : copy_state.nodes) {
    for (const Edge& e : n.out) REQUIRE(e.peer == copy.Find(e.peer_ref()));
    for (const Edge& e : n.in) REQUIRE(e.peer == copy.Find(e.peer_ref()));
  }
  // Taking edges out of the copy leaves the original whole.
  copy.RemoveEdges(MapRef(1), [](const Edge&) { return true; });
  CheckMirroredAndList(copy);
  REQUIRE(store.Find(MapRef(1))->out.size() == 20);
  REQUIRE(CheckMirroredAndList(store).size() == 40);
}
