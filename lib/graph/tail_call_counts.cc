#include "graph/tail_call_counts.h"

#include <linux/bpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <utility>

#include "absl/base/const_init.h"
#include "absl/container/flat_hash_map.h"
#include "base/mutex_internal.h"
#include "sys/bpf.h"

namespace tether::detail {
namespace {

struct Registered {
  uint32_t counter_map_id = 0;
  std::vector<TailCallSite> sites;
};

ABSL_CONST_INIT Mutex registry_mu(absl::kConstInit);
absl::flat_hash_map<uint32_t, Registered>& Registry() {
  static auto* registry = new absl::flat_hash_map<uint32_t, Registered>();
  return *registry;
}
// The registry's size at which the next registration looks for freed
// programs: twice what the last look kept, and at least kFirstSweep. Looking
// at every registration probed every program registered before, live ones
// included (an fd opened and closed for each), so that an agent holding ten
// collections paid a syscall per program it held on each load; doubling
// keeps the probes proportional to the registrations, and the registry
// within twice the programs alive.
constexpr size_t kFirstSweep = 256;
size_t next_sweep ABSL_GUARDED_BY(registry_mu) = kFirstSweep;

// Whether the kernel has freed program `id` (GET_FD_BY_ID says ENOENT).
// The bare syscall: a Status with a formatted message per probe cost more
// than the probe, and a load probes every program registered before it.
bool ProgramGone(uint32_t id) {
  union bpf_attr attr;
  constexpr unsigned kSize = offsetof(union bpf_attr, open_flags) + sizeof(attr.open_flags);
  memset(&attr, 0, kSize);
  attr.prog_id = id;
  long ret = sys::Bpf(BPF_PROG_GET_FD_BY_ID, &attr, kSize);
  if (ret >= 0) close(static_cast<int>(ret));
  return ret == -ENOENT;
}

}  // namespace

void GraphRegisterTailCallSites(uint32_t counter_map_id,
                                std::vector<std::pair<uint32_t, std::vector<TailCallSite>>> programs) {
  std::vector<uint32_t> ids;
  {
    MutexLock lock(&registry_mu);
    if (Registry().size() + programs.size() >= next_sweep)
      for (const auto& [id, r] : Registry()) ids.push_back(id);
  }
  // Programs freed since: their ids are gone from the kernel.
  std::vector<uint32_t> gone;
  for (uint32_t id : ids)
    if (ProgramGone(id)) gone.push_back(id);
  MutexLock lock(&registry_mu);
  for (uint32_t id : gone) Registry().erase(id);
  for (auto& [prog_id, sites] : programs)
    Registry()[prog_id] = Registered{counter_map_id, std::move(sites)};
  if (!ids.empty()) next_sweep = std::max(kFirstSweep, 2 * Registry().size());
}

void AddTailCallCounts(std::vector<GraphNode>* nodes) {
  absl::flat_hash_map<uint32_t, Registered> registered;
  {
    MutexLock lock(&registry_mu);
    if (Registry().empty()) return;
    for (const GraphNode& n : *nodes) {
      if (n.ref.kind != NodeKind::kProgram || !n.tail_call_sites.empty()) continue;
      auto it = Registry().find(n.ref.id);
      if (it != Registry().end()) registered.emplace(it->first, it->second);
    }
  }
  absl::flat_hash_map<uint32_t, std::vector<uint64_t>> counts;  // counter map id -> counts
  for (GraphNode& n : *nodes) {
    auto it = n.ref.kind == NodeKind::kProgram ? registered.find(n.ref.id) : registered.end();
    if (it == registered.end()) continue;
    uint32_t map_id = it->second.counter_map_id;
    auto c = counts.find(map_id);
    if (c == counts.end()) {
      std::vector<uint64_t> values;
      auto fd = sys::GetFdById(sys::ObjectKind::kMap, map_id);
      auto info = fd.ok() ? sys::GetMapInfo(fd->get()) : absl::StatusOr<bpf_map_info>(fd.status());
      if (info.ok() && info->type == BPF_MAP_TYPE_ARRAY && info->value_size % 8 == 0) {
        values.resize(info->value_size / 8);
        uint32_t zero = 0;
        if (sys::MapLookupElem(fd->get(), &zero, values.data(), 0) != 0) values.clear();
      }
      c = counts.emplace(map_id, std::move(values)).first;
    }
    if (c->second.empty()) continue;
    n.tail_call_sites = it->second.sites;
    for (TailCallSite& s : n.tail_call_sites) s.misses = s.index < c->second.size() ? c->second[s.index] : 0;
  }
}

}  // namespace tether::detail
