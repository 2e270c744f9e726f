// What stops working when a reference goes. The answer is computed, not
// guessed from the reference's kind: the graph is copied, the reference is
// taken out of the copy, the kernel's rule is played out on it (a program
// array that loses its last user reference is cleared; what nothing holds
// any more is freed), and the copy is compared with the graph as it is.
// So a pin that is an array's last user reference reads as what it is.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "graph/explain.h"
#include "graph/liveness.h"
#include "graph/store.h"
#include "tether/graph.h"

namespace tether::detail {
namespace {

class BreakAnalysis {
 public:
  BreakAnalysis(const Store& before, NodeRef subject, Removal how)
      : before_(before), narrator_(before), subject_(subject), how_(how), after_(scratch_) {
    after_.CopyNodesFrom(before.state());
    after_.state().next_order = before.state().next_order;
    after_.state().order_valid = before.state().order_valid;
    after_.state().order_stale = before.state().order_stale;
    after_.state().incremental_cycles = before.state().incremental_cycles;
  }

  std::vector<std::string> Run() {
    std::vector<NodeRef> lost = RemoveReferences();
    ClearArrays();
    std::vector<std::string> out;
    ReportClearedArrays(&out);
    ReportFreed(&out);
    if (out.empty()) ReportNothing(lost, &out);
    return out;
  }

 private:
  void RemovePin(NodeRef pin, std::vector<NodeRef>* lost) {
    for (NodeRef t : after_.RemoveEdges(pin, [](const Edge&) { return true; })) lost->push_back(t);
    after_.state().nodes.erase(pin);
  }

  // Takes the references away in the copy; returns the objects that lost one.
  std::vector<NodeRef> RemoveReferences() {
    std::vector<NodeRef> lost;
    if (subject_.kind == NodeKind::kPin) {
      RemovePin(subject_, &lost);
      return lost;
    }
    NodeData* n = after_.Find(subject_);
    if (!n) return lost;
    lost.push_back(subject_);
    n->handles = 0;
    n->kept_fd = -1;
    n->deferred_fd = -1;
    if (how_ == Removal::kAllUserRefs) {
      if (n->extra) n->extra->holders.clear();
      std::vector<NodeRef> pins;
      for (const Edge& e : n->in)
        if (e.kind == EdgeKind::kPinHolds) pins.push_back(e.peer_ref());
      for (NodeRef p : pins) RemovePin(p, &lost);
    }
    return lost;
  }

  // The kernel's rule: every array that had a user reference and has none
  // now loses its entries.
  void ClearArrays() {
    Liveness was(before_), is(after_);
    for (auto& [ref, n] : after_.state().nodes) {
      if (ref.kind != NodeKind::kMap || !IsProgArrayType(n.type)) continue;
      const NodeData* old = before_.Find(ref);
      if (!old || !was.ArrayHasUserRef(*old) || is.ArrayHasUserRef(n)) continue;
      if (was.Slots(*old).empty()) continue;
      cleared_.push_back(ref);
    }
    std::sort(cleared_.begin(), cleared_.end(), [](NodeRef a, NodeRef b) { return a.id < b.id; });
    for (NodeRef a : cleared_)
      after_.RemoveEdges(a, [](const Edge& e) { return e.kind == EdgeKind::kTailCall; });
  }

  void ReportClearedArrays(std::vector<std::string>* out) const {
    Liveness is(after_);
    for (NodeRef a : cleared_) {
      const NodeData& old = *before_.Find(a);
      std::string slots = Narrator::FormatSlots(Liveness(before_).Slots(old));
      bool any_user = false;
      for (const Edge& e : old.in) {
        if (e.kind != EdgeKind::kUsesMap || !is.Live(e.peer_ref())) continue;
        any_user = true;
        out->push_back(absl::StrFormat("tail calls from %s into %s%s will miss",
                                       narrator_.ShortLabel(e.peer_ref()), old.name, slots));
      }
      if (!any_user)
        out->push_back(absl::StrCat(narrator_.Label(a), " will be cleared, but no live program uses it"));
    }
  }

  // The entry of a cleared array that held `ref`, for the reader.
  std::string EntryNote(NodeRef ref) const {
    for (NodeRef a : cleared_)
      for (const Edge& e : before_.Find(a)->out)
        if (e.kind == EdgeKind::kTailCall && e.peer_ref() == ref)
          return absl::StrCat(" (entry [", e.slot, "] of ", before_.Find(a)->name, ")");
    return "";
  }

  void ReportFreed(std::vector<std::string>* out) const {
    Liveness was(before_), is(after_);
    std::vector<NodeRef> freed;
    for (const auto& [ref, n] : before_.state().nodes) {
      if (ref.kind == NodeKind::kPin || !was.Live(ref)) continue;
      if (!is.Live(ref)) freed.push_back(ref);
    }
    std::sort(freed.begin(), freed.end(), [](NodeRef a, NodeRef b) {
      return std::make_pair(a.kind, a.id) < std::make_pair(b.kind, b.id);
    });
    for (NodeRef ref : freed) {
      const NodeData& n = *before_.Find(ref);
      if (ref.kind == NodeKind::kLink) {
        for (const Edge& e : n.out)
          out->push_back(absl::StrCat(narrator_.Label(e.peer_ref()), " detaches from the hook of ",
                                      narrator_.Label(ref)));
        continue;
      }
      std::string tail = ref == subject_ ? (ref.kind == NodeKind::kMap ? " with its contents" : "")
                                         : ": nothing else holds it";
      out->push_back(absl::StrCat(narrator_.Label(ref), EntryNote(ref), " will be freed", tail));
    }
  }

  // Nothing changes: say why, for the objects that lost a reference.
  void ReportNothing(const std::vector<NodeRef>& lost, std::vector<std::string>* out) const {
    Liveness is(after_);
    for (NodeRef ref : lost) {
      const NodeData* n = after_.Find(ref);
      if (!n) continue;
      std::string label = narrator_.Label(ref);
      if (ref.kind == NodeKind::kMap && IsProgArrayType(n->type)) {
        if (Liveness(before_).Slots(*before_.Find(ref)).empty()) {
          out->push_back(absl::StrCat("nothing: ", label, " has no entries"));
        } else {
          out->push_back(absl::StrCat("nothing: ", label, " keeps its entries: ", Holders(*n)));
        }
      } else if (ref.kind == NodeKind::kMap) {
        std::vector<std::string> users;
        for (const Edge& e : n->in)
          if (e.kind == EdgeKind::kUsesMap && is.Live(e.peer_ref())) users.push_back(narrator_.ShortLabel(e.peer_ref()));
        out->push_back(absl::StrCat(
            "nothing for programs: ", label, " stays alive (",
            users.empty() ? Holders(*n) : absl::StrCat("used by ", absl::StrJoin(users, ", ")),
            "); ", subject_.kind == NodeKind::kPin ? "only the pin goes" : "this process only loses access to it"));
      } else {
        out->push_back(absl::StrCat("nothing: ", label, " is still held (see Explain): ", Holders(*n)));
      }
    }
    if (out->empty()) out->push_back("nothing: no object loses a reference");
  }

  // The user references left on `n` in the copy, in words.
  std::string Holders(const NodeData& n) const {
    std::vector<std::string> parts;
    if (n.handles > 0) parts.push_back(absl::StrCat(n.handles, " tether handle(s)"));
    if (n.kept_fd >= 0) parts.push_back("a KeepAlive fd");
    if (n.deferred_fd >= 0) parts.push_back("a deferred fd");
    for (const std::string& h : n.holders()) parts.push_back(absl::StrCat("an fd in ", h));
    for (const Edge& e : n.in) {
      const NodeData* from = e.peer;
      if (!from) continue;
      if (e.kind == EdgeKind::kPinHolds) parts.push_back(absl::StrCat("pinned at ", from->name));
      if (e.kind == EdgeKind::kLinkHolds) parts.push_back(absl::StrCat("held by ", narrator_.Label(e.peer_ref())));
      if (e.kind == EdgeKind::kTailCall)
        parts.push_back(absl::StrCat("entry [", e.slot, "] of ", narrator_.Label(e.peer_ref())));
    }
    for (const std::string& h : n.legacy_hooks()) parts.push_back(absl::StrCat("legacy hook ", h));
    if (parts.empty()) parts.push_back("held by programs that use it");
    return absl::StrJoin(parts, ", ");
  }

  const Store& before_;
  Narrator narrator_;
  NodeRef subject_;
  Removal how_;
  GraphState scratch_;
  LockedStore after_;
  std::vector<NodeRef> cleared_;
};

}  // namespace

std::vector<std::string> WhatBreaksOf(const Store& store, NodeRef ref, Removal how) {
  return BreakAnalysis(store, ref, how).Run();
}

}  // namespace tether::detail

namespace tether {

namespace {
std::vector<std::string> Answer(detail::GraphState* state, NodeRef ref, detail::Removal how) {
  detail::LockedStore store(*state);
  if (!store.Find(ref)) {
    return {absl::StrCat(NodeKindName(ref.kind), " ", ref.id, " is not in tether's graph")};
  }
  return detail::WhatBreaksOf(store, ref, how);
}
}  // namespace

std::vector<std::string> ObjectGraph::WhatBreaks(NodeRef ref) const {
  return Answer(state_, ref, detail::Removal::kProcessRefs);
}

std::vector<std::string> ObjectGraph::WhatBreaksIfUnreferenced(NodeRef ref) const {
  return Answer(state_, ref, detail::Removal::kAllUserRefs);
}

}  // namespace tether
