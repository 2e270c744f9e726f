// struct_ops maps of a collection: what the kernel's type decides about
// each map and its programs, the value built from the object's data, and
// registration. Internal to the collection loader.
//
// Order within a load (see docs/lifecycle.md, "struct_ops"): Plan() before
// maps are created (MAP_CREATE takes the kernel's value type and size);
// AdjustProgram() while programs load (each needs the kernel struct's type
// id and its member index); Register() last, once every program has an fd:
// BPF_MAP_UPDATE_ELEM registers a .struct_ops map, and a .struct_ops.link
// map is updated and then attached with a struct_ops link.
#ifndef TETHER_LIB_LOAD_STRUCT_OPS_H_
#define TETHER_LIB_LOAD_STRUCT_OPS_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/optional.h"
#include "tether/btf.h"
#include "tether/collection_spec.h"
#include "tether/link.h"
#include "tether/map.h"
#include "tether/program.h"

namespace tether::detail {

// One function pointer of a struct_ops map that the object sets.
struct StructOpsProgramSlot {
  std::string program;
  std::string member;
  uint32_t member_index = 0;  // in the kernel's struct: the program's expected_attach_type
};

// What the running kernel says about one struct_ops map of the object.
struct StructOpsPlan {
  std::string map;
  std::string type_name;         // "tcp_congestion_ops"
  uint32_t kernel_type_id = 0;   // struct <type_name> in vmlinux: programs' attach_btf_id
  uint32_t value_type_id = 0;    // struct bpf_struct_ops_<type_name>: btf_vmlinux_value_type_id
  uint32_t value_size = 0;       // sizeof that wrapper
  uint32_t data_offset = 0;      // of its `data` member, the struct itself
  bool link = false;             // .struct_ops.link: BPF_F_LINK, registered by a link
  std::vector<StructOpsProgramSlot> slots;
};

// Resolves one struct_ops map against the kernel's BTF. Fails, naming the
// map and the type, when the kernel has no such struct_ops type, or when
// a function pointer the object sets has no member of that name there.
absl::StatusOr<StructOpsPlan> PlanStructOps(const CollectionSpec& spec, const MapSpec& map,
                                            const Btf& kernel);

// The map value the kernel takes: the object's non-function members
// copied by name into the kernel's layout, function pointers replaced by
// the programs' fds. Refuses a non-zero member the kernel's struct lacks
// and a member whose size differs.
absl::StatusOr<std::vector<uint8_t>> BuildStructOpsValue(
    const CollectionSpec& spec, const MapSpec& map, const StructOpsPlan& plan, const Btf& kernel,
    const std::map<std::string, Program>& programs);

class StructOpsLoader {
 public:
  // Plans the struct_ops maps among `maps` (names in spec.maps, in name
  // order), and checks that each program they use serves one kernel
  // member only.
  absl::Status Plan(const CollectionSpec& spec, const std::vector<const std::string*>& maps);
  bool empty() const { return plans_.empty(); }
  // Links only these .struct_ops.link maps (LoadAndAssign's links); the
  // others get their value set but stay unregistered, ready for
  // AttachStructOps or UpdateStructOpsLink. Default: link every one.
  void LinkOnly(std::set<std::string> maps) { link_only_ = std::move(maps); }

  // MAP_CREATE fields the kernel's type decides; no-op for other maps.
  void AdjustMap(const std::string& map, MapOptions* options) const;
  // attach_btf_id and expected_attach_type of a struct_ops program. Fails
  // for one that no struct_ops map of the load uses (the kernel could not
  // tell which member it implements).
  absl::Status AdjustProgram(const std::string& program, ProgramLoadOptions* options) const;

  // Registers every planned map, in name order: the value, the update,
  // and for .struct_ops.link maps the link, stored in `links` under the
  // map's name. The graph learns map -> program edges and link -> map.
  absl::Status Register(const CollectionSpec& spec, const std::map<std::string, Map>& maps,
                        const std::map<std::string, Program>& programs,
                        std::map<std::string, Link>* links) const;

 private:
  std::map<std::string, StructOpsPlan> plans_;              // by map name
  std::map<std::string, const StructOpsPlan*> by_program_;  // program -> its map's plan
  std::map<std::string, uint32_t> member_of_program_;
  absl::optional<std::set<std::string>> link_only_;
};

}  // namespace tether::detail

#endif  // TETHER_LIB_LOAD_STRUCT_OPS_H_
