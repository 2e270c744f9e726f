// A small rtnetlink client: which XDP programs the interfaces of this
// network namespace run and which cls_bpf filters sit on their clsact hooks
// (for the system scan), and TC attachment the way kernels before tcx take
// it: a clsact qdisc and a cls_bpf filter in direct-action mode. It speaks NETLINK_ROUTE directly (no libmnl or
// libbpf). Netlink answers for the caller's network namespace only.
// Internal.
#ifndef TETHER_LIB_SYS_RTNETLINK_H_
#define TETHER_LIB_SYS_RTNETLINK_H_

#include <linux/netlink.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "sys/bpf.h"

namespace tether::sys {

struct XdpProgram {
  uint32_t prog_id = 0;
  std::string mode;  // "generic", "driver", "offload"
};

struct Interface {
  uint32_t ifindex = 0;
  std::string name;
  std::vector<XdpProgram> xdp;
};

struct TcBpfFilter {
  uint32_t prog_id = 0;
  std::string name;  // TCA_BPF_NAME: what the loader called it
  uint32_t handle = 0;
  uint16_t prio = 0;
};

class RtNetlink {
 public:
  static absl::StatusOr<RtNetlink> Open();

  // Every interface, with its XDP programs (RTM_GETLINK dump).
  absl::StatusOr<std::vector<Interface>> Interfaces();
  // The cls_bpf filters on an interface's clsact ingress or egress hook
  // (RTM_GETTFILTER dump). An interface without clsact has none.
  absl::StatusOr<std::vector<TcBpfFilter>> TcBpfFilters(uint32_t ifindex, bool ingress);
  // Adds the clsact qdisc to an interface. Returns false if it had one.
  absl::StatusOr<bool> AddClsact(uint32_t ifindex);
  // Removes the interface's clsact qdisc, and every filter on it.
  absl::Status DeleteClsact(uint32_t ifindex);
  // Adds a cls_bpf filter in direct-action mode (the program's return value
  // is the verdict) on the clsact ingress or egress hook, for every
  // protocol. prio and handle 0 let the kernel choose; the filter made,
  // with the prio and handle it got, comes back. EEXIST if that prio and
  // handle are taken.
  absl::StatusOr<TcBpfFilter> AddTcBpfFilter(uint32_t ifindex, bool ingress, int prog_fd,
                                             const std::string& name, uint16_t prio, uint32_t handle);
  // Removes the filter with that prio and handle.
  absl::Status DeleteTcFilter(uint32_t ifindex, bool ingress, uint16_t prio, uint32_t handle);
  // Attaches prog_fd as the interface's XDP program (RTM_SETLINK with
  // IFLA_XDP), or detaches with prog_fd -1. flags: XDP_FLAGS_*.
  absl::Status SetXdp(uint32_t ifindex, int prog_fd, uint32_t flags);
  // Creates a veth pair `name` <-> `peer` (RTM_NEWLINK, kind "veth") and
  // sets both up. EEXIST if either name is taken.
  absl::Status AddVethPair(const std::string& name, const std::string& peer);

 private:
  explicit RtNetlink(Fd fd) : fd_(std::move(fd)) {}
  // Sends one request and hands each answer message to `on_message`
  // until NLMSG_DONE (a dump) or the ack (NLM_F_ACK).
  absl::Status Transact(std::vector<uint8_t> request, absl::string_view what,
                        const std::function<void(const ::nlmsghdr&)>& on_message);

  Fd fd_;
  uint32_t seq_ = 0;
};

}  // namespace tether::sys

#endif  // TETHER_LIB_SYS_RTNETLINK_H_
