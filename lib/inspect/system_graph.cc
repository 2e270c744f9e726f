#include "tether/system_graph.h"

#include <dirent.h>
#include <net/if.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/strings/ascii.h"
#include "base/status_macros.h"
#include "sys/bpf.h"
#include "tether/link.h"
#include "tether/map.h"
#include "tether/pin.h"
#include "tether/program.h"

namespace tether {
namespace {

using sys::ObjectKind;

std::vector<uint32_t> AllIds(ObjectKind kind) {
  std::vector<uint32_t> ids;
  uint32_t id = 0;
  while (sys::GetNextId(kind, id, &id) == 0) ids.push_back(id);
  return ids;
}

std::string ReadComm(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/comm");
  std::string comm;
  std::getline(in, comm);
  return comm;
}

// (kind, id) -> "pid N (comm) fd M" for every bpf fd of every other process.
using Holders = absl::flat_hash_map<NodeRef, std::vector<std::string>>;

Holders ScanFdHolders() {
  Holders holders;
  std::string self = std::to_string(getpid());
  DIR* proc = opendir("/proc");
  if (!proc) return holders;
  while (struct dirent* p = readdir(proc)) {
    std::string pid = p->d_name;
    if (pid.empty() || !isdigit(static_cast<unsigned char>(pid[0])) || pid == self) continue;
    std::string fdinfo_dir = "/proc/" + pid + "/fdinfo";
    DIR* fds = opendir(fdinfo_dir.c_str());
    if (!fds) continue;
    std::string comm;
    while (struct dirent* f = readdir(fds)) {
      if (f->d_name[0] == '.') continue;
      std::ifstream in(fdinfo_dir + "/" + f->d_name);
      std::string line;
      uint32_t map_id = 0, prog_id = 0, link_id = 0;
      while (std::getline(in, line)) {
        uint32_t v = 0;
        auto value = [&](const char* key) {
          size_t n = strlen(key);
          return line.compare(0, n, key) == 0 &&
                 absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(n)), &v);
        };
        if (value("map_id:")) map_id = v;
        else if (value("link_id:")) link_id = v;
        else if (value("prog_id:")) prog_id = v;
      }
      // Link fds also report their program's id; the fd is the link's.
      NodeRef ref;
      if (link_id) ref = {NodeKind::kLink, link_id};
      else if (map_id) ref = {NodeKind::kMap, map_id};
      else if (prog_id) ref = {NodeKind::kProgram, prog_id};
      else continue;
      if (comm.empty()) comm = ReadComm(pid);
      holders[ref].push_back(absl::StrFormat("pid %s (%s) fd %s", pid, comm, f->d_name));
    }
    closedir(fds);
  }
  closedir(proc);
  return holders;
}

std::string IfName(uint32_t ifindex) {
  char name[IF_NAMESIZE] = {0};
  if (if_indextoname(ifindex, name)) return name;
  return absl::StrCat("ifindex ", ifindex);
}

std::string LinkTarget(const bpf_link_info& info) {
  switch (info.type) {
    case BPF_LINK_TYPE_XDP:
      return absl::StrCat("xdp on ", IfName(info.xdp.ifindex));
    case sys::uapi::kLinkTypeTcx:
      // tcx's info starts like xdp's: the ifindex first.
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

}  // namespace

namespace {

// One scan of the whole system: every program, map and link by id, the
// pins under a root, then the fd holders and the hazards. Opened fds are
// closed before the next object is opened.
class SystemScan {
 public:
  explicit SystemScan(const SystemScanOptions& options) : options_(options) {}

  absl::StatusOr<std::unique_ptr<ObjectGraph>> Run() {
    ScanPrograms();
    ScanMaps();
    ScanLinks();
    ScanPins();
    if (nodes.empty() && any_denied) {
      return absl::PermissionDeniedError(
          "scanning BPF objects: opening them by id needs CAP_SYS_ADMIN (run as root)");
    }
    if (options_.fd_holders) AttachFdHolders();
    NoteHazards();
    return Build();
  }

 private:
  void ScanPrograms();
  void ScanMaps();
  void ScanLinks();
  void ScanPins();
  void AttachFdHolders() {
    Holders holders = ScanFdHolders();
    for (auto& [key, n] : nodes) {
      auto it = holders.find(n.ref);
      if (it != holders.end()) n.holders = it->second;
    }
  }
  void NoteHazards();
  std::unique_ptr<ObjectGraph> Build();

  GraphNode& node(NodeRef ref) {
    GraphNode& n = nodes[{ref.kind, ref.id}];
    n.ref = ref;
    return n;
  }

  const SystemScanOptions& options_;
  std::map<std::pair<NodeKind, uint32_t>, GraphNode> nodes;
  std::vector<GraphEdge> edges;
  bool any_denied = false;  // some object could not be opened: EPERM
};

// Programs, and the maps each one uses.
void SystemScan::ScanPrograms() {
  for (uint32_t id : AllIds(ObjectKind::kProgram)) {
    auto fd = sys::GetFdById(ObjectKind::kProgram, id);
    if (!fd.ok()) {
      any_denied |= sys::StatusErrno(fd.status()) == EPERM;
      continue;  // freed meanwhile
    }
    auto info = sys::GetProgInfo(fd->get());
    if (!info.ok()) continue;
    GraphNode& n = node({NodeKind::kProgram, id});
    n.name = std::string(info->name, strnlen(info->name, sizeof(info->name)));
    n.type = info->type;
    std::vector<uint32_t> map_ids;
    if (sys::GetProgMapIds(fd->get(), &map_ids).ok()) {
      for (uint32_t m : map_ids) edges.push_back({{NodeKind::kProgram, id}, {NodeKind::kMap, m}, EdgeKind::kUsesMap, 0});
    }
  }
}

// Maps, and what program arrays and maps of maps hold.
void SystemScan::ScanMaps() {
  for (uint32_t id : AllIds(ObjectKind::kMap)) {
    auto fd = sys::GetFdById(ObjectKind::kMap, id);
    if (!fd.ok()) {
      any_denied |= sys::StatusErrno(fd.status()) == EPERM;
      continue;
    }
    auto info = sys::GetMapInfo(fd->get());
    if (!info.ok()) continue;
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
        edges.push_back({me, {progs ? NodeKind::kProgram : NodeKind::kMap, held},
                         progs ? EdgeKind::kTailCall : EdgeKind::kInnerMap, i});
      }
      if (progs) {
        // A kernel race (seen on 6.18): if this array's last user fd went
        // just before we opened it, its deferred clear is still queued, and
        // our close would queue it again while pending; the second queueing
        // is dropped with the map reference it took, and the array is never
        // freed. Letting the queued work run before we close avoids it.
        // docs/lifecycle.md has the reproducer.
        usleep(1000);
      }
    } else if (info->type == BPF_MAP_TYPE_HASH_OF_MAPS) {
      std::vector<uint8_t> key(info->key_size), next(info->key_size);
      const void* prev = nullptr;
      for (uint32_t ordinal = 0; ordinal < info->max_entries; ++ordinal) {
        if (sys::MapGetNextKey(fd->get(), prev, next.data()) != 0) break;
        uint32_t inner = 0;
        if (sys::MapLookupElem(fd->get(), next.data(), &inner, 0) == 0)
          edges.push_back({me, {NodeKind::kMap, inner}, EdgeKind::kInnerMap, ordinal});
        key = next;
        prev = key.data();
      }
    }
  }
}

// Links, and the program each one holds.
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
    if (info->prog_id)
      edges.push_back({{NodeKind::kLink, id}, {NodeKind::kProgram, info->prog_id}, EdgeKind::kLinkHolds, 0});
  }
}

// Pins under the pin root, and what each one holds.
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
    edges.push_back({pin, target, EdgeKind::kPinHolds, 0});
  }
}

// Hazards, from the references gathered by the scans.
void SystemScan::NoteHazards() {
  absl::flat_hash_map<NodeRef, std::vector<const GraphEdge*>> in_edges;
  for (const GraphEdge& e : edges) in_edges[e.to].push_back(&e);
  auto pinned = [&](NodeRef r) {
    for (const GraphEdge* e : in_edges[r])
      if (e->kind == EdgeKind::kPinHolds) return true;
    return false;
  };
  for (auto& [key, n] : nodes) {
    bool user_ref = !n.holders.empty() || pinned(n.ref);
    if (n.is_program_array() && !user_ref) {
      std::vector<std::string> users;
      for (const GraphEdge* e : in_edges[n.ref]) {
        if (e->kind != EdgeKind::kUsesMap) continue;
        auto p = nodes.find({NodeKind::kProgram, e->from.id});
        users.push_back(p != nodes.end() ? absl::StrFormat("%s (id %u)", p->second.name, e->from.id)
                                         : absl::StrCat("id ", e->from.id));
      }
      if (!users.empty()) {
        n.notes.push_back(absl::StrFormat(
            "held only by the kernel: no fd or pin holds this program array, so the kernel "
            "has cleared it and tail calls from %s miss",
            absl::StrJoin(users, ", ")));
      }
    }
    if (n.ref.kind == NodeKind::kMap && !user_ref && in_edges[n.ref].empty()) {
      n.notes.push_back("nothing visible holds it (no fd, pin, program, link or outer map): "
                        "a kernel-internal reference keeps it, or it is about to be freed");
    }
    if (n.ref.kind == NodeKind::kProgram && !user_ref) {
      bool held = false;
      for (const GraphEdge* e : in_edges[n.ref])
        if (e->kind == EdgeKind::kLinkHolds || e->kind == EdgeKind::kTailCall) held = true;
      if (!held) {
        n.legacy_hooks.push_back("a hook without a link (netlink XDP, tc, cgroup PROG_ATTACH, "
                                 "SO_ATTACH_BPF, perf event ioctl...)");
        n.notes.push_back("held by nothing but a legacy hook: it cannot be pinned and stays "
                          "attached until someone detaches it");
      }
    }
  }
}

// The graph, without edges to objects that went away during the scan.
std::unique_ptr<ObjectGraph> SystemScan::Build() {
  std::vector<GraphNode> node_list;
  for (auto& [key, n] : nodes) node_list.push_back(std::move(n));
  // Edges to objects that went away during the scan would dangle.
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

absl::StatusOr<std::unique_ptr<ObjectGraph>> ScanSystem(const SystemScanOptions& options) {
  TETHER_RETURN_IF_ERROR(CheckScanPrivileges());
  return SystemScan(options).Run();
}

}  // namespace tether
