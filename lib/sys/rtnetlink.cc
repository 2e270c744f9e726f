#include "sys/rtnetlink.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tether::sys {
namespace {

// Builds one netlink message: header, fixed part, attributes (nested ones
// by Begin/End). Lengths are patched in as the parts are added.
class Message {
 public:
  Message(uint16_t type, uint16_t flags, const void* fixed, size_t fixed_len) {
    buf_.resize(NLMSG_HDRLEN);
    auto* h = header();
    h->nlmsg_type = type;
    h->nlmsg_flags = flags;
    Append(fixed, fixed_len);
  }
  void Attr(uint16_t type, const void* data, size_t len) {
    struct rtattr a;
    a.rta_type = type;
    a.rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
    Append(&a, sizeof(a));
    Append(data, len);
  }
  // Bytes that are not an attribute (a nested message's fixed part).
  void Raw(const void* data, size_t len) { Append(data, len); }
  size_t Begin(uint16_t type) {
    size_t at = buf_.size();
    struct rtattr a;
    a.rta_type = type | NLA_F_NESTED;
    a.rta_len = 0;
    Append(&a, sizeof(a));
    return at;
  }
  void End(size_t at) {
    auto* a = reinterpret_cast<struct rtattr*>(buf_.data() + at);
    a->rta_len = static_cast<uint16_t>(buf_.size() - at);
  }
  std::vector<uint8_t> Finish(uint32_t seq) {
    header()->nlmsg_len = static_cast<uint32_t>(buf_.size());
    header()->nlmsg_seq = seq;
    return std::move(buf_);
  }

 private:
  struct nlmsghdr* header() { return reinterpret_cast<struct nlmsghdr*>(buf_.data()); }
  void Append(const void* p, size_t len) {
    const auto* b = static_cast<const uint8_t*>(p);
    buf_.insert(buf_.end(), b, b + len);
    buf_.resize(NLMSG_ALIGN(buf_.size()), 0);
  }
  std::vector<uint8_t> buf_;
};

// Calls f(type, payload, len) for each attribute in [data, data + len).
template <typename F>
void ForEachAttr(const void* data, size_t len, F f) {
  auto* a = static_cast<const struct rtattr*>(data);
  int left = static_cast<int>(len);
  for (; RTA_OK(a, left); a = RTA_NEXT(a, left)) {
    f(static_cast<uint16_t>(a->rta_type & NLA_TYPE_MASK), RTA_DATA(a), RTA_PAYLOAD(a));
  }
}

uint32_t U32(const void* p, size_t len) {
  uint32_t v = 0;
  if (len >= sizeof(v)) memcpy(&v, p, sizeof(v));
  return v;
}

std::string Str(const void* p, size_t len) {
  const char* s = static_cast<const char*>(p);
  return std::string(s, strnlen(s, len));
}

std::vector<XdpProgram> ParseXdp(const void* data, size_t len) {
  std::vector<XdpProgram> out;
  uint8_t attached = 0;
  uint32_t any_id = 0;
  ForEachAttr(data, len, [&](uint16_t type, const void* p, size_t n) {
    switch (type) {
      case IFLA_XDP_ATTACHED:
        if (n >= 1) attached = *static_cast<const uint8_t*>(p);
        break;
      case IFLA_XDP_PROG_ID: any_id = U32(p, n); break;
      case IFLA_XDP_SKB_PROG_ID: out.push_back({U32(p, n), "generic"}); break;
      case IFLA_XDP_DRV_PROG_ID: out.push_back({U32(p, n), "driver"}); break;
      case IFLA_XDP_HW_PROG_ID: out.push_back({U32(p, n), "offload"}); break;
      default: break;
    }
  });
  // With one mode attached the kernel sends IFLA_XDP_PROG_ID and the mode.
  if (out.empty() && any_id != 0) {
    const char* mode = attached == XDP_ATTACHED_SKB   ? "generic"
                       : attached == XDP_ATTACHED_HW ? "offload"
                                                     : "driver";
    out.push_back({any_id, mode});
  }
  return out;
}

}  // namespace

absl::StatusOr<RtNetlink> RtNetlink::Open() {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return ErrnoStatus(errno, "rtnetlink", "socket(NETLINK_ROUTE)");
  Fd owned(fd);
  // Kernel error messages carry the request; we only need the errno.
  int one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  struct sockaddr_nl local = {};
  local.nl_family = AF_NETLINK;
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&local), sizeof(local)) != 0)
    return ErrnoStatus(errno, "rtnetlink", "bind");
  return RtNetlink(std::move(owned));
}

absl::Status RtNetlink::Transact(std::vector<uint8_t> request, absl::string_view what,
                                 const std::function<void(const struct nlmsghdr&)>& on_message) {
  uint32_t seq = ++seq_;
  reinterpret_cast<struct nlmsghdr*>(request.data())->nlmsg_seq = seq;
  struct sockaddr_nl kernel = {};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd_.get(), request.data(), request.size(), 0,
             reinterpret_cast<struct sockaddr*>(&kernel), sizeof(kernel)) < 0)
    return ErrnoStatus(errno, absl::StrCat("rtnetlink ", what), "sendto");
  std::vector<uint8_t> buf(64 * 1024);
  for (;;) {
    ssize_t n = recv(fd_.get(), buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, absl::StrCat("rtnetlink ", what), "recv");
    int left = static_cast<int>(n);
    for (auto* h = reinterpret_cast<struct nlmsghdr*>(buf.data()); NLMSG_OK(h, left);
         h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_seq != seq) continue;  // a late answer to an older request
      if (h->nlmsg_type == NLMSG_DONE) return absl::OkStatus();
      if (h->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const struct nlmsgerr*>(NLMSG_DATA(h));
        if (e->error == 0) return absl::OkStatus();  // the ack
        return ErrnoStatus(-e->error, absl::StrCat("rtnetlink ", what), "request");
      }
      on_message(*h);
    }
  }
}

absl::StatusOr<std::vector<Interface>> RtNetlink::Interfaces() {
  struct ifinfomsg ifi = {};
  ifi.ifi_family = AF_UNSPEC;
  Message m(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, &ifi, sizeof(ifi));
  uint32_t mask = RTEXT_FILTER_SKIP_STATS;
  m.Attr(IFLA_EXT_MASK, &mask, sizeof(mask));
  std::vector<Interface> out;
  absl::Status st = Transact(m.Finish(0), "RTM_GETLINK", [&](const struct nlmsghdr& h) {
    if (h.nlmsg_type != RTM_NEWLINK || h.nlmsg_len < NLMSG_LENGTH(sizeof(ifi))) return;
    const auto* info = static_cast<const struct ifinfomsg*>(NLMSG_DATA(&h));
    Interface itf;
    itf.ifindex = static_cast<uint32_t>(info->ifi_index);
    ForEachAttr(IFLA_RTA(info), IFLA_PAYLOAD(&h), [&](uint16_t type, const void* p, size_t n) {
      if (type == IFLA_IFNAME) itf.name = Str(p, n);
      if (type == IFLA_XDP) itf.xdp = ParseXdp(p, n);
    });
    out.push_back(std::move(itf));
  });
  if (!st.ok()) return st;
  return out;
}

namespace {

// A cls_bpf filter from an RTM_NEWTFILTER message; prog_id 0 if the
// message is another kind of filter.
TcBpfFilter ParseTcFilter(const struct nlmsghdr& h) {
  TcBpfFilter f;
  if (h.nlmsg_type != RTM_NEWTFILTER || h.nlmsg_len < NLMSG_LENGTH(sizeof(struct tcmsg))) return f;
  const auto* msg = static_cast<const struct tcmsg*>(NLMSG_DATA(&h));
  const void* attrs = reinterpret_cast<const uint8_t*>(msg) + NLMSG_ALIGN(sizeof(struct tcmsg));
  size_t len = h.nlmsg_len - NLMSG_LENGTH(sizeof(struct tcmsg));
  std::string kind;
  f.handle = msg->tcm_handle;
  f.prio = static_cast<uint16_t>(TC_H_MAJ(msg->tcm_info) >> 16);
  ForEachAttr(attrs, len, [&](uint16_t type, const void* p, size_t n) {
    if (type == TCA_KIND) kind = Str(p, n);
    if (type != TCA_OPTIONS) return;
    ForEachAttr(p, n, [&](uint16_t opt, const void* q, size_t k) {
      if (opt == TCA_BPF_ID) f.prog_id = U32(q, k);
      if (opt == TCA_BPF_NAME) f.name = Str(q, k);
    });
  });
  if (kind != "bpf") f.prog_id = 0;
  return f;
}

struct tcmsg ClsactMessage(uint32_t ifindex, bool ingress) {
  struct tcmsg tc = {};
  tc.tcm_family = AF_UNSPEC;
  tc.tcm_ifindex = static_cast<int>(ifindex);
  tc.tcm_parent = TC_H_MAKE(TC_H_CLSACT, ingress ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);
  return tc;
}

std::string HookName(uint32_t ifindex, bool ingress) {
  return absl::StrCat("tc ", ingress ? "ingress" : "egress", " on ifindex ", ifindex);
}

}  // namespace

absl::StatusOr<std::vector<TcBpfFilter>> RtNetlink::TcBpfFilters(uint32_t ifindex, bool ingress) {
  struct tcmsg tc = ClsactMessage(ifindex, ingress);
  Message m(RTM_GETTFILTER, NLM_F_REQUEST | NLM_F_DUMP, &tc, sizeof(tc));
  std::vector<TcBpfFilter> out;
  absl::Status st = Transact(m.Finish(0), "RTM_GETTFILTER", [&](const struct nlmsghdr& h) {
    TcBpfFilter f = ParseTcFilter(h);
    if (f.prog_id != 0) out.push_back(std::move(f));
  });
  // No clsact qdisc on the interface: nothing is attached there.
  if (!st.ok() && (StatusErrno(st) == EINVAL || StatusErrno(st) == ENOENT))
    return out;
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<bool> RtNetlink::AddClsact(uint32_t ifindex) {
  struct tcmsg tc = {};
  tc.tcm_family = AF_UNSPEC;
  tc.tcm_ifindex = static_cast<int>(ifindex);
  tc.tcm_parent = TC_H_CLSACT;
  tc.tcm_handle = TC_H_MAKE(TC_H_CLSACT, 0);
  Message m(RTM_NEWQDISC, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &tc, sizeof(tc));
  m.Attr(TCA_KIND, "clsact", sizeof("clsact"));
  absl::Status st = Transact(m.Finish(0), absl::StrCat("RTM_NEWQDISC clsact on ifindex ", ifindex),
                             [](const struct nlmsghdr&) {});
  if (st.ok()) return true;
  if (StatusErrno(st) == EEXIST) return false;
  return st;
}

absl::Status RtNetlink::DeleteClsact(uint32_t ifindex) {
  struct tcmsg tc = {};
  tc.tcm_family = AF_UNSPEC;
  tc.tcm_ifindex = static_cast<int>(ifindex);
  tc.tcm_parent = TC_H_CLSACT;
  tc.tcm_handle = TC_H_MAKE(TC_H_CLSACT, 0);
  Message m(RTM_DELQDISC, NLM_F_REQUEST | NLM_F_ACK, &tc, sizeof(tc));
  m.Attr(TCA_KIND, "clsact", sizeof("clsact"));
  return Transact(m.Finish(0), absl::StrCat("RTM_DELQDISC clsact on ifindex ", ifindex),
                  [](const struct nlmsghdr&) {});
}

absl::StatusOr<TcBpfFilter> RtNetlink::AddTcBpfFilter(uint32_t ifindex, bool ingress, int prog_fd,
                                                      const std::string& name, uint16_t prio,
                                                      uint32_t handle) {
  struct tcmsg tc = ClsactMessage(ifindex, ingress);
  tc.tcm_handle = handle;
  tc.tcm_info = TC_H_MAKE(static_cast<uint32_t>(prio) << 16, htons(ETH_P_ALL));
  // ECHO: the kernel sends the filter back, with the prio and handle it chose.
  Message m(RTM_NEWTFILTER, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO, &tc,
            sizeof(tc));
  m.Attr(TCA_KIND, "bpf", sizeof("bpf"));
  size_t options = m.Begin(TCA_OPTIONS);
  uint32_t fd = static_cast<uint32_t>(prog_fd);
  m.Attr(TCA_BPF_FD, &fd, sizeof(fd));
  m.Attr(TCA_BPF_NAME, name.c_str(), name.size() + 1);
  uint32_t flags = TCA_BPF_FLAG_ACT_DIRECT;
  m.Attr(TCA_BPF_FLAGS, &flags, sizeof(flags));
  m.End(options);
  TcBpfFilter made;
  absl::Status st = Transact(m.Finish(0), absl::StrCat("RTM_NEWTFILTER cls_bpf on ", HookName(ifindex, ingress)),
                             [&](const struct nlmsghdr& h) {
                               TcBpfFilter f = ParseTcFilter(h);
                               if (f.prog_id != 0) made = std::move(f);
                             });
  if (!st.ok()) return st;
  if (made.prog_id == 0) {
    // A kernel that does not echo: the filter is where we asked.
    made.prio = prio;
    made.handle = handle;
    made.name = name;
  }
  return made;
}

absl::Status RtNetlink::DeleteTcFilter(uint32_t ifindex, bool ingress, uint16_t prio, uint32_t handle) {
  struct tcmsg tc = ClsactMessage(ifindex, ingress);
  tc.tcm_handle = handle;
  tc.tcm_info = TC_H_MAKE(static_cast<uint32_t>(prio) << 16, htons(ETH_P_ALL));
  Message m(RTM_DELTFILTER, NLM_F_REQUEST | NLM_F_ACK, &tc, sizeof(tc));
  m.Attr(TCA_KIND, "bpf", sizeof("bpf"));
  return Transact(m.Finish(0),
                  absl::StrFormat("RTM_DELTFILTER prio %u handle 0x%x on %s", prio, handle,
                                  HookName(ifindex, ingress)),
                  [](const struct nlmsghdr&) {});
}

absl::Status RtNetlink::SetXdp(uint32_t ifindex, int prog_fd, uint32_t flags) {
  struct ifinfomsg ifi = {};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = static_cast<int>(ifindex);
  Message m(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, &ifi, sizeof(ifi));
  size_t xdp = m.Begin(IFLA_XDP);
  int32_t fd = prog_fd;
  m.Attr(IFLA_XDP_FD, &fd, sizeof(fd));
  if (flags) m.Attr(IFLA_XDP_FLAGS, &flags, sizeof(flags));
  m.End(xdp);
  return Transact(m.Finish(0), absl::StrCat("RTM_SETLINK xdp on ifindex ", ifindex),
                  [](const struct nlmsghdr&) {});
}

absl::Status RtNetlink::AddVethPair(const std::string& name, const std::string& peer) {
  struct ifinfomsg ifi = {};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_flags = IFF_UP;
  ifi.ifi_change = IFF_UP;
  Message m(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
  m.Attr(IFLA_IFNAME, name.c_str(), name.size() + 1);
  size_t linkinfo = m.Begin(IFLA_LINKINFO);
  m.Attr(IFLA_INFO_KIND, "veth", sizeof("veth") - 1);
  size_t data = m.Begin(IFLA_INFO_DATA);
  // VETH_INFO_PEER carries a whole ifinfomsg and then the peer's attributes.
  size_t peer_info = m.Begin(VETH_INFO_PEER);
  struct ifinfomsg peer_ifi = {};
  // Not up yet: the peer is registered first, and a veth cannot open
  // before its peer exists (ENOTCONN).
  peer_ifi.ifi_family = AF_UNSPEC;
  m.Raw(&peer_ifi, sizeof(peer_ifi));
  m.Attr(IFLA_IFNAME, peer.c_str(), peer.size() + 1);
  m.End(peer_info);
  m.End(data);
  m.End(linkinfo);
  absl::Status made = Transact(m.Finish(0), absl::StrFormat("RTM_NEWLINK veth %s <-> %s", name, peer),
                                [](const struct nlmsghdr&) {});
  if (!made.ok()) return made;
  struct ifinfomsg up = {};
  up.ifi_family = AF_UNSPEC;
  up.ifi_index = static_cast<int>(if_nametoindex(peer.c_str()));
  up.ifi_flags = IFF_UP;
  up.ifi_change = IFF_UP;
  if (up.ifi_index == 0) return ErrnoStatus(errno, absl::StrCat("veth ", peer), "if_nametoindex");
  Message set(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, &up, sizeof(up));
  return Transact(set.Finish(0), absl::StrCat("RTM_SETLINK up on ", peer), [](const struct nlmsghdr&) {});
}

}  // namespace tether::sys
