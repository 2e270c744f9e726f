// Collection: the kernel objects made from a CollectionSpec, loaded all
// or nothing.
//
// Load order: maps (honouring pins and replacements), global data (then
// .rodata is frozen), programs (relocated, with func_info and line_info),
// static initialisers of program arrays and map-in-maps, then struct_ops
// maps registered (tether/struct_ops.h). The object graph
// learns every edge on the way. If any step fails, everything the load
// created is closed and every pin it made is removed, and the Status names
// the object that failed (with the verifier log for programs).
#ifndef TETHER_COLLECTION_H_
#define TETHER_COLLECTION_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tether/collection_spec.h"
#include "tether/lifetime.h"
#include "tether/link.h"
#include "tether/map.h"
#include "tether/program.h"
#include "tether/tail_call_site.h"

namespace tether {

struct CollectionOptions {
  // Where maps with pinning = by-name live: <pin_dir>/<map name>. Must be
  // on bpffs. Empty: such maps are refused with a clear error.
  std::string pin_dir;
  // Use these maps instead of creating the ones with the same names. Each
  // must be compatible with its spec (type, sizes, max_entries, flags).
  absl::flat_hash_map<std::string, Map> replace_maps;
  // Verifier log for every program (0: only on failure, at level 1).
  uint32_t log_level = 0;
  uint32_t log_size_cap = 16u << 20;
  // Program type for programs whose section says nothing, and per-name
  // overrides (which win over the section).
  uint32_t default_program_type = 0;
  absl::flat_hash_map<std::string, uint32_t> program_types;
  // Lifetime policy of the maps created, by name, and for all others.
  absl::flat_hash_map<std::string, LifetimePolicy> map_policies;
  LifetimePolicy default_map_policy = LifetimePolicy::kDefault;
  // Kernel config for .kconfig externs; read from the running kernel when
  // absent and the object needs it.
  const KernelConfig* kernel_config = nullptr;
  // Types CO-RE relocations resolve against. nullptr: the running
  // kernel's (vmlinux, then module BTF). Otherwise the caller's BTF, e.g.
  // Btf::LoadKernel("/path/to/other/vmlinux") or another object's
  // CollectionSpec::btf; it must outlive the load.
  const Btf* core_target = nullptr;
  // Count the misses of every bpf_tail_call: the loader inserts a counter
  // increment after each call site (it runs only when the call missed) and
  // creates one counter map, "tether_misses", for the collection. Nothing
  // is inserted or created for programs without tail calls. See
  // docs/lifecycle.md, "Tail-call miss counters".
  bool count_tail_call_misses = true;
  // Threads that link and load programs (BPF_PROG_LOAD runs the verifier
  // and JIT of a privileged caller's programs concurrently). 1: one after
  // another on the calling thread. 0: the environment variable
  // TETHER_LOAD_THREADS if set to a positive number, else one per online
  // CPU, at most 4; none started for a load of one or two programs or on
  // a machine with one or two CPUs.
  // Never more than the programs to load. The result does not depend on
  // it: the same programs, maps, graph and, when a program fails, the
  // error of the first failing program in name order (the one a serial
  // load returns), with every fd of the load closed. See docs/api.md.
  uint32_t load_threads = 0;
};

// Distinct error for a pinned map that does not match its spec. The
// Status is FailedPrecondition; this tells which field differed.
bool IsIncompatiblePin(const absl::Status& status, std::string* field = nullptr);

class Collection {
 public:
  Collection() = default;

  static absl::StatusOr<Collection> Load(const CollectionSpec& spec,
                                         const CollectionOptions& options = {});

  const std::map<std::string, Map>& maps() const { return maps_; }
  const std::map<std::string, Program>& programs() const { return programs_; }
  // The struct_ops links that register the `.struct_ops.link` maps, by
  // map name (tether/struct_ops.h): Load links every one. Dropping one
  // unregisters its map.
  const std::map<std::string, Link>& links() const { return links_; }
  // Empty handle if absent.
  Map map(absl::string_view name) const;
  Program program(absl::string_view name) const;
  Link link(absl::string_view name) const;
  // Pins the load made (not pins it reused).
  const std::vector<std::string>& created_pins() const { return created_pins_; }
  // Programs a full load left out: their section names no program type and
  // no type was given (CollectionOptions::program_types), so they serve
  // only as callees of the others; or they are struct_ops programs that no
  // struct_ops map of the object uses.
  const std::vector<std::string>& skipped_programs() const { return skipped_programs_; }
  // The verifier's log of a program that loaded, when
  // CollectionOptions::log_level > 0; empty otherwise. With BTF, its
  // "; <source line>" comments come from the object's line_info.
  const std::string& verifier_log(absl::string_view program) const;
  // Every bpf_tail_call site of the loaded programs (sub-programs included,
  // once per program that contains them) with its current miss count, in
  // counter order. Empty when no program has a tail call or the option
  // count_tail_call_misses was off.
  absl::StatusOr<std::vector<TailCallSite>> TailCallMisses() const;
  // The counter map behind TailCallMisses(); an empty handle if none. It
  // is not in maps(): the object did not ask for it.
  const Map& tail_call_miss_map() const { return miss_counters_; }

 private:
  friend class CollectionLoader;
  std::map<std::string, Map> maps_;
  std::map<std::string, Program> programs_;
  std::map<std::string, Link> links_;
  std::vector<std::string> created_pins_;
  std::vector<std::string> skipped_programs_;
  std::map<std::string, std::string, std::less<>> verifier_logs_;
  Map miss_counters_;
  std::vector<TailCallSite> miss_sites_;
};

// The tail-call sites of `program` with their miss counts, for any
// program loaded with counters, by this process or another: found from the
// program's code and maps alone (the counter map's BTF holds the site
// table). Empty when the program has no counters.
absl::StatusOr<std::vector<TailCallSite>> TailCallMisses(const Program& program);

// LoadAndAssign: load only what the caller asks for, plus what it needs.
//
// C++ has no reflection, so the caller lists its bindings. Only the
// programs and maps named are loaded, with their dependencies: the maps the
// programs use, and the programs and maps that static initialisers of those
// maps refer to. The load is refused if a program array it would create has
// static entries yet would end up with no user reference: neither bound
// here, nor pinned, nor replaced. The kernel would clear it at once.
// A `.struct_ops.link` map listed in `links` is loaded, registered by a
// struct_ops link, and the link assigned (list it in `maps` too for its map
// handle). Other `.struct_ops.link` maps loaded get their value set but no
// link: AttachStructOps or UpdateStructOpsLink registers them later (two
// variants of one congestion control share its name, and only one can be
// registered at a time). A `.struct_ops` map listed in `maps` stays
// registered until its last handle goes.
struct Assignment {
  std::vector<std::pair<std::string, Map*>> maps;
  std::vector<std::pair<std::string, Program*>> programs;
  std::vector<std::pair<std::string, Link*>> links;
};

absl::Status LoadAndAssign(const CollectionSpec& spec, const Assignment& assignment,
                           const CollectionOptions& options = {});

}  // namespace tether

#endif  // TETHER_COLLECTION_H_
