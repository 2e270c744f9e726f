#include "tether/system_graph.h"

#include <dirent.h>
#include <net/if.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "base/status_macros.h"
#include "btf/kernel_btf.h"
#include "graph/explain.h"
#include "inspect/scan_internal.h"
#include "load/miss_counters.h"
#include "sys/bpf.h"
#include "tether/pin.h"

namespace tether {
namespace {

using inspect::FdHolder;
using sys::ObjectKind;

std::vector<uint32_t> AllIds(ObjectKind kind) {
  std::vector<uint32_t> ids;
  uint32_t id = 0;
  while (sys::GetNextId(kind, id, &id) == 0) ids.push_back(id);
  return ids;
}

std::string IfName(uint32_t ifindex) {
  char name[IF_NAMESIZE] = {0};
  if (if_indextoname(ifindex, name)) return name;
  return absl::StrCat("ifindex ", ifindex);
}

// tcx's info (6.6) and sockmap's (6.10) are not in every uapi header: the
// ifindex (sockmap: the map id), then the attach type, where xdp's ifindex is.
uint32_t TcxAttachType(const bpf_link_info& info) {
  uint32_t words[2];
  memcpy(words, &info.xdp, sizeof(words));
  return words[1];
}

std::string LinkTarget(const bpf_link_info& info) {
  switch (info.type) {
    case BPF_LINK_TYPE_XDP:
      return absl::StrCat("xdp on ", IfName(info.xdp.ifindex));
    case sys::uapi::kLinkTypeTcx:
      return absl::StrCat("tcx on ", IfName(info.xdp.ifindex));
    case BPF_LINK_TYPE_CGROUP:
      return absl::StrFormat("cgroup id %u, attach type %u", info.cgroup.cgroup_id,
                             info.cgroup.attach_type);
    case BPF_LINK_TYPE_TRACING:
      return absl::StrFormat("tracing, target btf id %u (object %u), attach type %u",
                             info.tracing.target_btf_id, info.tracing.target_obj_id,
                             info.tracing.attach_type);
    case BPF_LINK_TYPE_RAW_TRACEPOINT:
      return "raw tracepoint";
    case BPF_LINK_TYPE_NETNS:
      return absl::StrFormat("netns inode %u, attach type %u", info.netns.netns_ino,
                             info.netns.attach_type);
    case BPF_LINK_TYPE_ITER:
      return "iterator";
    case BPF_LINK_TYPE_PERF_EVENT:
      return "perf event";
    case BPF_LINK_TYPE_KPROBE_MULTI:
      return "kprobe.multi";
    case BPF_LINK_TYPE_STRUCT_OPS:
      return "struct_ops";
    default:
      return absl::StrCat("link type ", info.type);
  }
}

void WalkPins(const std::string& dir, int depth, std::vector<std::string>* out) {
  if (depth > 16) return;
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string path = dir + "/" + name;
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      WalkPins(path, depth + 1, out);
    } else if (S_ISREG(st.st_mode)) {
      out->push_back(path);
    }
  }
  closedir(d);
}

// "[0..3, 7]", worded as the graph's own messages word slots.
std::string SlotList(std::vector<uint32_t> slots) {
  std::sort(slots.begin(), slots.end());
  return detail::Narrator::FormatSlots(slots);
}

// One scan of the whole system. Order matters: the fd holders and the pins
// come first, because they decide which program arrays may be opened by
// id at all. Closing an fd opened by id on an array that nobody else holds
// drops its last user reference, and if the kernel's deferred clear of it
// is still queued, the array leaks (docs/repro/prog_array_reopen_leak.c).
// So an array is opened only while someone else holds it; one that nobody
// holds is known from the code of the programs that tail-call through it.
class SystemScan {
 public:
  explicit SystemScan(const SystemScanOptions& options) : options_(options) {}

  absl::StatusOr<SystemSnapshot> Run() {
    fds_ = inspect::ScanFdHolders();
    ScanPins();
    ScanPrograms();
    ScanLinks();  // before the maps: sockmap attachments made by links are theirs
    ScanMaps();
    ReadTailCallMisses();
    if (nodes.empty() && any_denied) {
      return absl::PermissionDeniedError(
          "scanning BPF objects: opening them by id needs CAP_SYS_ADMIN (run as root)");
    }
    SystemSnapshot snap;
    if (options_.hooks) {
      inspect::HookScan hooks = inspect::ScanHooks(options_, link_attachments_);
      hooks.hooks.insert(hooks.hooks.end(), sockmap_hooks_.hooks.begin(), sockmap_hooks_.hooks.end());
      hooks.limits.insert(hooks.limits.end(), sockmap_hooks_.limits.begin(), sockmap_hooks_.limits.end());
      for (const inspect::Hook& h : hooks.hooks) {
        auto it = nodes.find({NodeKind::kProgram, h.prog_id});
        if (it != nodes.end()) it->second.legacy_hooks.push_back(h.where);
      }
      snap.limits = std::move(hooks.limits);
    }
    if (!fds_.unreadable.empty()) {
      std::vector<std::string> pids;
      for (size_t i = 0; i < fds_.unreadable.size() && i < 8; ++i) pids.push_back(absl::StrCat(fds_.unreadable[i]));
      snap.limits.push_back(absl::StrFormat(
          "the fds of %d process(es) could not be read (pid %s%s): objects they hold may show "
          "fewer holders than they have",
          fds_.unreadable.size(), absl::StrJoin(pids, ", "), fds_.unreadable.size() > 8 ? ", ..." : ""));
    }
    for (auto& [key, n] : nodes) {
      auto it = fds_.holders.find(n.ref);
      if (it == fds_.holders.end()) continue;
      holders_[n.ref] = it->second;
      if (options_.fd_holders)
        for (const FdHolder& h : it->second) n.holders.push_back(h.ToString());
    }
    NoteHazards();
    snap.graph = Build();
    return snap;
  }

 private:
  // How the scan knows a map, and whether it may open it.
  enum class MapClass { kHeld, kTailCalled, kPlain };

  void ScanPins();
  void ScanPrograms();
  void ClassifyUsedMaps(int prog_fd, uint32_t xlated_len, const std::vector<uint32_t>& used);
  void ScanMaps();
  void ReadMap(uint32_t id);
  void ReadStructOps(int fd, const bpf_map_info& info, GraphNode& n);
  void ReadTailCallMisses();
  void ScanLinks();
  void NoteHazards();
  void NoteProgram(GraphNode& n);
  void NoteSingleProcessHolder(GraphNode& n);
  bool LiveWithout(NodeRef ref, int pid, absl::flat_hash_set<NodeRef>* seen) const;
  std::unique_ptr<ObjectGraph> Build();

  bool HeldByOthersOrUs(uint32_t map_id) const {
    return fds_.holders.contains({NodeKind::kMap, map_id}) || fds_.own.contains({NodeKind::kMap, map_id}) ||
           pinned_.contains({NodeKind::kMap, map_id});
  }
  std::vector<const GraphEdge*> InEdges(NodeRef r) const {
    auto it = in_edges_.find(r);
    return it == in_edges_.end() ? std::vector<const GraphEdge*>() : it->second;
  }
  std::string ShortName(NodeRef r) const {
    auto it = nodes.find({r.kind, r.id});
    std::string name = it != nodes.end() && !it->second.name.empty() ? it->second.name : "?";
    return absl::StrFormat("%s (id %u)", name, r.id);
  }

  GraphNode& node(NodeRef ref) {
    GraphNode& n = nodes[{ref.kind, ref.id}];
    n.ref = ref;
    return n;
  }

  const SystemScanOptions& options_;
  inspect::FdScan fds_;
  absl::flat_hash_set<NodeRef> pinned_;
  absl::flat_hash_map<uint32_t, MapClass> map_class_;
  absl::flat_hash_set<uint32_t> inner_maps_;
  absl::flat_hash_set<uint32_t> struct_ops_maps_;  // maps that struct_ops links hold
  inspect::LinkAttachments link_attachments_;
  inspect::HookScan sockmap_hooks_;
  absl::flat_hash_map<NodeRef, std::vector<FdHolder>> holders_;
  absl::flat_hash_map<NodeRef, std::vector<const GraphEdge*>> in_edges_;
  std::map<std::pair<NodeKind, uint32_t>, GraphNode> nodes;
  std::vector<GraphEdge> edges;
  bool any_denied = false;  // some object could not be opened: EPERM
};

// Pins under the pin root, and what each one holds. Opening a pin takes a
// user reference, but the pin stays, so closing it is never the last one.
void SystemScan::ScanPins() {
  if (!CheckOnBpffs(options_.pin_root).ok()) return;
  std::vector<std::string> pins;
  WalkPins(options_.pin_root, 0, &pins);
  uint32_t pin_id = 0;
  for (const std::string& path : pins) {
    auto fd = sys::ObjGet(path.c_str(), BPF_F_RDONLY);
    if (!fd.ok()) fd = sys::ObjGet(path.c_str(), 0);
    if (!fd.ok()) continue;
    auto kind = PinnedObjectKind(path);
    if (!kind.ok()) continue;
    NodeRef target;
    if (*kind == "map") {
      auto i = sys::GetMapInfo(fd->get());
      if (!i.ok()) continue;
      target = {NodeKind::kMap, i->id};
    } else if (*kind == "prog") {
      auto i = sys::GetProgInfo(fd->get());
      if (!i.ok()) continue;
      target = {NodeKind::kProgram, i->id};
    } else if (*kind == "link") {
      auto i = sys::GetLinkInfo(fd->get());
      if (!i.ok()) continue;
      target = {NodeKind::kLink, i->id};
    } else {
      continue;
    }
    NodeRef pin{NodeKind::kPin, ++pin_id};
    node(pin).name = path;
    pinned_.insert(target);
    edges.push_back({pin, target, EdgeKind::kPinHolds, 0});
  }
}

// Programs, and the maps each one uses.
void SystemScan::ScanPrograms() {
  std::vector<uint32_t> map_ids;
  for (uint32_t id : AllIds(ObjectKind::kProgram)) {
    auto fd = sys::GetFdById(ObjectKind::kProgram, id);
    if (!fd.ok()) {
      any_denied |= sys::StatusErrno(fd.status()) == EPERM;
      continue;  // freed meanwhile
    }
    auto info = sys::GetProgInfoAndMapIds(fd->get(), &map_ids);
    if (!info.ok()) continue;
    GraphNode& n = node({NodeKind::kProgram, id});
    n.name = std::string(info->name, strnlen(info->name, sizeof(info->name)));
    n.type = info->type;
    for (uint32_t m : map_ids)
      edges.push_back({{NodeKind::kProgram, id}, {NodeKind::kMap, m}, EdgeKind::kUsesMap, 0});
    ClassifyUsedMaps(fd->get(), info->xlated_prog_len, map_ids);
  }
}

// A map that a program uses and that nobody holds may be a program array
// that has just lost its last user reference. The program's code says
// whether it tail-calls through it; only the other maps may be opened.
void SystemScan::ClassifyUsedMaps(int prog_fd, uint32_t xlated_len,
                                  const std::vector<uint32_t>& used) {
  std::vector<uint32_t> unknown;
  for (uint32_t m : used) {
    if (HeldByOthersOrUs(m)) {
      map_class_[m] = MapClass::kHeld;
    } else if (!map_class_.contains(m) || map_class_[m] == MapClass::kPlain) {
      unknown.push_back(m);
    }
  }
  if (unknown.empty()) return;
  auto tail_called = inspect::TailCallMapIds(prog_fd, xlated_len);
  for (uint32_t m : unknown) {
    bool tail = !tail_called.ok() ||
                std::find(tail_called->begin(), tail_called->end(), m) != tail_called->end();
    // Without the code, the safe guess: do not open it.
    map_class_[m] = tail ? MapClass::kTailCalled : MapClass::kPlain;
  }
}

// Maps. Those someone holds, and those known not to be program arrays, are
// opened and read; a program array that nobody holds is not (see above):
// it is cleared or about to be, and its name is not known.
void SystemScan::ScanMaps() {
  std::vector<uint32_t> later;
  for (uint32_t id : AllIds(ObjectKind::kMap)) {
    auto c = map_class_.find(id);
    if (HeldByOthersOrUs(id) || (c != map_class_.end() && c->second == MapClass::kPlain)) {
      ReadMap(id);
    } else {
      later.push_back(id);
    }
  }
  // Inner maps were found through the outer maps read above; an inner map
  // is never a program array (the kernel refuses them as inner maps).
  for (uint32_t id : later) {
    auto c = map_class_.find(id);
    if (inner_maps_.contains(id) || struct_ops_maps_.contains(id)) {
      ReadMap(id);
    } else if (c != map_class_.end() && c->second == MapClass::kTailCalled) {
      GraphNode& n = node({NodeKind::kMap, id});
      n.type = BPF_MAP_TYPE_PROG_ARRAY;
    } else {
      node({NodeKind::kMap, id});  // type unknown: not opened
    }
  }
}

// One map by id, and what a program array or map of maps holds.
void SystemScan::ReadMap(uint32_t id) {
  auto fd = sys::GetFdById(ObjectKind::kMap, id);
  if (!fd.ok()) {
    any_denied |= sys::StatusErrno(fd.status()) == EPERM;
    return;
  }
  auto info = sys::GetMapInfo(fd->get());
  if (!info.ok()) return;
  GraphNode& n = node({NodeKind::kMap, id});
  n.name = std::string(info->name, strnlen(info->name, sizeof(info->name)));
  n.type = info->type;
  NodeRef me{NodeKind::kMap, id};
  if (info->type == BPF_MAP_TYPE_PROG_ARRAY || info->type == BPF_MAP_TYPE_ARRAY_OF_MAPS) {
    // A user-space lookup on these yields the id of what the slot holds.
    bool progs = info->type == BPF_MAP_TYPE_PROG_ARRAY;
    for (uint32_t i = 0; i < info->max_entries; ++i) {
      uint32_t held = 0;
      if (sys::MapLookupElem(fd->get(), &i, &held, 0) != 0) continue;
      if (!progs) inner_maps_.insert(held);
      edges.push_back({me, {progs ? NodeKind::kProgram : NodeKind::kMap, held},
                       progs ? EdgeKind::kTailCall : EdgeKind::kInnerMap, i});
    }
  } else if ((info->type == BPF_MAP_TYPE_SOCKMAP || info->type == BPF_MAP_TYPE_SOCKHASH) &&
             options_.hooks) {
    inspect::ScanSockmapHooks(fd->get(), id, n.name, link_attachments_, &sockmap_hooks_);
  } else if (info->type == BPF_MAP_TYPE_STRUCT_OPS) {
    ReadStructOps(fd->get(), *info, n);
  } else if (info->type == BPF_MAP_TYPE_HASH_OF_MAPS) {
    std::vector<uint8_t> key(info->key_size), next(info->key_size);
    const void* prev = nullptr;
    for (uint32_t ordinal = 0; ordinal < info->max_entries; ++ordinal) {
      if (sys::MapGetNextKey(fd->get(), prev, next.data()) != 0) break;
      uint32_t inner = 0;
      if (sys::MapLookupElem(fd->get(), next.data(), &inner, 0) == 0) {
        inner_maps_.insert(inner);
        edges.push_back({me, {NodeKind::kMap, inner}, EdgeKind::kInnerMap, ordinal});
      }
      key = next;
      prev = key.data();
    }
  }
}

// A struct_ops map's value as user space reads it: a state word after the
// refcount (1, INUSE: registered by a map update), and in each function
// pointer member the id of the program there.
void SystemScan::ReadStructOps(int fd, const bpf_map_info& info, GraphNode& n) {
  auto kernel = KernelBtf();
  if (!kernel.ok()) return;
  const Btf& btf = **kernel;
  auto data = btf.FindMember(info.btf_vmlinux_value_type_id, "data");
  std::vector<uint8_t> value(info.value_size);
  uint32_t zero = 0;
  if (!data.ok() || value.size() < 8 || sys::MapLookupElem(fd, &zero, value.data(), 0) != 0) return;
  const BtfType* ops = btf.TypeById(btf.SkipQualifiers(data->type));
  if (ops == nullptr || !ops->is_composite()) return;
  absl::Span<const BtfMember> members = btf.Members(*ops);
  for (uint32_t i = 0; i < members.size(); ++i) {
    const BtfType* ptr = btf.TypeById(btf.SkipQualifiers(members[i].type));
    if (ptr == nullptr || ptr->kind != BtfKind::kPtr) continue;
    const BtfType* proto = btf.TypeById(btf.SkipQualifiers(ptr->type()));
    size_t off = data->bit_offset / 8 + members[i].bit_offset / 8;
    if (proto == nullptr || proto->kind != BtfKind::kFuncProto || off + 8 > value.size()) continue;
    uint64_t prog_id = 0;
    memcpy(&prog_id, value.data() + off, sizeof(prog_id));
    if (prog_id != 0 && prog_id <= UINT32_MAX)
      edges.push_back({n.ref, {NodeKind::kProgram, static_cast<uint32_t>(prog_id)},
                       EdgeKind::kStructOps, i});
  }
  uint32_t state = 0;
  memcpy(&state, value.data() + 4, sizeof(state));
  constexpr uint32_t kStateInUse = 1;
  if (state == kStateInUse && (info.map_flags & sys::uapi::kMapFLink) == 0)
    n.legacy_hooks.push_back("struct_ops registration (map update): the kernel holds it until "
                             "it is deleted");
}

// The miss counts of programs loaded with tether's tail-call counters: a
// program that uses a counter map gets its sites read from its code and the
// map's BTF. A program whose table cannot be read is noted, not fatal.
void SystemScan::ReadTailCallMisses() {
  absl::flat_hash_set<uint32_t> with_counters;
  for (const GraphEdge& e : edges) {
    if (e.kind != EdgeKind::kUsesMap) continue;
    auto m = nodes.find({NodeKind::kMap, e.to.id});
    if (m != nodes.end() && m->second.type == BPF_MAP_TYPE_ARRAY &&
        m->second.name == detail::kMissCounterMapName)
      with_counters.insert(e.from.id);
  }
  for (uint32_t id : with_counters) {
    auto fd = sys::GetFdById(ObjectKind::kProgram, id);
    if (!fd.ok()) continue;  // freed meanwhile
    auto sites = detail::ReadProgramMisses(fd->get());
    GraphNode& n = node({NodeKind::kProgram, id});
    if (!sites.ok()) {
      n.notes.push_back(absl::StrCat("its tail-call miss counters cannot be read: ",
                                     sites.status().message()));
      continue;
    }
    n.tail_call_sites = *std::move(sites);
  }
}

// Links, the program each one holds, and the attachment each one made.
void SystemScan::ScanLinks() {
  for (uint32_t id : AllIds(ObjectKind::kLink)) {
    auto fd = sys::GetFdById(ObjectKind::kLink, id);
    if (!fd.ok()) continue;
    auto info = sys::GetLinkInfo(fd->get());
    if (!info.ok()) continue;
    GraphNode& n = node({NodeKind::kLink, id});
    n.name = LinkTarget(*info);
    if (info->type == BPF_LINK_TYPE_RAW_TRACEPOINT) {
      auto tp = sys::GetRawTracepointLinkName(fd->get());
      if (tp.ok() && !tp->empty()) absl::StrAppend(&n.name, " ", *tp);
    }
    n.type = info->type;
    if (info->type == BPF_LINK_TYPE_XDP)
      link_attachments_.insert(inspect::LinkAttachmentKey("xdp", info->xdp.ifindex, 0, info->prog_id));
    if (info->type == sys::uapi::kLinkTypeTcx)
      link_attachments_.insert(inspect::LinkAttachmentKey("tcx", info->xdp.ifindex,
                                                          TcxAttachType(*info), info->prog_id));
    if (info->type == sys::uapi::kLinkTypeSockmap)  // map id, then attach type
      link_attachments_.insert(inspect::LinkAttachmentKey("sockmap", info->xdp.ifindex,
                                                          TcxAttachType(*info), info->prog_id));
    if (info->type == BPF_LINK_TYPE_NETNS)
      link_attachments_.insert(inspect::LinkAttachmentKey(
          "netns", info->netns.netns_ino, info->netns.attach_type, info->prog_id));
    if (info->type == BPF_LINK_TYPE_CGROUP)
      link_attachments_.insert(inspect::LinkAttachmentKey(
          "cgroup", info->cgroup.cgroup_id, info->cgroup.attach_type, info->prog_id));
    if (info->prog_id)
      edges.push_back({{NodeKind::kLink, id}, {NodeKind::kProgram, info->prog_id}, EdgeKind::kLinkHolds, 0});
    // A struct_ops link holds a map: link_info's struct_ops.map_id opens the union.
    if (info->type == BPF_LINK_TYPE_STRUCT_OPS && info->xdp.ifindex != 0) {
      struct_ops_maps_.insert(info->xdp.ifindex);
      edges.push_back({{NodeKind::kLink, id}, {NodeKind::kMap, info->xdp.ifindex}, EdgeKind::kLinkHolds, 0});
    }
  }
}

}  // namespace

namespace {

// Whether `ref` stays alive once process `pid` is gone: another process's
// fd, a pin, a hook, a link or an array that outlives it holds it.
bool SystemScan::LiveWithout(NodeRef ref, int pid, absl::flat_hash_set<NodeRef>* seen) const {
  if (!seen->insert(ref).second) return false;
  auto n = nodes.find({ref.kind, ref.id});
  if (n == nodes.end()) return false;
  if (!n->second.legacy_hooks.empty() || pinned_.contains(ref)) return true;
  auto h = holders_.find(ref);
  if (h != holders_.end())
    for (const FdHolder& f : h->second)
      if (f.pid != pid) return true;
  for (const GraphEdge* e : InEdges(ref)) {
    if (e->kind == EdgeKind::kLinkHolds && LiveWithout(e->from, pid, seen)) return true;
    if (e->kind == EdgeKind::kTailCall && LiveWithout(e->from, pid, seen)) return true;
    if (e->kind == EdgeKind::kStructOps && LiveWithout(e->from, pid, seen)) return true;
  }
  return false;
}

// A program array whose only user references are the fds of one process:
// when that process exits the kernel clears it, and the programs that
// outlive the process miss their tail calls.
void SystemScan::NoteSingleProcessHolder(GraphNode& n) {
  auto h = holders_.find(n.ref);
  if (h == holders_.end() || h->second.empty() || pinned_.contains(n.ref)) return;
  int pid = h->second[0].pid;
  std::vector<std::string> fds;
  for (const FdHolder& f : h->second) {
    if (f.pid != pid) return;
    fds.push_back(absl::StrCat(f.fd));
  }
  std::vector<uint32_t> slots;
  for (const GraphEdge& e : edges)
    if (e.from == n.ref && e.kind == EdgeKind::kTailCall) slots.push_back(e.slot);
  if (slots.empty()) return;
  // The tail-calling programs that outlive the process for sure, and those
  // only a holder the scan cannot see would keep.
  std::vector<std::string> survivors, maybe;
  std::vector<std::string> invisible;
  for (const GraphEdge* e : InEdges(n.ref)) {
    if (e->kind != EdgeKind::kUsesMap) continue;
    absl::flat_hash_set<NodeRef> seen{n.ref};
    auto user = nodes.find({e->from.kind, e->from.id});
    std::string kinds = user != nodes.end() ? InvisibleHolders(user->second.type) : "";
    if (LiveWithout(e->from, pid, &seen)) {
      survivors.push_back(ShortName(e->from));
    } else if (!kinds.empty()) {
      maybe.push_back(ShortName(e->from));
      if (std::find(invisible.begin(), invisible.end(), kinds) == invisible.end())
        invisible.push_back(kinds);
    }
  }
  std::string head = absl::StrFormat("only pid %d (%s) fd %s keeps it: if that process exits, ", pid,
                                     h->second[0].comm, absl::StrJoin(fds, ", "));
  std::string into = absl::StrCat(n.name.empty() ? "?" : n.name, SlotList(slots));
  if (!survivors.empty()) {
    n.notes.push_back(absl::StrFormat("%stail calls from %s into %s miss", head,
                                      absl::StrJoin(survivors, ", "), into));
  } else if (!maybe.empty()) {
    // Nothing visible outlives the process, but the scan cannot rule out
    // a holder it does not see (a socket filter made by that process).
    n.notes.push_back(absl::StrFormat(
        "%sthe kernel clears it, and tail calls from %s into %s miss if those programs outlive "
        "it (the scan sees no other holder of them, but %s may hold them, which a scan cannot see)",
        head, absl::StrJoin(maybe, ", "), into, absl::StrJoin(invisible, "; ")));
  }
  // Otherwise the programs go with the process: nothing is left to miss.
}

void SystemScan::NoteProgram(GraphNode& n) {
  if (holders_.contains(n.ref) || pinned_.contains(n.ref) || fds_.own.contains(n.ref)) return;
  for (const GraphEdge* e : InEdges(n.ref))
    if (e->kind == EdgeKind::kLinkHolds || e->kind == EdgeKind::kTailCall ||
        e->kind == EdgeKind::kStructOps)
      return;
  if (n.legacy_hooks.empty()) {
    std::string invisible = InvisibleHolders(n.type);
    n.legacy_hooks.push_back(
        invisible.empty() ? "a reference the scan cannot see (kernel-internal, or an fd in flight "
                            "over a unix socket)"
                          : absl::StrCat("a hook the scan cannot see: ", invisible));
  }
  n.notes.push_back("held by nothing but a legacy hook: it cannot be pinned and stays "
                    "attached until someone detaches it");
}

// Hazards, from the references gathered by the scans.
void SystemScan::NoteHazards() {
  for (const GraphEdge& e : edges) in_edges_[e.to].push_back(&e);
  for (auto& [key, n] : nodes) {
    bool user_ref =
        holders_.contains(n.ref) || pinned_.contains(n.ref) || fds_.own.contains(n.ref);
    std::vector<const GraphEdge*> in = InEdges(n.ref);
    if (n.is_program_array() && !user_ref) {
      // No fd and no pin: the kernel has cleared it (or is about to).
      n.cleared_by_kernel = true;
      std::vector<std::string> users;
      for (const GraphEdge* e : in)
        if (e->kind == EdgeKind::kUsesMap) users.push_back(ShortName(e->from));
      if (!users.empty()) {
        n.notes.push_back(absl::StrFormat(
            "held only by the kernel: no fd or pin holds this program array, so the kernel "
            "has cleared it and tail calls from %s miss",
            absl::StrJoin(users, ", ")));
      }
    }
    if (n.is_program_array() && user_ref) NoteSingleProcessHolder(n);
    if (n.ref.kind == NodeKind::kMap && !user_ref && in.empty()) {
      n.notes.push_back("nothing visible holds it (no fd, pin, program, link or outer map): "
                        "a kernel-internal reference keeps it, or it is about to be freed");
    }
    if (n.ref.kind == NodeKind::kProgram) NoteProgram(n);
  }
}

// The graph, without edges to objects that went away during the scan.
std::unique_ptr<ObjectGraph> SystemScan::Build() {
  std::vector<GraphNode> node_list;
  for (auto& [key, n] : nodes) node_list.push_back(std::move(n));
  absl::flat_hash_set<NodeRef> present;
  for (const GraphNode& n : node_list) present.insert(n.ref);
  std::vector<GraphEdge> kept;
  for (const GraphEdge& e : edges)
    if (present.contains(e.from) && present.contains(e.to)) kept.push_back(e);
  auto graph = detail::NewStandaloneGraph();
  detail::PopulateGraph(*graph, node_list, kept);
  return graph;
}

}  // namespace

namespace {

// From /proc/self/status, which needs no libcap.
bool HasEffectiveCapability(int cap) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    uint64_t mask = 0;
    if (line.rfind("CapEff:", 0) == 0 &&
        absl::SimpleHexAtoi(absl::StripAsciiWhitespace(line.substr(7)), &mask)) {
      return (mask >> cap) & 1;
    }
  }
  return false;
}

// A scan without the right to list BPF ids, or to read other processes'
// fds, would show an empty or partial graph as if it were the system's:
// refuse instead, saying what is missing.
absl::Status CheckScanPrivileges() {
  uint32_t first = 0;
  int ret = sys::GetNextId(ObjectKind::kProgram, 0, &first);
  if (ret == -EPERM || ret == -EACCES) {
    return sys::ErrnoStatus(-ret, "system scan: listing BPF object ids (needs CAP_SYS_ADMIN: run as root)",
                            "BPF_PROG_GET_NEXT_ID");
  }
  // Other processes' fds: /proc/PID/fdinfo of a process with other
  // credentials or more capabilities needs CAP_SYS_PTRACE (ptrace read
  // access). Without it the holders would silently be missing.
  if (!HasEffectiveCapability(CAP_SYS_PTRACE)) {
    return absl::PermissionDeniedError(
        "system scan: reading other processes' fds, which hold BPF objects, needs CAP_SYS_PTRACE "
        "(run as root); this process does not have it");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SystemSnapshot> ScanSystemSnapshot(const SystemScanOptions& options) {
  TETHER_RETURN_IF_ERROR(CheckScanPrivileges());
  return SystemScan(options).Run();
}

absl::StatusOr<std::unique_ptr<ObjectGraph>> ScanSystem(const SystemScanOptions& options) {
  auto snap = ScanSystemSnapshot(options);
  if (!snap.ok()) return snap.status();
  return std::move(snap->graph);
}

}  // namespace tether
