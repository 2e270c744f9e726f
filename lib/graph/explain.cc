#include "graph/explain.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/printable.h"

namespace tether::detail {

// Names come from object files, bpffs and other processes: every sentence
// the graph writes (text, explanations, diagnostics) shows them as text a
// terminal cannot act on.
std::string Narrator::Label(NodeRef ref) const {
  const NodeData* n = store_.Find(ref);
  if (ref.kind == NodeKind::kPin) return absl::StrCat("pin ", n ? base::Printable(n->name) : "");
  std::string name = n && !n->name.empty() ? base::Printable(n->name) : "?";
  return absl::StrFormat("%s '%s' (id %u)",
                         ref.kind == NodeKind::kMap
                             ? (n && IsProgArrayType(n->type) ? "program array" : "map")
                             : NodeKindName(ref.kind),
                         name, ref.id);
}

std::string Narrator::ShortLabel(NodeRef ref) const {
  const NodeData* n = store_.Find(ref);
  std::string name = n && !n->name.empty() ? base::Printable(n->name) : "?";
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
                                    absl::string_view what, absl::string_view when) const {
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
      what, a.name, a.ref.id, when,
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
        lines->push_back(absl::StrCat(indent, "pinned at ", e.peer->name));
        break;
      case EdgeKind::kTailCall: {
        const NodeData* a = e.peer;
        bool holds = a && live_.ArrayHasUserRef(*a);
        lines->push_back(absl::StrFormat(
            "%sentry [%u] of %s%s", indent, e.slot, Label(e.peer_ref()),
            holds ? ", which is held by:" : ", which has no user reference left"));
        if (holds) Explain(e.peer_ref(), depth + 1, seen, lines);
        break;
      }
      case EdgeKind::kLinkHolds:
        lines->push_back(absl::StrCat(indent, "held by ", Label(e.peer_ref()), ", which is held by:"));
        Explain(e.peer_ref(), depth + 1, seen, lines);
        break;
      case EdgeKind::kUsesMap:
        lines->push_back(absl::StrCat(indent, "used by ", Label(e.peer_ref()), ", which is held by:"));
        Explain(e.peer_ref(), depth + 1, seen, lines);
        break;
      case EdgeKind::kInnerMap:
        lines->push_back(absl::StrFormat("%sinner map at [%u] of %s, which is held by:", indent,
                                         e.slot, Label(e.peer_ref())));
        Explain(e.peer_ref(), depth + 1, seen, lines);
        break;
      case EdgeKind::kStructOps:
        lines->push_back(absl::StrFormat("%smember %u of struct_ops %s, which is held by:", indent,
                                         e.slot, Label(e.peer_ref())));
        Explain(e.peer_ref(), depth + 1, seen, lines);
        break;
    }
  }
}

// The references that are not edges: handles, fds elsewhere, KeepAlive,
// legacy hooks.
void Narrator::ExplainOwnHolders(const NodeData& n, const std::string& indent,
                                 std::vector<std::string>* lines) const {
  if (n.handles > 0)
    lines->push_back(absl::StrFormat("%s%u tether handle object(s) in this process (pid %d)",
                                     indent, n.handles, getpid()));
  for (const std::string& holder : n.holders())
    lines->push_back(absl::StrCat(indent, "an open fd in ", holder));
  if (n.kept_fd >= 0)
    lines->push_back(absl::StrCat(indent, "kept alive by tether's KeepAlive policy (fd ",
                                  n.kept_fd, ") until ReleaseKept() or exit"));
  if (n.deferred_fd >= 0)
    lines->push_back(absl::StrCat(
        indent, "held by tether's graph (fd ", n.deferred_fd,
        "): its last handle went while the programs that tail-call through it lived only on "
        "this process's handles; the verdict waits for them (see docs/lifecycle.md)"));
  for (const std::string& hook : n.legacy_hooks())
    lines->push_back(absl::StrCat(indent, "attached by a legacy hook: ", hook,
                                  " (not pinnable; lasts until detached or the hook goes)"));
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

}  // namespace tether
