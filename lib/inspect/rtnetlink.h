// A small rtnetlink client for the system scan: which XDP programs the
// interfaces of this network namespace run, and which cls_bpf filters sit
// on their clsact hooks. It speaks NETLINK_ROUTE directly (no libmnl or
// libbpf). Netlink answers for the caller's network namespace only.
// Internal.
#ifndef TETHER_LIB_INSPECT_RTNETLINK_H_
#define TETHER_LIB_INSPECT_RTNETLINK_H_

#include <linux/netlink.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "sys/bpf.h"

namespace tether::inspect {

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
  // Attaches prog_fd as the interface's XDP program (RTM_SETLINK with
  // IFLA_XDP), or detaches with prog_fd -1. flags: XDP_FLAGS_*.
  absl::Status SetXdp(uint32_t ifindex, int prog_fd, uint32_t flags);

 private:
  explicit RtNetlink(sys::Fd fd) : fd_(std::move(fd)) {}
  // Sends one request and hands each answer message to `on_message`
  // until NLMSG_DONE (a dump) or the ack (NLM_F_ACK).
  absl::Status Transact(std::vector<uint8_t> request, absl::string_view what,
                        const std::function<void(const ::nlmsghdr&)>& on_message);

  sys::Fd fd_;
  uint32_t seq_ = 0;
};

}  // namespace tether::inspect

#endif  // TETHER_LIB_INSPECT_RTNETLINK_H_
