#include "inspect/rtnetlink.h"

#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace tether::inspect {
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
  if (fd < 0) return sys::ErrnoStatus(errno, "rtnetlink", "socket(NETLINK_ROUTE)");
  sys::Fd owned(fd);
  // Kernel error messages carry the request; we only need the errno.
  int one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  struct sockaddr_nl local = {};
  local.nl_family = AF_NETLINK;
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&local), sizeof(local)) != 0)
    return sys::ErrnoStatus(errno, "rtnetlink", "bind");
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
    return sys::ErrnoStatus(errno, absl::StrCat("rtnetlink ", what), "sendto");
  std::vector<uint8_t> buf(64 * 1024);
  for (;;) {
    ssize_t n = recv(fd_.get(), buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys::ErrnoStatus(errno, absl::StrCat("rtnetlink ", what), "recv");
    int left = static_cast<int>(n);
    for (auto* h = reinterpret_cast<struct nlmsghdr*>(buf.data()); NLMSG_OK(h, left);
         h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_seq != seq) continue;  // a late answer to an older request
      if (h->nlmsg_type == NLMSG_DONE) return absl::OkStatus();
      if (h->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const struct nlmsgerr*>(NLMSG_DATA(h));
        if (e->error == 0) return absl::OkStatus();  // the ack
        return sys::ErrnoStatus(-e->error, absl::StrCat("rtnetlink ", what), "request");
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

absl::StatusOr<std::vector<TcBpfFilter>> RtNetlink::TcBpfFilters(uint32_t ifindex, bool ingress) {
  struct tcmsg tc = {};
  tc.tcm_family = AF_UNSPEC;
  tc.tcm_ifindex = static_cast<int>(ifindex);
  tc.tcm_parent = TC_H_MAKE(TC_H_CLSACT, ingress ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);
  Message m(RTM_GETTFILTER, NLM_F_REQUEST | NLM_F_DUMP, &tc, sizeof(tc));
  std::vector<TcBpfFilter> out;
  absl::Status st = Transact(m.Finish(0), "RTM_GETTFILTER", [&](const struct nlmsghdr& h) {
    if (h.nlmsg_type != RTM_NEWTFILTER || h.nlmsg_len < NLMSG_LENGTH(sizeof(tc))) return;
    const auto* msg = static_cast<const struct tcmsg*>(NLMSG_DATA(&h));
    const void* attrs = reinterpret_cast<const uint8_t*>(msg) + NLMSG_ALIGN(sizeof(tc));
    size_t len = h.nlmsg_len - NLMSG_LENGTH(sizeof(tc));
    std::string kind;
    TcBpfFilter f;
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
    if (kind == "bpf" && f.prog_id != 0) out.push_back(std::move(f));
  });
  // No clsact qdisc on the interface: nothing is attached there.
  if (!st.ok() && (sys::StatusErrno(st) == EINVAL || sys::StatusErrno(st) == ENOENT))
    return out;
  if (!st.ok()) return st;
  return out;
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

}  // namespace tether::inspect
