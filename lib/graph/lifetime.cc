// The lifetime policies (lifetime.h): what happens when the last user
// reference of a program array that programs still tail-call through is
// about to go. The graph decides; the map handle applies the verdict.
#include <unistd.h>

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "graph/explain.h"
#include "graph/graph_internal.h"
#include "graph/liveness.h"
#include "graph/store.h"
#include "tether/graph.h"
#include "tether/lifetime.h"

namespace tether {

const char* LifetimePolicyName(LifetimePolicy policy) {
  switch (policy) {
    case LifetimePolicy::kDefault: return "default";
    case LifetimePolicy::kWarn: return "warn";
    case LifetimePolicy::kKeepAlive: return "keep_alive";
    case LifetimePolicy::kPin: return "pin";
    case LifetimePolicy::kIgnore: return "ignore";
  }
  return "?";
}

void SetDiagnosticSink(DiagnosticSink sink) {
  detail::MutexLock lock(&detail::State().sink_mu);
  detail::State().sink = std::move(sink);
}

void ObjectGraph::SetDefaultPolicy(LifetimePolicy policy) {
  if (policy == LifetimePolicy::kDefault) policy = LifetimePolicy::kWarn;
  detail::LockedStore store(*state_);
  store.state().default_policy = policy;
}

LifetimePolicy ObjectGraph::default_policy() const {
  detail::LockedStore store(*state_);
  return store.state().default_policy;
}

void ObjectGraph::SetPinDirectory(const std::string& dir) {
  detail::LockedStore store(*state_);
  store.state().pin_dir = dir;
}

std::string ObjectGraph::pin_directory() const {
  detail::LockedStore store(*state_);
  return store.state().pin_dir;
}

size_t ObjectGraph::ReleaseKept() {
  std::vector<int> fds;
  {
    detail::LockedStore store(*state_);
    std::vector<NodeRef> released;
    for (auto& [ref, n] : store.state().nodes) {
      if (n.kept_fd >= 0) {
        fds.push_back(n.kept_fd);
        n.kept_fd = -1;
        n.node.kept_alive = false;
        released.push_back(ref);
      }
    }
    for (NodeRef ref : released) {
      detail::ClearIfLastUserRefGone(store, ref);
      store.Collect(ref);
    }
  }
  for (int fd : fds) close(fd);
  return fds.size();
}

namespace detail {
namespace {

// The node's name comes from whoever created the map (an object file's
// symbol, perhaps longer than the kernel's 15 bytes and unchecked beyond
// them): keep letters, digits and '_' so the pin lands in the pin
// directory itself, whatever the name holds.
std::string PinSafeName(const std::string& name) {
  std::string out = name.empty() ? "prog_array" : name;
  for (char& c : out) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') c = '_';
  }
  return out;
}

// What the orphaned array's diagnostic says whatever the policy.
Diagnostic DescribeOrphan(const Narrator& narrator, const Liveness& live, const NodeData& array,
                          const std::vector<NodeRef>& users) {
  Diagnostic d;
  d.map_name = array.node.name;
  d.map_id = array.node.ref.id;
  d.entries = live.Slots(array).size();
  for (NodeRef u : users) d.programs.push_back(narrator.ShortLabel(u));
  return d;
}

void KeepFd(NodeData& array, int fd) {
  array.kept_fd = fd;
  array.node.kept_alive = true;
}

// The array's user references are settled: the kernel rule applies, and
// the array leaves the graph if nothing holds it.
void FinishRelease(Store& store, NodeRef array) {
  ClearIfLastUserRefGone(store, array);
  store.Collect(array);
}

}  // namespace

void DeliverDiagnostic(const Diagnostic& diagnostic) {
  DiagnosticSink sink;
  {
    MutexLock lock(&State().sink_mu);
    sink = State().sink;
  }
  if (sink) {
    sink(diagnostic);
  } else {
    fprintf(stderr, "%s\n", diagnostic.message.c_str());
  }
}

absl::Status GraphCheckLastRelease(uint32_t map_id) {
  LockedStore store(State());
  const NodeData* n = store.Find(NodeRef{NodeKind::kMap, map_id});
  if (!n || n->node.handles > 1) return absl::OkStatus();
  std::vector<NodeRef> users;
  if (!Liveness(store).OrphanHazard(*n, &users)) return absl::OkStatus();
  return absl::FailedPreconditionError(Narrator(store).HazardMessage(*n, users, "close refused"));
}

MapReleaseVerdict GraphOnMapReleased(uint32_t map_id, int fd, LifetimePolicy map_policy) {
  MapReleaseVerdict verdict;
  LockedStore store(State());
  NodeRef ref{NodeKind::kMap, map_id};
  NodeData* n = store.Find(ref);
  if (!n) return verdict;
  if (n->node.handles > 0) n->node.handles--;
  if (n->node.handles > 0) return verdict;

  Liveness live(store);
  Narrator narrator(store);
  std::vector<NodeRef> users;
  if (live.OrphanHazard(*n, &users)) {
    LifetimePolicy policy = map_policy;
    if (policy == LifetimePolicy::kDefault) policy = store.state().default_policy;
    Diagnostic d = DescribeOrphan(narrator, live, *n, users);
    switch (policy) {
      case LifetimePolicy::kDefault:
      case LifetimePolicy::kWarn:
        d.kind = Diagnostic::Kind::kProgramArrayOrphaned;
        d.message = narrator.HazardMessage(*n, users, "warning");
        verdict.diagnostic = std::move(d);
        break;
      case LifetimePolicy::kKeepAlive:
        KeepFd(*n, fd);
        verdict.action = MapReleaseVerdict::Action::kKeepAlive;
        break;  // no entries are lost, nothing to say
      case LifetimePolicy::kPin:
        verdict.action = MapReleaseVerdict::Action::kPin;
        verdict.pin_path = absl::StrFormat("%s/%s_%u", store.state().pin_dir,
                                           PinSafeName(n->node.name), ref.id);
        verdict.diagnostic = std::move(d);
        // The array keeps its entries until GraphOnPolicyPin hears how the
        // pin went: pinning is a syscall, made without the graph's lock.
        return verdict;
      case LifetimePolicy::kIgnore:
        break;
    }
  }
  FinishRelease(store, ref);
  return verdict;
}

MapReleaseVerdict GraphOnPolicyPin(uint32_t map_id, int fd, MapReleaseVerdict verdict,
                                   const absl::Status& pinned) {
  LockedStore store(State());
  NodeRef ref{NodeKind::kMap, map_id};
  Diagnostic& d = *verdict.diagnostic;
  if (pinned.ok()) {
    NodeRef pin = store.PinNode(verdict.pin_path);
    store.Ensure(pin).node.name = verdict.pin_path;
    store.AddEdge(pin, ref, EdgeKind::kPinHolds, 0);
    verdict.action = MapReleaseVerdict::Action::kClose;
    d.kind = Diagnostic::Kind::kProgramArrayPinned;
    d.pin_path = verdict.pin_path;
    d.message = absl::StrFormat(
        "tether: program array '%s' (id %u) lost its last handle; pinned it at %s "
        "(LifetimePolicy::kPin) so its tail calls keep working",
        d.map_name, ref.id, verdict.pin_path);
  } else {
    KeepFd(store.Ensure(ref), fd);
    verdict.action = MapReleaseVerdict::Action::kKeepAlive;
    d.kind = Diagnostic::Kind::kPolicyFailed;
    d.message = absl::StrCat("tether: program array '", d.map_name, "' (id ", ref.id,
                             "): the Pin policy failed (", pinned.message(),
                             "); keeping it alive instead until ReleaseKept()");
  }
  FinishRelease(store, ref);
  return verdict;
}

}  // namespace detail
}  // namespace tether
