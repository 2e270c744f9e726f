// Maps an ELF section name, as written with libbpf's SEC() macro, to the
// program type, expected attach type and attach target it implies.
#ifndef TETHER_SECTION_NAMES_H_
#define TETHER_SECTION_NAMES_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace tether {

// BPF_F_SLEEPABLE and BPF_F_XDP_HAS_FRAGS, as PROG_LOAD's prog_flags.
inline constexpr uint32_t kProgFlagSleepable = 1u << 4;
inline constexpr uint32_t kProgFlagXdpHasFrags = 1u << 5;

struct SectionInfo {
  // False when nothing in the name was recognised: the type is then
  // BPF_PROG_TYPE_UNSPEC (0) and the caller must set one before loading.
  bool known = false;
  uint32_t prog_type = 0;             // enum bpf_prog_type
  uint32_t expected_attach_type = 0;  // enum bpf_attach_type
  // What follows the section prefix: the function of kprobe/<fn>, the
  // "category/name" of tracepoint/<category>/<name>, the BTF name of
  // fentry/<fn>, the binary:function of uprobe/<...>. Empty if none.
  std::string attach_to;
  uint32_t prog_flags = 0;
  // kretprobe, uretprobe and their multi variants attach to the return.
  bool return_probe = false;
  // The libbpf prefix that matched ("kprobe", "cgroup/connect4", ...).
  std::string matched;
};

// Never fails: an unknown name gives known == false.
SectionInfo ParseSectionName(absl::string_view section);

}  // namespace tether

#endif  // TETHER_SECTION_NAMES_H_
