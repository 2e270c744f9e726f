// The lifetime policies (lifetime.h): what happens when the last user
// reference of a program array that programs still tail-call through is
// about to go. The graph decides; the map handle applies the verdict.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "graph/explain.h"
#include "graph/graph_internal.h"
#include "graph/liveness.h"
#include "graph/settle.h"
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
    case LifetimePolicy::kRefuse: return "refuse";
  }
  return "?";
}

const char* DiagnosticKindName(Diagnostic::Kind kind) {
  switch (kind) {
    case Diagnostic::Kind::kProgramArrayOrphaned: return "program_array_orphaned";
    case Diagnostic::Kind::kProgramArrayKept: return "program_array_kept";
    case Diagnostic::Kind::kProgramArrayPinned: return "program_array_pinned";
    case Diagnostic::Kind::kPolicyFailed: return "policy_failed";
    case Diagnostic::Kind::kProgramArrayRefused: return "program_array_refused";
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
  detail::Aftermath after;
  size_t released = 0;
  {
    detail::LockedStore store(*state_);
    std::vector<NodeRef> kept;
    for (auto& [ref, n] : store.state().nodes)
      if (n.kept_fd >= 0) kept.push_back(ref);
    for (NodeRef ref : kept) {
      detail::NodeData& n = *store.Find(ref);
      after.close_fds.push_back(n.kept_fd);
      n.kept_fd = -1;
      ++released;
      // Releasing a kept array is a last reference like any other: if
      // programs still tail-call through it, say so.
      std::vector<NodeRef> users;
      if (n.handles == 0 && detail::Liveness(store).OrphanHazard(n, &users)) {
        Diagnostic d;
        detail::ReportOrphan(store, n, users, LifetimePolicy::kWarn, false, &d);
        d.message += "\n  (released by graph().ReleaseKept())";
        after.diagnostics.push_back(std::move(d));
      }
      detail::ClearIfLastUserRefGone(store, ref);
      store.Collect(ref);
    }
  }
  after.Run();
  return released;
}

size_t ObjectGraph::SettleDeferred() {
  detail::Aftermath after;
  {
    detail::LockedStore store(*state_);
    detail::SettleDeferred(store, /*force=*/true, &after);
  }
  after.Run();
  return after.settled;
}

void ObjectGraph::SetAbortOnRefusal(bool abort_on_refusal) {
  detail::LockedStore store(*state_);
  store.state().abort_on_refusal = abort_on_refusal;
}

bool ObjectGraph::abort_on_refusal() const {
  detail::LockedStore store(*state_);
  return store.state().abort_on_refusal;
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
  d.map_name = array.name;
  d.map_id = array.ref.id;
  d.entries = live.Slots(array).size();
  for (NodeRef u : users) d.programs.push_back(narrator.ShortLabel(u));
  return d;
}

void KeepFd(NodeData& array, int fd) {
  array.kept_fd = fd;
}

// The array's user references are settled: the kernel rule applies, and
// the array leaves the graph if nothing holds it.
void FinishRelease(Store& store, NodeRef array) {
  ClearIfLastUserRefGone(store, array);
  store.Collect(array);
}

// The users among `users` that outlive this process's handles: a pin, a
// link that is pinned, a legacy hook, an entry in an array that is pinned.
std::vector<NodeRef> UsersOutsideProcess(const Store& store, NodeRef array,
                                         const std::vector<NodeRef>& users) {
  Liveness outside(store, Liveness::Count::kOutsideProcess);
  std::vector<NodeRef> out;
  for (NodeRef u : users)
    if (outside.Live(u, array)) out.push_back(u);
  return out;
}

void Defer(Store& store, NodeData& array, int fd, LifetimePolicy policy) {
  array.deferred_fd = fd;
  array.deferred_policy = policy;
  store.state().deferred_count++;
}

int Undefer(Store& store, NodeData& array) {
  int fd = array.deferred_fd;
  array.deferred_fd = -1;
  store.state().deferred_count--;
  return fd;
}

Diagnostic KeptDiagnostic(const Narrator& narrator, const Liveness& live, const NodeData& array,
                          const std::vector<NodeRef>& users) {
  Diagnostic d = DescribeOrphan(narrator, live, array, users);
  d.kind = Diagnostic::Kind::kProgramArrayKept;
  d.message = absl::StrFormat(
      "tether: program array '%s' (id %u) lost its last handle; LifetimePolicy::kKeepAlive "
      "keeps its fd so that tail calls from %s keep working, until graph().ReleaseKept() or "
      "the process exits",
      d.map_name, d.map_id, absl::StrJoin(d.programs, ", "));
  return d;
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

void DeliverVerdict(const MapReleaseVerdict& verdict) {
  if (verdict.diagnostic) DeliverDiagnostic(*verdict.diagnostic);
  if (verdict.abort) {
    // Loud on purpose: the Refuse policy calls this a programming error.
    fprintf(stderr, "%s\ntether: aborting (LifetimePolicy::kRefuse; "
            "graph().SetAbortOnRefusal(false) turns this off)\n",
            verdict.diagnostic ? verdict.diagnostic->message.c_str() : "");
    fflush(stderr);
    abort();
  }
}

void Aftermath::Run() {
  for (const Diagnostic& d : diagnostics) DeliverDiagnostic(d);
  for (int fd : close_fds) close(fd);
  if (abort) {
    MapReleaseVerdict v;
    v.abort = true;
    if (!diagnostics.empty()) v.diagnostic = diagnostics.back();
    DeliverVerdict(v);
  }
}

bool ReportOrphan(Store& store, NodeData& array, const std::vector<NodeRef>& users,
                  LifetimePolicy policy, bool deferred, Diagnostic* d) {
  Liveness live(store);
  Narrator narrator(store);
  *d = DescribeOrphan(narrator, live, array, users);
  absl::string_view when = deferred ? "went earlier" : "is going";
  if (policy == LifetimePolicy::kRefuse) {
    d->kind = Diagnostic::Kind::kProgramArrayRefused;
    d->message = absl::StrCat(
        narrator.HazardMessage(array, users, "error", when),
        "\n  LifetimePolicy::kRefuse: this is a programming error. tether keeps the array's fd "
        "(until graph().ReleaseKept()) so the tail calls keep working.");
    return true;
  }
  d->kind = Diagnostic::Kind::kProgramArrayOrphaned;
  d->message = narrator.HazardMessage(array, users, "warning", when);
  if (deferred)
    absl::StrAppend(&d->message,
                    "\n  (tether held the array while those programs lived only on this "
                    "process's handles; one of them is now held beyond them)");
  return false;
}

void SettleDeferred(Store& store, bool force, Aftermath* out) {
  if (store.state().deferred_count == 0) return;
  std::vector<NodeRef> deferred;
  for (const auto& [ref, n] : store.state().nodes)
    if (n.deferred_fd >= 0) deferred.push_back(ref);
  for (NodeRef ref : deferred) {
    NodeData* n = store.Find(ref);
    if (!n || n->deferred_fd < 0) continue;
    // Users kept alive by another deferred array do not count: two arrays
    // waiting on each other's programs would otherwise wait forever.
    std::vector<NodeRef> users;
    for (NodeRef u : Liveness(store, Liveness::Count::kNoDeferred).LiveUsers(ref))
      users.push_back(u);
    if (!users.empty() && !force && UsersOutsideProcess(store, ref, users).empty()) continue;
    LifetimePolicy policy = n->deferred_policy;
    int fd = Undefer(store, *n);
    out->settled++;
    if (!users.empty()) {
      Diagnostic d;
      if (ReportOrphan(store, *n, users, policy, true, &d)) {
        KeepFd(*n, fd);
        fd = -1;
        out->abort = out->abort || store.state().abort_on_refusal;
      }
      out->diagnostics.push_back(std::move(d));
    }
    if (fd >= 0) out->close_fds.push_back(fd);
    FinishRelease(store, ref);
  }
}

absl::Status GraphCheckLastRelease(uint32_t map_id, LifetimePolicy map_policy, bool force) {
  LockedStore store(State());
  const NodeData* n = store.Find(NodeRef{NodeKind::kMap, map_id});
  if (!n || n->handles > 1) return absl::OkStatus();
  LifetimePolicy policy =
      map_policy == LifetimePolicy::kDefault ? store.state().default_policy : map_policy;
  if (force && policy != LifetimePolicy::kRefuse) return absl::OkStatus();
  std::vector<NodeRef> users;
  if (!Liveness(store).OrphanHazard(*n, &users)) return absl::OkStatus();
  std::string message = Narrator(store).HazardMessage(*n, users, "close refused", "would go");
  if (force)
    absl::StrAppend(&message,
                    "\n  LifetimePolicy::kRefuse refuses even a forced close: change the "
                    "array's policy (Map::SetLifetimePolicy) first.");
  return absl::FailedPreconditionError(message);
}

MapReleaseVerdict GraphOnMapReleased(uint32_t map_id, int fd, LifetimePolicy map_policy,
                                     bool forced) {
  MapReleaseVerdict verdict;
  Aftermath after;
  {
    LockedStore store(State());
    NodeRef ref{NodeKind::kMap, map_id};
    NodeData* n = store.Find(ref);
    if (!n) return verdict;
    if (n->handles > 0) n->handles--;
    if (n->handles > 0) return verdict;
    verdict = DecideRelease(store, *n, fd, map_policy, forced);
    // This map's going may be what some deferred array waited for.
    SettleDeferred(store, false, &after);
  }
  after.Run();
  return verdict;
}

MapReleaseVerdict DecideRelease(Store& store, NodeData& n, int fd, LifetimePolicy map_policy,
                                bool forced) {
  MapReleaseVerdict verdict;
  NodeRef ref = n.ref;
  Liveness live(store);
  Narrator narrator(store);
  std::vector<NodeRef> users;
  if (live.OrphanHazard(n, &users)) {
    LifetimePolicy policy = map_policy;
    if (policy == LifetimePolicy::kDefault) policy = store.state().default_policy;
    bool reports = policy == LifetimePolicy::kWarn || policy == LifetimePolicy::kRefuse ||
                   policy == LifetimePolicy::kDefault;
    if (reports && !forced && UsersOutsideProcess(store, ref, users).empty()) {
      // Every program that tail-calls through the array lives only on
      // handles of this process, which may be going too (the end of a
      // scope destroys in reverse order). Hold the fd and decide later.
      Defer(store, n, fd, policy == LifetimePolicy::kRefuse ? policy : LifetimePolicy::kWarn);
      verdict.action = MapReleaseVerdict::Action::kKeepAlive;
      return verdict;
    }
    switch (policy) {
      case LifetimePolicy::kDefault:
      case LifetimePolicy::kWarn:
      case LifetimePolicy::kRefuse: {
        Diagnostic d;
        if (ReportOrphan(store, n, users, policy, false, &d)) {
          KeepFd(n, fd);
          verdict.action = MapReleaseVerdict::Action::kKeepAlive;
          verdict.abort = store.state().abort_on_refusal;
        }
        verdict.diagnostic = std::move(d);
        break;
      }
      case LifetimePolicy::kKeepAlive:
        KeepFd(n, fd);
        verdict.action = MapReleaseVerdict::Action::kKeepAlive;
        verdict.diagnostic = KeptDiagnostic(narrator, live, n, users);
        break;
      case LifetimePolicy::kPin:
        verdict.action = MapReleaseVerdict::Action::kPin;
        verdict.pin_path = absl::StrFormat("%s/%s_%u", store.state().pin_dir,
                                           PinSafeName(n.name), ref.id);
        verdict.diagnostic = DescribeOrphan(narrator, live, n, users);
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
    store.Ensure(pin).name = verdict.pin_path;
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
