// The parts of the system scan (ScanSystem): who holds fds, which maps
// programs tail-call through, which hooks hold programs. Internal.
#ifndef TETHER_LIB_INSPECT_SCAN_INTERNAL_H_
#define TETHER_LIB_INSPECT_SCAN_INTERNAL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "tether/graph.h"
#include "tether/system_graph.h"

namespace tether::inspect {

struct FdHolder {
  int pid = 0;
  std::string comm;
  int fd = -1;
  std::string ToString() const;  // "pid 812 (agent) fd 7"
};

struct FdScan {
  // Fds of every other process, by the object they refer to.
  absl::flat_hash_map<NodeRef, std::vector<FdHolder>> holders;
  // Objects the scanning process itself has fds on: a map here is safe to
  // open by id, but these are not listed as holders (the CLI's fds exist
  // only for the scan; a library caller knows its own handles).
  absl::flat_hash_set<NodeRef> own;
  // Map id -> map type, as fdinfo reports it for held maps.
  absl::flat_hash_map<uint32_t, uint32_t> map_types;
  // Processes whose fds could not be read (EACCES even with CAP_SYS_PTRACE,
  // e.g. an init of an outer namespace): what they hold is not seen.
  std::vector<int> unreadable;
};
// Reads /proc/*/fdinfo: every bpf map, program and link fd of every process.
FdScan ScanFdHolders();

// The maps a program tail-calls through, read from its translated code
// (BPF_PROG_GET_INFO_BY_FD's xlated_prog_insns: a map loaded into R2 before
// a call to bpf_tail_call). Tells program arrays from other maps without
// opening them. Fails if the kernel does not give the code.
absl::StatusOr<std::vector<uint32_t>> TailCallMapIds(int prog_fd, uint32_t xlated_len);

// A program held by an attachment without a link.
struct Hook {
  uint32_t prog_id = 0;
  std::string where;  // "xdp (generic) on lo, attached through netlink"
};
// What links already account for: attachments they made are not hooks.
// Keys from LinkAttachmentKey.
using LinkAttachments = absl::flat_hash_set<std::string>;
std::string LinkAttachmentKey(absl::string_view kind, uint64_t target, uint32_t attach_type,
                              uint32_t prog_id);
struct HookScan {
  std::vector<Hook> hooks;
  // What could not be queried, one sentence each (shown with the graph).
  std::vector<std::string> limits;
};
// Cgroup attachments (BPF_PROG_QUERY on every cgroup v2 directory, up to
// options.max_cgroups), XDP and tc (cls_bpf on clsact, tcx) through
// rtnetlink, and the flow dissector, all in this network namespace.
HookScan ScanHooks(const SystemScanOptions& options, const LinkAttachments& links);
// The programs attached to a sockmap or sockhash (BPF_PROG_QUERY on the
// map's fd, 5.19 and later), appended to *out.
void ScanSockmapHooks(int map_fd, uint32_t map_id, const std::string& map_name,
                      const LinkAttachments& links, HookScan* out);

}  // namespace tether::inspect

#endif  // TETHER_LIB_INSPECT_SCAN_INTERNAL_H_
