#include "graph/explain.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace tether::detail {

std::string Narrator::Label(NodeRef ref) const {
  const NodeData* n = store_.Find(ref);
  if (ref.kind == NodeKind::kPin) return absl::StrCat("pin ", n ? n->node.name : "");
  std::string name = n && !n->node.name.empty() ? n->node.name : "?";
  return absl::StrFormat("%s '%s' (id %u)",
                         ref.kind == NodeKind::kMap
                             ? (n && IsProgArrayType(n->node.type) ? "program array" : "map")
                             : NodeKindName(ref.kind),
                         name, ref.id);
}

std::string Narrator::ShortLabel(NodeRef ref) const {
  const NodeData* n = store_.Find(ref);
  std::string name = n && !n->node.name.empty() ? n->node.name : "?";
  if (ref.kind == NodeKind::kPin) return name;
  return absl::StrFormat("%s (id %u)", name, ref.id);
}

std::string Narrator::FormatSlots(const std::vector<uint32_t>& slots) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < slots.size();) {
    size_t j = i;
    while (j + 1 < slots.size() && slots[j + 1] == slots[j] + 1) ++j;
    parts.push_back(j > i ? absl::StrCat(slots[i], "..", slots[j]) : absl::StrCat(slots[i]));
    i = j + 1;
  }
  return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
}

std::string Narrator::HazardMessage(const NodeData& a, const std::vector<NodeRef>& users,
                                    absl::string_view what) const {
  std::vector<std::string> names;
  for (NodeRef u : users) names.push_back(ShortLabel(u));
  std::vector<uint32_t> slots = live_.Slots(a);
  return absl::StrFormat(
      "tether: %s: the last user reference of program array '%s' (id %u) %s.\n"
      "  It has %u entr%s %s, and these programs tail-call through it: %s.\n"
      "  The kernel clears every entry of a program array when its last fd or pin goes;\n"
      "  from then on those tail calls miss silently.\n"
      "  Fix: pin the array (Map::Pin, or LifetimePolicy::kPin), or keep a Map handle to it\n"
      "  for as long as the programs run (or LifetimePolicy::kKeepAlive).",
      what, a.node.name, a.node.ref.id, what == "close refused" ? "would go" : "is going",
      slots.size(), slots.size() == 1 ? "y" : "ies", FormatSlots(slots),
      absl::StrJoin(names, ", "));
}

// --- why it is alive ----------------------------------------------------------------

void Narrator::Explain(NodeRef ref, int depth, absl::flat_hash_set<NodeRef>* seen,
                       std::vector<std::string>* lines) const {
  std::string indent(depth * 2, ' ');
  if (!seen->insert(ref).second) {
    lines->push_back(absl::StrCat(indent, "(", Label(ref), " again: a cycle)"));
    return;
  }
  const NodeData* n = store_.Find(ref);
  if (!n) return;
  ExplainOwnHolders(*n, indent, lines);
  for (const Edge& e : n->in) {
    switch (e.kind) {
      case EdgeKind::kPinHolds:
        lines->push_back(absl::StrCat(indent, "pinned at ", store_.Find(e.from)->node.name));
        break;
      case EdgeKind::kTailCall: {
        const NodeData* a = store_.Find(e.from);
        bool holds = a && live_.ArrayHasUserRef(*a);
        lines->push_back(absl::StrFormat(
            "%sentry [%u] of %s%s", indent, e.slot, Label(e.from),
            holds ? ", which is held by:" : ", which has no user reference left"));
        if (holds) Explain(e.from, depth + 1, seen, lines);
        break;
      }
      case EdgeKind::kLinkHolds:
        lines->push_back(absl::StrCat(indent, "held by ", Label(e.from), ", which is held by:"));
        Explain(e.from, depth + 1, seen, lines);
        break;
      case EdgeKind::kUsesMap:
        lines->push_back(absl::StrCat(indent, "used by ", Label(e.from), ", which is held by:"));
        Explain(e.from, depth + 1, seen, lines);
        break;
      case EdgeKind::kInnerMap:
        lines->push_back(absl::StrFormat("%sinner map at [%u] of %s, which is held by:", indent,
                                         e.slot, Label(e.from)));
        Explain(e.from, depth + 1, seen, lines);
        break;
    }
  }
}

// The references that are not edges: handles, fds elsewhere, KeepAlive,
// legacy hooks.
void Narrator::ExplainOwnHolders(const NodeData& n, const std::string& indent,
                                 std::vector<std::string>* lines) const {
  if (n.node.handles > 0)
    lines->push_back(absl::StrFormat("%s%u tether handle object(s) in this process (pid %d)",
                                     indent, n.node.handles, getpid()));
  for (const std::string& holder : n.node.holders)
    lines->push_back(absl::StrCat(indent, "an open fd in ", holder));
  if (n.kept_fd >= 0)
    lines->push_back(absl::StrCat(indent, "kept alive by tether's KeepAlive policy (fd ",
                                  n.kept_fd, ") until ReleaseKept() or exit"));
  for (const std::string& hook : n.node.legacy_hooks)
    lines->push_back(absl::StrCat(indent, "attached by a legacy hook: ", hook,
                                  " (not pinnable; lasts until detached or the hook goes)"));
}

// --- what breaks ----------------------------------------------------------------------

void Narrator::WhatBreaks(NodeRef ref, std::vector<std::string>* out) const {
  const NodeData* n = store_.Find(ref);
  if (!n) return;
  if (ref.kind != NodeKind::kPin) {
    BreaksOfObject(ref, out);
    return;
  }
  // A pin is one reference among others: only what it alone held breaks.
  for (const Edge& e : n->out) {
    const NodeData* t = store_.Find(e.to);
    if (!t) continue;
    bool other_refs = t->node.handles > 0 || t->kept_fd >= 0;
    for (const Edge& p : t->in)
      if (p.kind == EdgeKind::kPinHolds && p.from != ref) other_refs = true;
    if (other_refs) {
      out->push_back(absl::StrCat("nothing immediate: ", Label(e.to),
                                  " has other user references; it will no longer outlive "
                                  "this process through ", n->node.name));
    } else {
      BreaksOfObject(e.to, out);
    }
  }
}

void Narrator::BreaksOfObject(NodeRef ref, std::vector<std::string>* out) const {
  const NodeData* n = store_.Find(ref);
  if (!n) return;
  if (ref.kind == NodeKind::kMap && IsProgArrayType(n->node.type)) {
    BreaksOfProgramArray(*n, out);
  } else if (ref.kind == NodeKind::kLink) {
    BreaksOfLink(*n, out);
  } else if (ref.kind == NodeKind::kProgram) {
    BreaksOfProgram(*n, out);
  } else {
    BreaksOfMap(*n, out);
  }
}

void Narrator::BreaksOfProgramArray(const NodeData& n, std::vector<std::string>* out) const {
  NodeRef ref = n.node.ref;
  if (live_.Pinned(n)) {
    out->push_back(absl::StrCat("nothing: ", Label(ref), " is pinned, so it keeps its entries"));
    return;
  }
  std::vector<uint32_t> slots = live_.Slots(n);
  if (slots.empty()) {
    out->push_back(absl::StrCat("nothing: ", Label(ref), " has no entries"));
    return;
  }
  std::vector<NodeRef> users = live_.LiveUsers(ref);
  for (NodeRef u : users) {
    out->push_back(absl::StrFormat("tail calls from %s into %s%s will miss", ShortLabel(u),
                                   n.node.name, FormatSlots(slots)));
  }
  for (const Edge& e : n.out) {
    if (e.kind == EdgeKind::kTailCall && !live_.Live(e.to, ref))
      out->push_back(absl::StrCat(Label(e.to), " (entry [", e.slot,
                                  "]) will be freed: nothing else holds it"));
  }
  if (users.empty())
    out->push_back(absl::StrCat(Label(ref), " will be cleared, but no live program uses it"));
}

void Narrator::BreaksOfLink(const NodeData& n, std::vector<std::string>* out) const {
  for (const Edge& e : n.out) {
    out->push_back(absl::StrCat(Label(e.to), " detaches from the hook of ", Label(n.node.ref)));
  }
}

void Narrator::BreaksOfProgram(const NodeData& n, std::vector<std::string>* out) const {
  NodeRef ref = n.node.ref;
  bool held = live_.Pinned(n) || !n.node.legacy_hooks.empty();
  for (const Edge& e : n.in) {
    if (e.kind == EdgeKind::kLinkHolds) held = true;
    if (e.kind == EdgeKind::kTailCall) {
      const NodeData* a = store_.Find(e.from);
      if (a && live_.ArrayHasUserRef(*a)) held = true;
    }
  }
  if (held) {
    out->push_back(absl::StrCat("nothing: ", Label(ref), " is still held (see Explain)"));
    return;
  }
  out->push_back(absl::StrCat(Label(ref), " will be freed"));
  // The maps it uses go with it unless something else holds them.
  for (const Edge& e : n.out) {
    if (e.kind != EdgeKind::kUsesMap) continue;
    const NodeData* m = store_.Find(e.to);
    if (!m || m->node.handles != 0 || m->kept_fd >= 0 || live_.Pinned(*m)) continue;
    bool other_user = false;
    for (const Edge& u : m->in)
      if (u.from != ref && u.kind == EdgeKind::kUsesMap && live_.Live(u.from)) other_user = true;
    if (!other_user) out->push_back(absl::StrCat(Label(e.to), " will be freed with it"));
  }
}

// A plain map: programs keep it alive; only user-space access goes.
void Narrator::BreaksOfMap(const NodeData& n, std::vector<std::string>* out) const {
  std::vector<std::string> users;
  for (const Edge& e : n.in)
    if (e.kind == EdgeKind::kUsesMap && live_.Live(e.from)) users.push_back(ShortLabel(e.from));
  if (!users.empty() || live_.Pinned(n)) {
    out->push_back(absl::StrCat(
        "nothing for programs: ", Label(n.node.ref), " stays alive (",
        users.empty() ? "pinned" : absl::StrCat("used by ", absl::StrJoin(users, ", ")),
        "); this process only loses access to it"));
  } else {
    out->push_back(absl::StrCat(Label(n.node.ref), " will be freed with its contents"));
  }
}

}  // namespace tether::detail

namespace tether {

std::string Explanation::ToString() const {
  std::string head = absl::StrCat(NodeKindName(subject.kind), " ", subject.id);
  if (!known) return absl::StrCat(head, ": not in tether's graph");
  if (!alive && holders.empty()) return absl::StrCat(head, ": nothing holds it; it is being freed");
  return absl::StrCat(head, " is alive because:\n  ", absl::StrJoin(holders, "\n  "));
}

Explanation ObjectGraph::Explain(NodeRef ref) const {
  detail::LockedStore store(*state_);
  Explanation ex;
  ex.subject = ref;
  if (!store.Find(ref)) return ex;
  ex.known = true;
  absl::flat_hash_set<NodeRef> seen;
  detail::Narrator(store).Explain(ref, 0, &seen, &ex.holders);
  ex.alive = ref.kind == NodeKind::kPin || detail::Liveness(store).Live(ref);
  return ex;
}

std::vector<std::string> ObjectGraph::WhatBreaks(NodeRef ref) const {
  detail::LockedStore store(*state_);
  std::vector<std::string> out;
  if (!store.Find(ref)) {
    out.push_back(absl::StrCat(NodeKindName(ref.kind), " ", ref.id, " is not in tether's graph"));
    return out;
  }
  detail::Narrator(store).WhatBreaks(ref, &out);
  return out;
}

}  // namespace tether
