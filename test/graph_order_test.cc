// The incremental order behind the cycle search (lib/graph/order.h),
// checked against plain depth-first searches over the same edges: random
// sequences of tail calls and array uses set and removed, cycles made and
// broken. No kernel objects: the graph's store is driven directly.
#include <algorithm>
#include <functional>
#include <tuple>
#include <random>
#include <string>
#include <vector>

#include "catch2/catch.hpp"
#include "graph/cycles.h"
#include "graph/order.h"
#include "graph/store.h"
#include "sys/bpf.h"

using namespace tether;
using namespace tether::detail;

namespace {

constexpr uint32_t kArrays = 4;
constexpr uint32_t kPrograms = 5;
constexpr uint32_t kHashes = 2;

NodeRef ArrayRef(uint32_t i) { return NodeRef{NodeKind::kMap, 100 + i}; }
NodeRef HashRef(uint32_t i) { return NodeRef{NodeKind::kMap, 200 + i}; }
NodeRef ProgRef(uint32_t i) { return NodeRef{NodeKind::kProgram, 300 + i}; }

bool Follows(const Edge& e) {
  if (e.kind == EdgeKind::kTailCall) return true;
  if (e.kind != EdgeKind::kUsesMap) return false;
  return IsProgArrayType(e.peer->type);
}

// Plain DFS with colours over the edges a cycle runs along.
bool HasCycle(const Store& store) {
  absl::flat_hash_map<NodeRef, int> colour;  // 0 new, 1 on stack, 2 done
  std::function<bool(NodeRef)> visit = [&](NodeRef r) {
    colour[r] = 1;
    for (const Edge& e : store.Find(r)->out) {
      if (!Follows(e)) continue;
      int c = colour[e.peer_ref()];
      if (c == 1) return true;
      if (c == 0 && visit(e.peer_ref())) return true;
    }
    colour[r] = 2;
    return false;
  };
  for (const auto& [ref, n] : store.state().nodes)
    if (colour[ref] == 0 && visit(ref)) return true;
  return false;
}

// While the order is valid, every ordered edge goes up the order.
bool OrderRespected(const Store& store) {
  for (const auto& [ref, n] : store.state().nodes)
    for (const Edge& e : n.out)
      if (IsOrderedEdge(e.kind) && n.order >= e.peer->order) return false;
  return true;
}

std::vector<std::string> SortedCycles(Store& store) {
  CycleFinder(store).DropOpenCycles();
  std::vector<std::string> c;
  for (const Cycle& cycle : store.state().cycles) c.push_back(cycle.ToString());
  std::sort(c.begin(), c.end());
  return c;
}

void AddNodes(Store& store) {
  for (uint32_t i = 0; i < kArrays; ++i) store.Ensure(ArrayRef(i)).type = BPF_MAP_TYPE_PROG_ARRAY;
  for (uint32_t i = 0; i < kHashes; ++i) store.Ensure(HashRef(i)).type = BPF_MAP_TYPE_HASH;
  for (uint32_t i = 0; i < kPrograms; ++i) store.Ensure(ProgRef(i));
}

// One random step, applied the same way to both graphs.
void Step(std::mt19937& rng, Store& store, size_t max_edges) {
  auto pick = [&](uint32_t n) { return static_cast<uint32_t>(rng() % n); };
  bool remove = store.state().edge_count >= max_edges || pick(3) == 0;
  if (remove) {
    // One of the edges there, picked in a fixed order so that both graphs
    // drop the same one.
    std::vector<GraphEdge> edges;
    for (const auto& [ref, n] : store.state().nodes)
      for (const Edge& x : n.out) edges.push_back(GraphEdge{ref, x.peer_ref(), x.kind, x.slot});
    if (edges.empty()) return;
    std::sort(edges.begin(), edges.end(), [](const GraphEdge& x, const GraphEdge& y) {
      return std::tie(x.from.id, x.kind, x.slot, x.to.id) < std::tie(y.from.id, y.kind, y.slot, y.to.id);
    });
    GraphEdge e = edges[pick(static_cast<uint32_t>(edges.size()))];
    bool first = true;
    store.RemoveEdges(e.from, [&](const Edge& x) {
      bool match = first && x.peer_ref() == e.to && x.kind == e.kind && x.slot == e.slot;
      if (match) first = false;
      return match;
    });
    return;
  }
  switch (pick(3)) {
    case 0: {  // an array slot set, as GraphSetTailCall does
      NodeRef a = ArrayRef(pick(kArrays)), p = ProgRef(pick(kPrograms));
      uint32_t slot = pick(3);
      store.RemoveEntry(a, EdgeKind::kTailCall, slot);
      store.AddEdge(a, p, EdgeKind::kTailCall, slot);
      CycleFinder(store).OnNewEdge(a, p, EdgeKind::kTailCall);
      break;
    }
    case 1: {  // a program that uses an array
      NodeRef p = ProgRef(pick(kPrograms)), a = ArrayRef(pick(kArrays));
      store.AddEdge(p, a, EdgeKind::kUsesMap, 0);
      CycleFinder(store).OnNewEdge(p, a, EdgeKind::kUsesMap);
      break;
    }
    default: {  // a program that uses a hash map: never part of a cycle
      NodeRef p = ProgRef(pick(kPrograms)), h = HashRef(pick(kHashes));
      store.AddEdge(p, h, EdgeKind::kUsesMap, 0);
      CycleFinder(store).OnNewEdge(p, h, EdgeKind::kUsesMap);
      break;
    }
  }
}

}  // namespace

TEST_CASE("the incremental order agrees with plain searches over random edge sequences",
          "[graph][order]") {
  for (size_t max_edges : {6u, 10u, 16u}) {
    GraphState incremental_state, plain_state;
    plain_state.incremental_cycles = false;
    LockedStore incremental(incremental_state);
    LockedStore plain(plain_state);
    AddNodes(incremental);
    AddNodes(plain);
    std::mt19937 rng_a(2121 + max_edges), rng_b(2121 + max_edges);
    size_t cyclic_steps = 0, valid_steps = 0, became_acyclic = 0;
    bool was_cyclic = false;
    for (int step = 0; step < 4000; ++step) {
      Step(rng_a, incremental, max_edges);
      Step(rng_b, plain, max_edges);
      INFO("max_edges " << max_edges << ", step " << step);
      REQUIRE(incremental_state.edge_count == plain_state.edge_count);
      bool cyclic = HasCycle(incremental);
      if (incremental_state.order_valid) {
        ++valid_steps;
        REQUIRE_FALSE(cyclic);
        REQUIRE(OrderRespected(incremental));
      }
      // Asked now and then (it may rebuild), not every step, so that the
      // lazy path is exercised too.
      if (step % 5 == 0) {
        REQUIRE(OrderProvesAcyclic(incremental) == !cyclic);
        if (incremental_state.order_valid) REQUIRE(OrderRespected(incremental));
      }
      std::vector<std::string> got = SortedCycles(incremental);
      REQUIRE(got == SortedCycles(plain));
      REQUIRE(got.empty() == !cyclic);
      cyclic_steps += cyclic;
      if (was_cyclic && !cyclic) ++became_acyclic;
      was_cyclic = cyclic;
    }
    // The sequence did make and break cycles, and kept a valid order often.
    CHECK(cyclic_steps > 200);
    CHECK(became_acyclic > 20);
    CHECK(valid_steps > 200);
  }
}

TEST_CASE("a chain of tail calls reorders only what lies between the new edge's ends",
          "[graph][order]") {
  GraphState state;
  LockedStore store(state);
  // A line: array i -> program i -> array i+1, created in reverse so that
  // every edge first goes against the order and must be repaired.
  constexpr uint32_t n = 200;
  for (uint32_t i = n; i-- > 0;) {
    store.Ensure(ArrayRef(i)).type = BPF_MAP_TYPE_PROG_ARRAY;
    store.Ensure(ProgRef(i));
  }
  for (uint32_t i = 0; i < n; ++i) {
    store.AddEdge(ArrayRef(i), ProgRef(i), EdgeKind::kTailCall, 0);
    CycleFinder(store).OnNewEdge(ArrayRef(i), ProgRef(i), EdgeKind::kTailCall);
    if (i + 1 < n) {
      store.AddEdge(ProgRef(i), ArrayRef(i + 1), EdgeKind::kUsesMap, 0);
      CycleFinder(store).OnNewEdge(ProgRef(i), ArrayRef(i + 1), EdgeKind::kUsesMap);
    }
  }
  REQUIRE(state.order_valid);
  REQUIRE(OrderRespected(store));
  REQUIRE(state.cycles.empty());
  // Closing the line into a ring makes one cycle of every node.
  store.AddEdge(ProgRef(n - 1), ArrayRef(0), EdgeKind::kUsesMap, 0);
  CycleFinder(store).OnNewEdge(ProgRef(n - 1), ArrayRef(0), EdgeKind::kUsesMap);
  REQUIRE_FALSE(state.order_valid);
  REQUIRE(SortedCycles(store).size() == 1);
  REQUIRE(state.cycles[0].nodes.size() == 2 * n);
  // Opening it again: the order is rebuilt valid when next asked.
  store.RemoveEntry(ArrayRef(n / 2), EdgeKind::kTailCall, 0);
  REQUIRE(SortedCycles(store).empty());
  REQUIRE(OrderProvesAcyclic(store));
  REQUIRE(OrderRespected(store));
}

TEST_CASE("a long chain built against the order gives the order up, not the answers",
          "[graph][order]") {
  GraphState state;
  LockedStore store(state);
  // Every array first, then the programs that link them: each new use
  // goes against the order, and past a few thousand nodes to reorder the
  // order is given up and the edges are searched from as before.
  constexpr uint32_t n = 6000;
  for (uint32_t i = 0; i < n; ++i) store.Ensure(ArrayRef(i)).type = BPF_MAP_TYPE_PROG_ARRAY;
  for (uint32_t i = 0; i < n; ++i) {
    store.Ensure(ProgRef(i));
    if (i + 1 < n) {
      store.AddEdge(ProgRef(i), ArrayRef(i + 1), EdgeKind::kUsesMap, 0);
      CycleFinder(store).OnNewEdge(ProgRef(i), ArrayRef(i + 1), EdgeKind::kUsesMap);
    }
    store.AddEdge(ArrayRef(i), ProgRef(i), EdgeKind::kTailCall, 0);
    CycleFinder(store).OnNewEdge(ArrayRef(i), ProgRef(i), EdgeKind::kTailCall);
  }
  REQUIRE_FALSE(state.order_valid);
  REQUIRE(state.cycles.empty());
  REQUIRE_FALSE(HasCycle(store));
  // An edge removed: the rebuild finds the line acyclic and the order is
  // back, in order.
  store.RemoveEntry(ArrayRef(n - 1), EdgeKind::kTailCall, 0);
  REQUIRE(OrderProvesAcyclic(store));
  REQUIRE(OrderRespected(store));
  // Closing what is left into a ring is still found.
  store.AddEdge(ProgRef(n - 2), ArrayRef(0), EdgeKind::kUsesMap, 0);
  CycleFinder(store).OnNewEdge(ProgRef(n - 2), ArrayRef(0), EdgeKind::kUsesMap);
  REQUIRE(SortedCycles(store).size() == 1);
}
