// Attachments without a link, found by asking the kernel: cgroups through
// BPF_PROG_QUERY, XDP and tc through rtnetlink. Attachments that a link
// made are left out: the link is their holder.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "sys/rtnetlink.h"
#include "inspect/scan_internal.h"
#include "sys/bpf.h"
#include "sys/uapi_compat.h"

namespace tether::inspect {
namespace {

struct NamedAttachType {
  uint32_t type;
  const char* name;
};

// Every attach type a cgroup takes. Types this kernel does not know answer
// EINVAL and are skipped.
constexpr NamedAttachType kCgroupTypes[] = {
    {BPF_CGROUP_INET_INGRESS, "ingress"},
    {BPF_CGROUP_INET_EGRESS, "egress"},
    {BPF_CGROUP_INET_SOCK_CREATE, "sock_create"},
    {BPF_CGROUP_SOCK_OPS, "sock_ops"},
    {BPF_CGROUP_DEVICE, "device"},
    {BPF_CGROUP_INET4_BIND, "bind4"},
    {BPF_CGROUP_INET6_BIND, "bind6"},
    {BPF_CGROUP_INET4_CONNECT, "connect4"},
    {BPF_CGROUP_INET6_CONNECT, "connect6"},
    {BPF_CGROUP_INET4_POST_BIND, "post_bind4"},
    {BPF_CGROUP_INET6_POST_BIND, "post_bind6"},
    {BPF_CGROUP_UDP4_SENDMSG, "sendmsg4"},
    {BPF_CGROUP_UDP6_SENDMSG, "sendmsg6"},
    {BPF_CGROUP_SYSCTL, "sysctl"},
    {BPF_CGROUP_UDP4_RECVMSG, "recvmsg4"},
    {BPF_CGROUP_UDP6_RECVMSG, "recvmsg6"},
    {BPF_CGROUP_GETSOCKOPT, "getsockopt"},
    {BPF_CGROUP_SETSOCKOPT, "setsockopt"},
    {BPF_CGROUP_INET4_GETPEERNAME, "getpeername4"},
    {BPF_CGROUP_INET6_GETPEERNAME, "getpeername6"},
    {BPF_CGROUP_INET4_GETSOCKNAME, "getsockname4"},
    {BPF_CGROUP_INET6_GETSOCKNAME, "getsockname6"},
    {BPF_CGROUP_INET_SOCK_RELEASE, "sock_release"},
    {49, "unix_connect"},  // 6.7
    {50, "unix_sendmsg"},
    {51, "unix_recvmsg"},
    {52, "unix_getpeername"},
    {53, "unix_getsockname"},
};

// Where cgroup v2 is mounted ("" if nowhere).
std::string Cgroup2Root(const std::string& configured) {
  if (!configured.empty()) return configured;
  FILE* f = fopen("/proc/self/mounts", "re");
  if (!f) return "";
  char dev[256], dir[1024], type[64];
  std::string root;
  while (fscanf(f, "%255s %1023s %63s %*[^\n]", dev, dir, type) == 3) {
    if (std::string(type) == "cgroup2") {
      root = dir;
      break;
    }
  }
  fclose(f);
  return root;
}

class CgroupWalk {
 public:
  CgroupWalk(const SystemScanOptions& o, const LinkAttachments& links, HookScan* out)
      : options_(o), links_(links), out_(out) {}

  void Run() {
    std::string root = Cgroup2Root(options_.cgroup_root);
    if (root.empty()) {
      out_->limits.push_back("no cgroup v2 mount: cgroup attachments were not queried");
      return;
    }
    Visit(root, 0);
    if (truncated_) {
      out_->limits.push_back(absl::StrFormat(
          "cgroup attachments: only the first %u cgroups under %s were queried",
          options_.max_cgroups, root));
    }
  }

 private:
  void Visit(const std::string& dir, int depth) {
    if (visited_ >= options_.max_cgroups || depth > 32) {
      truncated_ = true;
      return;
    }
    ++visited_;
    int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    sys::Fd cg(fd);
    struct stat st;
    uint64_t cgroup_id = fstat(fd, &st) == 0 ? st.st_ino : 0;
    std::vector<uint32_t> ids;
    for (const NamedAttachType& t : kCgroupTypes) {
      if (sys::ProgQuery(fd, t.type, &ids) != 0) continue;
      for (uint32_t id : ids) {
        if (links_.contains(LinkAttachmentKey("cgroup", cgroup_id, t.type, id))) continue;
        out_->hooks.push_back(
            {id, absl::StrFormat("cgroup %s %s, attached without a link (BPF_PROG_ATTACH)", dir, t.name)});
      }
    }
    DIR* d = fdopendir(dup(fd));
    if (!d) return;
    std::vector<std::string> subdirs;
    while (struct dirent* e = readdir(d)) {
      if (e->d_type == DT_DIR && e->d_name[0] != '.') subdirs.push_back(dir + "/" + e->d_name);
    }
    closedir(d);
    for (const std::string& s : subdirs) Visit(s, depth + 1);
  }

  const SystemScanOptions& options_;
  const LinkAttachments& links_;
  HookScan* out_;
  uint32_t visited_ = 0;
  bool truncated_ = false;
};

// XDP, tc (cls_bpf on clsact) and tcx attachments of this netns.
void ScanNetwork(const LinkAttachments& links, HookScan* out) {
  auto nl = sys::RtNetlink::Open();
  if (!nl.ok()) {
    out->limits.push_back(absl::StrCat("XDP and tc were not queried: ", nl.status().message()));
    return;
  }
  auto interfaces = nl->Interfaces();
  if (!interfaces.ok()) {
    out->limits.push_back(absl::StrCat("XDP and tc were not queried: ", interfaces.status().message()));
    return;
  }
  for (const sys::Interface& itf : *interfaces) {
    for (const sys::XdpProgram& x : itf.xdp) {
      if (links.contains(LinkAttachmentKey("xdp", itf.ifindex, 0, x.prog_id))) continue;
      out->hooks.push_back({x.prog_id, absl::StrFormat("xdp (%s) on %s, attached through netlink",
                                                       x.mode, itf.name)});
    }
    for (bool ingress : {true, false}) {
      const char* dir = ingress ? "ingress" : "egress";
      auto filters = nl->TcBpfFilters(itf.ifindex, ingress);
      if (filters.ok()) {
        for (const sys::TcBpfFilter& f : *filters)
          out->hooks.push_back({f.prog_id, absl::StrFormat("tc %s filter on %s (cls_bpf %s, pref %u handle 0x%x)",
                                                           dir, itf.name, f.name, f.prio, f.handle)});
      }
      uint32_t tcx = ingress ? sys::uapi::kAttachTcxIngress : sys::uapi::kAttachTcxEgress;
      std::vector<uint32_t> ids;
      if (sys::ProgQuery(static_cast<int>(itf.ifindex), tcx, &ids) != 0) continue;
      for (uint32_t id : ids) {
        if (links.contains(LinkAttachmentKey("tcx", itf.ifindex, tcx, id))) continue;
        out->hooks.push_back({id, absl::StrFormat("tcx %s on %s, attached without a link", dir, itf.name)});
      }
    }
  }
}

// The flow dissector of this network namespace, if attached without a link.
void ScanFlowDissector(const LinkAttachments& links, HookScan* out) {
  int fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  sys::Fd netns(fd);
  struct stat st;
  uint64_t ino = fstat(fd, &st) == 0 ? st.st_ino : 0;
  std::vector<uint32_t> ids;
  if (sys::ProgQuery(fd, BPF_FLOW_DISSECTOR, &ids) != 0) return;
  for (uint32_t id : ids) {
    if (links.contains(LinkAttachmentKey("netns", ino, BPF_FLOW_DISSECTOR, id))) continue;
    out->hooks.push_back({id, "the flow dissector of this network namespace, attached without a link"});
  }
}

}  // namespace

void ScanSockmapHooks(int map_fd, uint32_t map_id, const std::string& map_name,
                      const LinkAttachments& links, HookScan* out) {
  static constexpr NamedAttachType kTypes[] = {
      {BPF_SK_MSG_VERDICT, "sk_msg_verdict"},
      {BPF_SK_SKB_STREAM_PARSER, "sk_skb_stream_parser"},
      {BPF_SK_SKB_STREAM_VERDICT, "sk_skb_stream_verdict"},
      {BPF_SK_SKB_VERDICT, "sk_skb_verdict"},
  };
  std::vector<uint32_t> ids;
  for (const NamedAttachType& t : kTypes) {
    int err = sys::ProgQuery(map_fd, t.type, &ids);
    if (err == -EINVAL && t.type == BPF_SK_MSG_VERDICT) {
      out->limits.push_back(absl::StrFormat(
          "this kernel does not answer BPF_PROG_QUERY on sockmaps: the programs of '%s' (id %u) "
          "were not queried", map_name, map_id));
      return;
    }
    if (err != 0) continue;
    for (uint32_t id : ids) {
      if (links.contains(LinkAttachmentKey("sockmap", map_id, t.type, id))) continue;
      out->hooks.push_back({id, absl::StrFormat("sockmap '%s' (id %u) %s, attached with "
                                                "BPF_PROG_ATTACH", map_name, map_id, t.name)});
    }
  }
}

std::string LinkAttachmentKey(absl::string_view kind, uint64_t target, uint32_t attach_type,
                              uint32_t prog_id) {
  return absl::StrCat(kind, ":", target, ":", attach_type, ":", prog_id);
}

HookScan ScanHooks(const SystemScanOptions& options, const LinkAttachments& links) {
  HookScan out;
  CgroupWalk(options, links, &out).Run();
  ScanNetwork(links, &out);
  ScanFlowDissector(links, &out);
  out.limits.push_back(
      "network hooks (XDP, tc, flow dissector) were queried in this network namespace only");
  return out;
}

}  // namespace tether::inspect
