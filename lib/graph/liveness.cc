#include "graph/liveness.h"

#include <algorithm>

namespace tether::detail {

bool VisitedNodes::Insert(NodeRef ref) {
  if (set_.empty()) {
    for (NodeRef v : list_)
      if (v == ref) return false;
    if (list_.size() < list_.capacity()) {
      list_.push_back(ref);
      return true;
    }
    set_.insert(list_.begin(), list_.end());
  }
  return set_.insert(ref).second;
}

bool Liveness::Pinned(const NodeData& n) const {
  for (const Edge& e : n.in)
    if (e.kind == EdgeKind::kPinHolds) return true;
  return false;
}

// Fds of this process: tether handles, KeepAlive's, and deferred ones.
static bool HasProcessFd(const NodeData& n, Liveness::Count count) {
  switch (count) {
    case Liveness::Count::kAll:
      return n.handles > 0 || n.kept_fd >= 0 || n.deferred_fd >= 0;
    case Liveness::Count::kNoDeferred:
      return n.handles > 0 || n.kept_fd >= 0;
    case Liveness::Count::kOutsideProcess:
      return false;
  }
  return false;
}

bool Liveness::ArrayHasUserRef(const NodeData& n) const {
  return HasProcessFd(n, count_) || n.has_holders() || Pinned(n);
}

bool Liveness::HasOwnHolder(const NodeData& n) const {
  return HasProcessFd(n, count_) || n.has_holders() || n.has_legacy_hooks();
}

bool Liveness::Live(NodeRef ref, NodeRef excluded_array) const {
  const NodeData* n = store_.Find(ref);
  return n && Live(*n, excluded_array);
}

bool Liveness::Live(const NodeData& n, NodeRef excluded_array) const {
  // The usual answer, a holder of its own, needs no walk and no set.
  if (HasOwnHolder(n)) return true;
  VisitedNodes seen;
  return Live(n, excluded_array, &seen);
}

// Walks the holders along the edges' own node pointers: no lookup by id.
bool Liveness::Live(const NodeData& n, NodeRef excluded_array, VisitedNodes* seen) const {
  if (!seen->Insert(n.ref)) return false;
  if (HasOwnHolder(n)) return true;
  for (const Edge& e : n.in) {
    switch (e.kind) {
      case EdgeKind::kPinHolds:
        return true;
      case EdgeKind::kTailCall:
        if (e.peer_ref() == excluded_array) break;
        if (ArrayHasUserRef(*e.peer)) return true;
        break;
      case EdgeKind::kLinkHolds:
      case EdgeKind::kUsesMap:
      case EdgeKind::kInnerMap:
      case EdgeKind::kStructOps:
        if (Live(*e.peer, excluded_array, seen)) return true;
        break;
    }
  }
  return false;
}

std::vector<NodeRef> Liveness::LiveUsers(NodeRef array) const {
  std::vector<NodeRef> users;
  const NodeData* a = store_.Find(array);
  if (!a) return users;
  for (const Edge& e : a->in) {
    if (e.kind == EdgeKind::kUsesMap && Live(*e.peer, array)) users.push_back(e.peer_ref());
  }
  return users;
}

std::vector<uint32_t> Liveness::Slots(const NodeData& array) const {
  std::vector<uint32_t> slots;
  for (const Edge& e : array.out)
    if (e.kind == EdgeKind::kTailCall) slots.push_back(e.slot);
  std::sort(slots.begin(), slots.end());
  return slots;
}

bool Liveness::OrphanHazard(const NodeData& a, std::vector<NodeRef>* users) const {
  // Its tether handles are the ones going; any other user reference keeps
  // the entries.
  if (!IsProgArrayType(a.type) || Pinned(a) || a.kept_fd >= 0 || a.deferred_fd >= 0 ||
      a.has_holders())
    return false;
  bool has_slots = false;
  for (const Edge& e : a.out) has_slots = has_slots || e.kind == EdgeKind::kTailCall;
  if (!has_slots) return false;
  *users = LiveUsers(a.ref);
  return !users->empty();
}

void ClearIfLastUserRefGone(Store& store, NodeRef ref) {
  NodeData* a = store.Find(ref);
  if (!a || ref.kind != NodeKind::kMap || !IsProgArrayType(a->type)) return;
  if (Liveness(store).ArrayHasUserRef(*a)) return;
  a->cleared_by_kernel = true;
  auto touched =
      store.RemoveEdges(*a, [](const Edge& e) { return e.kind == EdgeKind::kTailCall; });
  store.Collect(touched);
}

}  // namespace tether::detail
