// The facts that handles, arrays, pins and links report: objects come and
// go, entries are set and deleted, pins and hooks are made and removed.
#include <algorithm>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "graph/cycles.h"
#include "graph/graph_internal.h"
#include "graph/liveness.h"
#include "graph/settle.h"
#include "graph/store.h"
#include "sys/bpf.h"

namespace tether::detail {
namespace {

// The nodes of `map_ids`, in order, when the graph has them all (one
// lookup each); otherwise fills `unknown` with the ids it lacks.
using MapNodes = absl::InlinedVector<NodeData*, 8>;
MapNodes KnownMaps(Store& store, const std::vector<uint32_t>& map_ids,
                   std::vector<uint32_t>* unknown) {
  MapNodes known;
  known.reserve(map_ids.size());
  for (uint32_t id : map_ids) {
    NodeData* m = store.Find(NodeRef{NodeKind::kMap, id});
    if (m == nullptr) unknown->push_back(id);
    known.push_back(m);
  }
  if (!unknown->empty()) known.clear();
  return known;
}

// The program's uses-map edges, with the cycles they close.
void AddUsesEdges(Store& store, NodeData& prog, const MapNodes& maps) {
  prog.out.reserve(prog.out.size() + maps.size());
  CycleFinder cycles(store);
  for (NodeData* m : maps) {
    store.AddEdge(prog, *m, EdgeKind::kUsesMap, 0);
    cycles.OnNewEdge(prog, *m, EdgeKind::kUsesMap);
  }
}

// Names and types of maps no handle of ours owns, from the kernel.
std::vector<std::pair<uint32_t, bpf_map_info>> FetchMapInfos(const std::vector<uint32_t>& ids) {
  std::vector<std::pair<uint32_t, bpf_map_info>> fetched;
  for (uint32_t id : ids) {
    auto fd = sys::GetFdById(sys::ObjectKind::kMap, id);
    if (!fd.ok()) continue;
    auto mi = sys::GetMapInfo(fd->get());
    if (mi.ok()) fetched.emplace_back(id, *mi);
  }
  return fetched;
}

void CollectAll(Store& store, const std::vector<NodeRef>& refs) { store.Collect(refs); }

// Runs `fn` on the locked store, then re-checks the deferred verdicts that
// the change may settle (a program died, or gained a pin, a link, a hook).
// Diagnostics and closes happen after the lock is released.
template <typename Fn>
void WithSettle(Fn&& fn) {
  Aftermath after;
  {
    LockedStore store(State());
    fn(store);
    SettleDeferred(store, /*force=*/false, &after);
  }
  after.Run();
}

}  // namespace

void GraphOnMapCreated(uint32_t map_id, const std::string& name, uint32_t map_type) {
  LockedStore store(State());
  NodeData& n = store.Ensure(NodeRef{NodeKind::kMap, map_id});
  n.name = name;
  n.type = map_type;
  n.handles++;
}

void GraphOnProgramCreated(uint32_t prog_id, const std::string& name, uint32_t prog_type,
                           const std::vector<uint32_t>& used_map_ids) {
  NodeRef ref{NodeKind::kProgram, prog_id};
  std::vector<uint32_t> unknown;
  {
    LockedStore store(State());
    NodeData& n = store.Ensure(ref);
    n.name = name;
    n.type = prog_type;
    bool first = n.handles == 0 && n.out.empty();
    n.handles++;
    if (!first) return;  // a second object on a known program: edges exist
    MapNodes maps = KnownMaps(store, used_map_ids, &unknown);
    // The usual case (a collection's own maps): all in one lock and pass.
    if (unknown.empty()) return AddUsesEdges(store, n, maps);
  }
  // Without the lock: these are syscalls.
  std::vector<std::pair<uint32_t, bpf_map_info>> fetched = FetchMapInfos(unknown);
  LockedStore store(State());
  for (auto& [id, mi] : fetched) {
    NodeData& m = store.Ensure(NodeRef{NodeKind::kMap, id});
    if (m.name.empty()) {
      m.name = mi.name;
      m.type = mi.type;
    }
  }
  MapNodes maps;
  maps.reserve(used_map_ids.size());
  for (uint32_t id : used_map_ids) maps.push_back(&store.Ensure(NodeRef{NodeKind::kMap, id}));
  AddUsesEdges(store, store.Ensure(ref), maps);
}

void GraphOnProgramReleased(uint32_t prog_id) {
  WithSettle([&](Store& store) {
    NodeRef ref{NodeKind::kProgram, prog_id};
    NodeData* n = store.Find(ref);
    if (!n) return;
    if (n->handles > 0) n->handles--;
    store.Collect(ref);
  });
}

// --- array entries --------------------------------------------------------------------

void GraphSetTailCall(uint32_t array_id, uint32_t slot, uint32_t prog_id,
                      const std::string& prog_name, uint32_t prog_type) {
  WithSettle([&](Store& store) {
    // Each node looked up once: nodes stay put while others are added.
    NodeData& an = store.Ensure(NodeRef{NodeKind::kMap, array_id});
    auto replaced = store.RemoveEdges(
        an, [slot](const Edge& e) { return e.kind == EdgeKind::kTailCall && e.slot == slot; });
    NodeData& pn = store.Ensure(NodeRef{NodeKind::kProgram, prog_id});
    if (pn.name.empty()) {
      pn.name = prog_name;
      pn.type = prog_type;
    }
    an.cleared_by_kernel = false;
    store.AddEdge(an, pn, EdgeKind::kTailCall, slot);
    CycleFinder(store).OnNewEdge(an, pn, EdgeKind::kTailCall);
    CollectAll(store, replaced);
  });
}

void GraphNoteTailCallById(uint32_t array_id, uint32_t slot, uint32_t prog_id) {
  WithSettle([&](Store& store) {
    NodeRef a{NodeKind::kMap, array_id};
    NodeRef p{NodeKind::kProgram, prog_id};
    store.RemoveEntry(a, EdgeKind::kTailCall, slot);
    store.Ensure(p);
    store.AddEdge(a, p, EdgeKind::kTailCall, slot);
    CycleFinder(store).OnNewEdge(a, p, EdgeKind::kTailCall);
  });
}

void GraphDeleteTailCall(uint32_t array_id, uint32_t slot) {
  WithSettle([&](Store& store) {
    CollectAll(store, store.RemoveEntry(NodeRef{NodeKind::kMap, array_id}, EdgeKind::kTailCall, slot));
  });
}

void GraphSetInnerMap(uint32_t outer_id, uint32_t slot, uint32_t inner_id) {
  LockedStore store(State());
  NodeRef o{NodeKind::kMap, outer_id};
  auto replaced = store.RemoveEntry(o, EdgeKind::kInnerMap, slot);
  store.AddEdge(o, NodeRef{NodeKind::kMap, inner_id}, EdgeKind::kInnerMap, slot);
  CollectAll(store, replaced);
}

void GraphDeleteInnerMap(uint32_t outer_id, uint32_t slot) {
  LockedStore store(State());
  CollectAll(store, store.RemoveEntry(NodeRef{NodeKind::kMap, outer_id}, EdgeKind::kInnerMap, slot));
}

// --- pins and legacy hooks -----------------------------------------------------------

void GraphAddPin(NodeRef target, const std::string& path) {
  WithSettle([&](Store& store) {
    NodeRef pin = store.PinNode(path);
    auto old = store.RemoveEdges(pin, [](const Edge&) { return true; });
    store.Ensure(pin).name = path;
    store.AddEdge(pin, target, EdgeKind::kPinHolds, 0);
    CollectAll(store, old);
  });
}

void GraphRemovePin(const std::string& path) {
  WithSettle([&](Store& store) {
    GraphState& s = store.state();
    auto it = s.pin_ids.find(path);
    if (it == s.pin_ids.end()) return;
    NodeRef pin{NodeKind::kPin, it->second};
    s.pin_ids.erase(it);
    auto touched = store.RemoveEdges(pin, [](const Edge&) { return true; });
    s.nodes.erase(pin);
    for (NodeRef t : touched) {
      ClearIfLastUserRefGone(store, t);
      store.Collect(t);
    }
  });
}

std::string GraphPinPathOf(NodeRef target) {
  LockedStore store(State());
  const NodeData* n = store.Find(target);
  if (!n) return "";
  for (const Edge& e : n->in)
    if (e.kind == EdgeKind::kPinHolds) return e.peer->name;
  return "";
}

void GraphAddLegacyHook(NodeRef prog, const std::string& hook) {
  WithSettle([&](Store& store) {
    store.Ensure(prog).MutableExtra().legacy_hooks.push_back(hook);
  });
}

void GraphRemoveLegacyHook(NodeRef prog, const std::string& hook) {
  WithSettle([&](Store& store) {
    NodeData* n = store.Find(prog);
    if (!n) return;
    if (n->extra) {
      auto& hooks = n->extra->legacy_hooks;
      auto it = std::find(hooks.begin(), hooks.end(), hook);
      if (it != hooks.end()) hooks.erase(it);
    }
    store.Collect(prog);
  });
}

// --- links ------------------------------------------------------------------------------

void GraphOnLinkCreated(uint32_t link_id, uint32_t link_type, uint32_t prog_id,
                        const std::string& description) {
  WithSettle([&](Store& store) {
    NodeRef l{NodeKind::kLink, link_id};
    NodeData& n = store.Ensure(l);
    n.name = description;
    n.type = link_type;
    bool first = n.handles == 0 && n.out.empty();
    n.handles++;
    if (first) store.AddEdge(l, NodeRef{NodeKind::kProgram, prog_id}, EdgeKind::kLinkHolds, 0);
  });
}

void GraphOnLinkReleased(uint32_t link_id) {
  WithSettle([&](Store& store) {
    NodeRef l{NodeKind::kLink, link_id};
    NodeData* n = store.Find(l);
    if (!n) return;
    if (n->handles > 0) n->handles--;
    store.Collect(l);
  });
}

void GraphOnLinkProgramChanged(uint32_t link_id, uint32_t prog_id) {
  WithSettle([&](Store& store) {
    NodeRef l{NodeKind::kLink, link_id};
    if (!store.Find(l)) return;
    auto old = store.RemoveEdges(l, [](const Edge& e) { return e.kind == EdgeKind::kLinkHolds; });
    if (prog_id != 0) store.AddEdge(l, NodeRef{NodeKind::kProgram, prog_id}, EdgeKind::kLinkHolds, 0);
    CollectAll(store, old);
  });
}

void GraphOnLinkMapChanged(uint32_t link_id, uint32_t map_id) {
  WithSettle([&](Store& store) {
    NodeRef l{NodeKind::kLink, link_id};
    if (!store.Find(l)) return;
    auto old = store.RemoveEdges(l, [](const Edge& e) { return e.kind == EdgeKind::kLinkHolds; });
    if (map_id != 0) store.AddEdge(l, NodeRef{NodeKind::kMap, map_id}, EdgeKind::kLinkHolds, 0);
    CollectAll(store, old);
  });
}

void GraphSetStructOpsMember(uint32_t map_id, uint32_t member_index, uint32_t prog_id) {
  LockedStore store(State());
  NodeRef m{NodeKind::kMap, map_id};
  auto replaced = store.RemoveEntry(m, EdgeKind::kStructOps, member_index);
  store.AddEdge(m, NodeRef{NodeKind::kProgram, prog_id}, EdgeKind::kStructOps, member_index);
  CollectAll(store, replaced);
}

}  // namespace tether::detail
