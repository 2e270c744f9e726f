#include "tether/collection.h"

#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/types/optional.h"
#include "graph/graph_internal.h"
#include "graph/tail_call_counts.h"
#include "load/externs.h"
#include "load/struct_ops.h"
#include "load/miss_counters.h"
#include "btf/kernel_btf.h"
#include "handles/pin_internal.h"
#include "sys/bpf.h"
#include "sys/uapi_compat.h"
#include "tether/btf.h"
#include "tether/core.h"
#include "tether/pin.h"
#include "tether/prog_array.h"
#include "tether/probe.h"
#include "base/printable.h"
#include "base/status_macros.h"

namespace tether {
namespace {

static_assert(sizeof(FuncInfo) == sizeof(bpf_func_info), "FuncInfo is the kernel's record");
static_assert(sizeof(LineInfo) == sizeof(bpf_line_info), "LineInfo is the kernel's record");

constexpr char kIncompatiblePinPayload[] = "tether/incompatible-pin";

bool IsMapInMap(uint32_t type) {
  return type == BPF_MAP_TYPE_ARRAY_OF_MAPS || type == BPF_MAP_TYPE_HASH_OF_MAPS;
}

// Kernel object names allow [A-Za-z0-9_.] (ASCII, whatever the locale)
// and 15 bytes.
std::string KernelName(absl::string_view name) {
  char out[BPF_OBJ_NAME_LEN];
  size_t n = std::min<size_t>(name.size(), BPF_OBJ_NAME_LEN - 1);
  for (size_t i = 0; i < n; ++i) {
    char c = name[i];
    out[i] = absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' ? c : '_';
  }
  return std::string(out, n);
}

uint32_t PageSize() { return static_cast<uint32_t>(sysconf(_SC_PAGESIZE)); }

// A ring buffer's size must be a power-of-2 multiple of the page size; a
// spec asking for another size gets the next one up, as libbpf does, so
// that both loaders make (and accept as a pin) the same map.
uint32_t RingSize(uint32_t requested) {
  uint64_t size = PageSize();
  while (size < requested && size <= (uint64_t{1} << 31)) size <<= 1;
  return size > UINT32_MAX ? requested : static_cast<uint32_t>(size);
}

// What the kernel will report for a map made from `spec`: flags it adds
// itself and sizes it rounds, so a pin made from the same spec compares
// equal.
struct Normalised {
  uint32_t type, key_size, value_size, max_entries, flags;
  uint64_t map_extra;
};
Normalised Normalise(uint32_t type, uint32_t key, uint32_t value, uint32_t max, uint32_t flags,
                     uint64_t extra) {
  if (type == BPF_MAP_TYPE_DEVMAP || type == BPF_MAP_TYPE_DEVMAP_HASH) flags &= ~BPF_F_RDONLY_PROG;
  if (type == BPF_MAP_TYPE_RINGBUF || type == BPF_MAP_TYPE_USER_RINGBUF) max = RingSize(max);
  if (type == BPF_MAP_TYPE_PERF_EVENT_ARRAY && max == 0) max = 0;  // sized at load; any pin fits
  return {type, key, value, max, flags, extra};
}

absl::Status CheckCompatible(const MapSpec& spec, const Map& existing, absl::string_view where) {
  Normalised want = Normalise(spec.type, spec.key_size, spec.value_size, spec.max_entries,
                              spec.flags, spec.map_extra);
  Normalised have = Normalise(existing.type(), existing.key_size(), existing.value_size(),
                              existing.max_entries(), existing.flags(), existing.info().map_extra);
  auto mismatch = [&](absl::string_view field, uint64_t h, uint64_t w) {
    absl::Status st = absl::FailedPreconditionError(absl::StrFormat(
        "map '%s': %s is incompatible: %s is %u there but %u in the spec", spec.name, where, field,
        h, w));
    st.SetPayload(kIncompatiblePinPayload, absl::Cord(std::string(field)));
    return st;
  };
  if (have.type != want.type) return mismatch("type", have.type, want.type);
  if (have.key_size != want.key_size) return mismatch("key_size", have.key_size, want.key_size);
  if (have.value_size != want.value_size) return mismatch("value_size", have.value_size, want.value_size);
  if (want.max_entries != 0 && have.max_entries != want.max_entries)
    return mismatch("max_entries", have.max_entries, want.max_entries);
  if (have.flags != want.flags) return mismatch("flags", have.flags, want.flags);
  if (have.map_extra != want.map_extra) return mismatch("map_extra", have.map_extra, want.map_extra);
  return absl::OkStatus();
}

using base::Annotate;

// When the kernel refused to create a map or load a program for its kind
// (EPERM, or EACCES that no verifier log explains) rather than for its
// content, says so: the object, the map or program, the errno, and what
// the feature's probe reads on this kernel, so that a user can tell a
// hardened kernel from a bad object.
absl::Status ExplainRefusal(const absl::Status& st, absl::string_view source,
                            absl::string_view command, absl::string_view probe_name,
                            const std::function<absl::Status()>& probe) {
  if (!sys::IsPolicyRefusal(st) || st.message().find(command) == absl::string_view::npos) return st;
  int err = sys::StatusErrno(st);
  absl::Status reading = probe();
  std::string verdict = absl::StrCat(probe::AnswerName(probe::AnswerOf(reading)),
                                     reading.ok() ? "" : absl::StrCat(": ", reading.message()));
  absl::Status out = absl::PermissionDeniedError(absl::StrFormat(
      "object '%s': %s: refused by this kernel (%s); probe %s: %s", source, st.message(),
      sys::ErrnoName(err), probe_name, verdict));
  st.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, payload);
  });
  return out;
}

// The probe that says whether this kernel accepts programs like `p`: the
// iterator target or the trampoline for tracing programs that need one,
// the program type otherwise.
std::pair<std::string, std::function<absl::Status()>> ProgramProbe(uint32_t type,
                                                                   const ProgramSpec& p) {
  if (type == BPF_PROG_TYPE_TRACING && p.expected_attach_type == BPF_TRACE_ITER) {
    return {absl::StrCat("iterator:", p.attach_to),
            [target = p.attach_to] { return probe::HaveIterator(target); }};
  }
  if (type == BPF_PROG_TYPE_STRUCT_OPS) return {"struct_ops", [] { return probe::HaveStructOps(); }};
  if (type == BPF_PROG_TYPE_EXT || type == BPF_PROG_TYPE_LSM ||
      (type == BPF_PROG_TYPE_TRACING && p.expected_attach_type != BPF_TRACE_RAW_TP)) {
    return {"trampolines", [] { return probe::HaveTrampolines(); }};
  }
  return {absl::StrCat("prog_type:", ProgramTypeName(type)),
          [type] { return probe::HaveProgramType(type); }};
}

// The kernel symbol a tracing program attaches to, and the BTF kind
// naming it in vmlinux.
struct AttachTarget {
  std::string name;
  BtfKind kind;
};
absl::optional<AttachTarget> TracingTarget(const ProgramSpec& p) {
  if (p.attach_to.empty()) return absl::nullopt;
  switch (p.type) {
    case BPF_PROG_TYPE_TRACING:
      if (p.expected_attach_type == BPF_TRACE_RAW_TP)
        return AttachTarget{absl::StrCat("btf_trace_", p.attach_to), BtfKind::kTypedef};
      if (p.expected_attach_type == BPF_TRACE_ITER)
        return AttachTarget{absl::StrCat("bpf_iter_", p.attach_to), BtfKind::kFunc};
      return AttachTarget{p.attach_to, BtfKind::kFunc};
    case BPF_PROG_TYPE_LSM:
      return AttachTarget{absl::StrCat("bpf_lsm_", p.attach_to), BtfKind::kFunc};
    default:
      return absl::nullopt;
  }
}

}  // namespace

bool IsIncompatiblePin(const absl::Status& status, std::string* field) {
  auto payload = status.GetPayload(kIncompatiblePinPayload);
  if (!payload) return false;
  if (field) *field = std::string(*payload);
  return true;
}

// Builds a Collection step by step; on any error, Rollback() undoes it.
//
// Every map and program of the spec has an entry, in the spec's (name)
// order, found by name once through an index: the steps walk the wanted
// entries and carry each one's linked code and made handle, so that no
// step looks a name up again (string-keyed sets and maps, searched again
// in every step, cost the agent object's load 16% of its user
// instructions, issue 21).
class CollectionLoader {
 public:
  CollectionLoader(const CollectionSpec& spec, const CollectionOptions& options)
      : spec_(spec), opt_(options), externs_(spec, options) {
    maps_.reserve(spec_.maps.size());
    map_index_.reserve(spec_.maps.size());
    for (const auto& [name, m] : spec_.maps) {
      map_index_.emplace(name, static_cast<uint32_t>(maps_.size()));
      maps_.emplace_back(&name, &m);
    }
    programs_.reserve(spec_.programs.size());
    program_index_.reserve(spec_.programs.size());
    for (const auto& [name, p] : spec_.programs) {
      program_index_.emplace(name, static_cast<uint32_t>(programs_.size()));
      programs_.emplace_back(&name, &p);
    }
  }

  ~CollectionLoader() {
    if (!committed_) Rollback();
  }

  // Resolves what to load: every object, or the requested ones and their
  // dependencies, with an explicit worklist.
  absl::Status Resolve(const std::set<std::string>* want_programs,
                       const std::set<std::string>* want_maps) {
    work_.reserve(maps_.size() + programs_.size());
    if (want_programs == nullptr && want_maps == nullptr) {
      for (ProgramEntry& p : programs_) {
        // A function in a section that names no program type (cilium's
        // "other") is only ever a callee; a full load skips it unless the
        // caller gave it a type.
        p.type = EffectiveType(p);
        if (p.type == BPF_PROG_TYPE_UNSPEC || UnusedStructOps(p)) {
          result_.skipped_programs_.push_back(*p.name);
          continue;
        }
        Want(true, *p.name);
      }
      for (MapEntry& m : maps_) Want(false, *m.name);
    } else {
      if (want_programs)
        for (const auto& n : *want_programs) Want(true, n);
      if (want_maps)
        for (const auto& n : *want_maps) Want(false, n);
    }
    for (size_t next = 0; next < work_.size(); ++next) {
      const Work& w = work_[next];
      if (w.index == kNone) {
        return absl::NotFoundError(absl::StrCat("collection: no ", w.is_program ? "program" : "map",
                                                " '", missing_[w.missing], "' in the object"));
      }
      absl::Status st = w.is_program ? ResolveProgram(programs_[w.index]) : ResolveMap(maps_[w.index]);
      if (!st.ok()) return st;
    }
    work_ = std::vector<Work>();
    missing_ = std::vector<std::string>();
    for (ProgramEntry& p : programs_)
      if (p.wanted) programs_wanted_.push_back(&p);
    for (MapEntry& m : maps_)
      if (m.wanted) maps_wanted_.push_back(&m);
    return absl::OkStatus();
  }

  // The LoadAndAssign refusal: an array with static entries that nothing
  // would reference once the load returns.
  absl::Status CheckNoOrphanedArrays(const std::set<std::string>& assigned_maps) const {
    for (const MapEntry* entry : maps_wanted_) {
      const std::string& name = *entry->name;
      const MapSpec& m = *entry->spec;
      if (m.type != BPF_MAP_TYPE_PROG_ARRAY || m.init.empty()) continue;
      if (assigned_maps.count(name) || opt_.replace_maps.count(name)) continue;
      if (m.pinning == PinType::kByName && !opt_.pin_dir.empty()) continue;
      std::vector<std::string> slots;
      for (const MapInitEntry& e : m.init) slots.push_back(absl::StrCat("[", e.key, "]=", e.name));
      std::vector<std::string> callers = UsersOf(name);
      return absl::FailedPreconditionError(absl::StrFormat(
          "LoadAndAssign: program array '%s' has static entries %s but would have no user "
          "reference after the load (not assigned, not pinned, not replaced), so the kernel "
          "would clear it at once and tail calls from %s would miss. Assign it, pin it "
          "(pinning by name with a pin directory), or replace it with a Map you hold.",
          name, absl::StrJoin(slots, ", "),
          callers.empty() ? std::string("its programs") : absl::StrJoin(callers, ", ")));
    }
    return absl::OkStatus();
  }

  // Every by-name pin path, checked before anything is created: a name
  // from the object is untrusted, and a refused one must leave nothing
  // behind (no map, no pin, no directory).
  absl::Status CheckPinPaths() {
    bool any = false;
    for (MapEntry* entry : maps_wanted_) {
      const std::string& name = *entry->name;
      const MapSpec& m = *entry->spec;
      if (m.pinning != PinType::kByName || opt_.replace_maps.count(name)) continue;
      std::string what = absl::StrCat("map '", base::Printable(name), "'");
      if (opt_.pin_dir.empty()) {
        return absl::FailedPreconditionError(
            absl::StrCat(what, " is pinned by name, but CollectionOptions::pin_dir is empty"));
      }
      absl::Status on_fs = CheckOnBpffs(opt_.pin_dir);
      if (!on_fs.ok()) return Annotate(on_fs, absl::StrCat(what, ": pin directory"));
      auto path = PinPathInside(opt_.pin_dir, name, what);
      if (!path.ok()) return path.status();
      entry->pin_path = *std::move(path);
      any = true;
    }
    if (any) missing_dirs_ = detail::MissingDirectories(opt_.pin_dir);
    return absl::OkStatus();
  }

  absl::Status LoadBtf() {
    if (!spec_.btf) return absl::OkStatus();
    std::vector<uint8_t> blob = SanitizeBtfForKernel(*spec_.btf, KernelBtfFeatures());
    auto loaded = sys::BtfLoad(blob);
    if (!loaded.ok()) {
      // Like libbpf: without BTF the maps and programs still load, only
      // without source lines in verifier logs. A transient failure is
      // different: it would fail the next step too.
      int err = sys::StatusErrno(loaded.status());
      if (err == ENOMEM || err == EMFILE || err == ENFILE) {
        return Annotate(loaded.status(), "collection: loading the object's BTF");
      }
      btf_warning_ = std::string(loaded.status().message());
      return absl::OkStatus();
    }
    btf_fd_ = std::move(loaded->fd);
    return absl::OkStatus();
  }

  // struct_ops maps take their type and size from the kernel's BTF, and
  // their programs are loaded against it; registration needs every
  // program's fd, so it comes last (lib/load/struct_ops.h).
  absl::Status PlanStructOps() {
    std::vector<const std::string*> struct_ops;
    for (const MapEntry* m : maps_wanted_)
      if (m->spec->type == BPF_MAP_TYPE_STRUCT_OPS) struct_ops.push_back(m->name);
    return struct_ops_.Plan(spec_, struct_ops);
  }
  void LinkStructOpsOnly(std::set<std::string> maps) { struct_ops_.LinkOnly(std::move(maps)); }
  absl::Status RegisterStructOps() {
    return struct_ops_.Register(spec_, result_.maps_, result_.programs_, &result_.links_);
  }

  absl::Status CreateMaps() {
    // Inner-map templates and initialisers name other maps; create in
    // dependency order: plain maps first, then map-in-maps.
    std::vector<MapEntry*> order;
    order.reserve(maps_wanted_.size());
    for (MapEntry* m : maps_wanted_)
      if (!IsMapInMap(m->spec->type)) order.push_back(m);
    for (MapEntry* m : maps_wanted_)
      if (IsMapInMap(m->spec->type)) order.push_back(m);
    for (MapEntry* entry : order) {
      const MapSpec& m = *entry->spec;
      absl::Status st = CreateMap(*entry);
      if (!st.ok()) {
        return ExplainRefusal(st, spec_.source, "BPF_MAP_CREATE",
                              absl::StrCat("map_type:", MapTypeName(m.type)),
                              [type = m.type] { return probe::HaveMapType(type); });
      }
    }
    return absl::OkStatus();
  }

  // Every program, relocated and loaded by one worker
  // (CollectionOptions::load_threads) from the code Resolve linked. The outcome is the serial one:
  // programs go into the result in name order, and the error returned is
  // that of the first failing program in that order. Workers take the
  // programs in that order and none starts a program past a failed one,
  // so every program before the first failure has been tried when they
  // stop; programs past it that loaded meanwhile go into the result too,
  // and Rollback closes them with the rest.
  absl::Status LoadPrograms() {
    const std::vector<ProgramEntry*>& order = programs_wanted_;
    std::vector<LoadedProgram> loaded(order.size());
    size_t threads = LoadThreads(order.size());
    if (threads <= 1) {
      for (size_t i = 0; i < order.size(); ++i) {
        loaded[i] = LoadProgram(*order[i]);
        if (!loaded[i].status.ok()) break;
      }
    } else {
      LoadInParallel(order, threads, &loaded);
    }
    absl::Status first_error;
    for (size_t i = 0; i < order.size(); ++i) {
      LoadedProgram& l = loaded[i];
      if (l.program) {
        // In name order: each goes in at the end.
        const std::string& name = *order[i]->name;
        order[i]->program = &result_.programs_.emplace_hint(result_.programs_.end(), name,
                                                            std::move(l.program))->second;
        if (!l.log.empty()) result_.verifier_logs_.emplace(name, std::move(l.log));
      } else if (!l.status.ok() && first_error.ok()) {
        first_error = std::move(l.status);
      }
    }
    return first_error;
  }

  absl::Status InitialiseMaps() {
    for (const MapEntry* entry : maps_wanted_) {
      const std::string& name = *entry->name;
      const MapSpec& m = *entry->spec;
      // Replaced and reused maps get the static entries too: they must
      // point at the programs this load made, not at older ones.
      if (m.init.empty()) continue;
      const Map& map = *entry->map;
      if (m.type == BPF_MAP_TYPE_PROG_ARRAY) {
        auto array = ProgramArray::FromMap(map, /*read_entries=*/false);
        if (!array.ok()) return array.status();
        for (const MapInitEntry& e : m.init) {
          const Program* prog = LoadedProgramNamed(e.name);
          if (prog == nullptr) {
            return absl::NotFoundError(absl::StrFormat(
                "map '%s': static entry [%u] names program '%s', which was not loaded", name, e.key, e.name));
          }
          absl::Status st = array->Set(e.key, *prog);
          if (!st.ok()) return Annotate(st, "collection: static initialisation");
        }
      } else if (IsMapInMap(m.type)) {
        for (const MapInitEntry& e : m.init) {
          const Map* inner = CreatedMapNamed(e.name);
          if (inner == nullptr) {
            return absl::NotFoundError(absl::StrFormat(
                "map '%s': static entry [%u] names map '%s', which was not created", name, e.key, e.name));
          }
          uint32_t fd = static_cast<uint32_t>(inner->fd());
          int ret = sys::MapUpdateElem(map.fd(), &e.key, &fd, BPF_ANY);
          if (ret < 0) {
            return sys::ErrnoStatus(-ret, absl::StrFormat("map '%s' (id %u)", name, map.id()),
                                    absl::StrFormat("static entry [%u] = map '%s'", e.key, e.name));
          }
          detail::GraphSetInnerMap(map.id(), e.key, inner->id());
        }
      }
    }
    return absl::OkStatus();
  }

  // One counter map for every tail-call site of the load (none without).
  absl::Status CreateMissCounters() {
    if (miss_sites_.empty()) return absl::OkStatus();
    for (TailCallSite& site : miss_sites_) {
      if (site.array.empty()) continue;
      if (const Map* array = CreatedMapNamed(site.array)) site.array_id = array->id();
    }
    auto map = detail::CreateMissCounterMap(miss_sites_, opt_.default_map_policy);
    if (!map.ok()) return Annotate(map.status(), "collection: creating the tail-call miss counters");
    miss_counter_at_ = result_.maps_.emplace(detail::kMissCounterKey, *std::move(map)).first;
    miss_counter_map_ = &miss_counter_at_->second;
    return absl::OkStatus();
  }

  Collection Commit() {
    committed_ = true;
    if (miss_counter_map_ != nullptr) {
      result_.miss_counters_ = *miss_counter_map_;
      miss_counter_map_ = nullptr;
      result_.maps_.erase(miss_counter_at_);
      // The process graph's writers show the counts of these programs:
      // each program's sites, which Resolve appended together, in name order.
      std::vector<std::pair<uint32_t, std::vector<TailCallSite>>> registered;
      for (const ProgramEntry* p : programs_wanted_) {
        if (p->program == nullptr || p->sites_begin == p->sites_end) continue;
        registered.emplace_back(p->program->id(),
                                std::vector<TailCallSite>(miss_sites_.begin() + p->sites_begin,
                                                          miss_sites_.begin() + p->sites_end));
      }
      result_.miss_sites_ = std::move(miss_sites_);
      detail::GraphRegisterTailCallSites(result_.miss_counters_.id(), std::move(registered));
    }
    return std::move(result_);
  }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  // A fixup's map: an index in maps_, or the counter map, or none.
  static constexpr uint32_t kCounterMap = UINT32_MAX - 1;

  struct MapEntry {
    MapEntry(const std::string* n, const MapSpec* m) : name(n), spec(m) {}
    const std::string* name;  // the key in spec_.maps
    const MapSpec* spec;
    bool wanted = false;
    bool reused = false;   // replaced or pinned before
    std::string pin_path;  // by-name pinning: the checked path
    const Map* map = nullptr;  // in result_.maps_, once created
  };
  struct ProgramEntry {
    ProgramEntry(const std::string* n, const ProgramSpec* p) : name(n), spec(p) {}
    const std::string* name;  // the key in spec_.programs
    const ProgramSpec* spec;
    bool wanted = false;
    uint32_t type = BPF_PROG_TYPE_UNSPEC;  // EffectiveType, once resolved
    // Linked once, by Resolve; its worker alone touches it while programs load.
    LinkedProgram linked;
    size_t fixup_maps = 0;  // where its fixups' maps start in fixup_maps_
    size_t sites_begin = 0, sites_end = 0;  // its tail-call sites in miss_sites_
    const Program* program = nullptr;  // in result_.programs_, once loaded
  };
  // One object to resolve: an index, or kNone and the name nothing has
  // (at missing_[missing]).
  struct Work {
    bool is_program;
    uint32_t index;
    uint32_t missing;
  };
  using NameIndex = absl::flat_hash_map<absl::string_view, uint32_t>;

  // A name joins the worklist when first seen, so that it holds each
  // object once however many programs reference it.
  // Returns its index, kNone when the spec has no such object.
  uint32_t Want(bool is_program, const std::string& name) {
    uint32_t i = is_program ? ProgramIndex(name) : MapIndex(name);
    if (i == kNone) {
      work_.push_back(Work{is_program, kNone, static_cast<uint32_t>(missing_.size())});
      missing_.push_back(name);
      return i;
    }
    bool& wanted = is_program ? programs_[i].wanted : maps_[i].wanted;
    if (!wanted) {
      wanted = true;
      work_.push_back(Work{is_program, i, 0});
    }
    return i;
  }

  uint32_t MapIndex(absl::string_view name) const {
    auto it = map_index_.find(name);
    return it == map_index_.end() ? kNone : it->second;
  }
  uint32_t ProgramIndex(absl::string_view name) const {
    auto it = program_index_.find(name);
    return it == program_index_.end() ? kNone : it->second;
  }
  const Map* CreatedMapNamed(absl::string_view name) const {
    uint32_t i = MapIndex(name);
    return i == kNone ? nullptr : maps_[i].map;
  }
  const Program* LoadedProgramNamed(absl::string_view name) const {
    uint32_t i = ProgramIndex(name);
    return i == kNone ? nullptr : programs_[i].program;
  }

  // Linked once, here: the other steps need each program's maps and
  // tail-call sites before any program loads, and a bad program fails
  // before anything is made. Whoever loads the program uses this code and
  // frees it (ReleaseCode), so the heap holds the code of the programs
  // not loaded yet. (Linking again at load time held less, 90 KB at the
  // agent's peak, but cost 23% more instructions.)
  absl::Status ResolveProgram(ProgramEntry& p) {
    const std::string& name = *p.name;
    p.type = EffectiveType(p);
    auto linked = LinkProgram(spec_, name);
    if (!linked.ok()) return Annotate(linked.status(), absl::StrCat("program '", name, "'"));
    const size_t own_fixups = linked->fixups.size();
    if (opt_.count_tail_call_misses) {
      p.sites_begin = miss_sites_.size();
      absl::Status st = detail::InsertMissCounters(name, *linked, spec_.btf ? &*spec_.btf : nullptr,
                                                   &miss_sites_);
      if (!st.ok()) return st;
      p.sites_end = miss_sites_.size();
    }
    // Each fixup's map, found here once for Patch; the counters' fixups,
    // appended after the program's own, go to the counter map.
    // A map's lookup and update often come one after the other: the
    // previous map fixup's answer serves its repeats without a lookup.
    p.fixup_maps = fixup_maps_.size();
    const std::string* previous = nullptr;
    uint32_t previous_map = kNone;
    for (size_t i = 0; i < linked->fixups.size(); ++i) {
      const Fixup& f = linked->fixups[i];
      uint32_t map = kNone;
      if (i >= own_fixups) {
        map = kCounterMap;
      } else if (UsesMap(f)) {
        if (previous == nullptr || f.name != *previous) {
          previous_map = Want(false, f.name);
          previous = &f.name;
        }
        map = previous_map;
      }
      fixup_maps_.push_back(map);
    }
    p.linked = *std::move(linked);
    return absl::OkStatus();
  }

  absl::Status ResolveMap(const MapEntry& m) {
    for (const MapInitEntry& e : m.spec->init) {
      // Program arrays and struct_ops maps name programs, map-in-maps maps.
      Want(m.spec->type == BPF_MAP_TYPE_PROG_ARRAY || m.spec->type == BPF_MAP_TYPE_STRUCT_OPS, e.name);
    }
    return absl::OkStatus();
  }

  static bool UsesMap(const Fixup& f) {
    return f.kind == Fixup::Kind::kMapFd || f.kind == Fixup::Kind::kMapValue ||
           f.kind == Fixup::Kind::kKconfig;
  }

  // The programs that reference map `map`, in name order. Only an error
  // message needs them, so they are found when asked rather than recorded
  // for every reference of every load.
  std::vector<std::string> UsersOf(const std::string& map) const {
    std::vector<std::string> users;
    for (const ProgramEntry* p : programs_wanted_) {
      for (const Fixup& f : p->linked.fixups) {
        if (UsesMap(f) && f.name == map) {
          users.push_back(*p->name);
          break;
        }
      }
    }
    return users;
  }

  uint32_t EffectiveType(const ProgramEntry& p) const {
    if (!opt_.program_types.empty()) {
      if (auto it = opt_.program_types.find(*p.name); it != opt_.program_types.end()) return it->second;
    }
    uint32_t type = p.spec->type;
    return type != BPF_PROG_TYPE_UNSPEC ? type : opt_.default_program_type;
  }

  // A struct_ops program that no struct_ops map names implements no
  // member the kernel could check it against; libbpf does not load it.
  bool UnusedStructOps(const ProgramEntry& program) const {
    if (program.type != BPF_PROG_TYPE_STRUCT_OPS) return false;
    for (const auto& [name, m] : spec_.maps) {
      if (m.type != BPF_MAP_TYPE_STRUCT_OPS) continue;
      for (const MapInitEntry& e : m.init)
        if (e.name == *program.name) return false;
    }
    return true;
  }

  LifetimePolicy PolicyFor(const std::string& name) const {
    if (opt_.map_policies.empty()) return opt_.default_map_policy;
    auto it = opt_.map_policies.find(name);
    return it != opt_.map_policies.end() ? it->second : opt_.default_map_policy;
  }

  absl::StatusOr<Map> NewMap(const std::string& name, const MapSpec& m) {
    TETHER_RETURN_IF_ERROR(CheckCreatable(m));
    MapOptions o;
    o.type = m.type;
    o.key_size = m.key_size;
    o.value_size = m.value_size;
    o.max_entries = m.max_entries;
    o.flags = m.flags;
    o.numa_node = m.numa_node;
    o.map_extra = m.map_extra;
    o.name = KernelName(name);
    o.lifetime_policy = PolicyFor(name);
    if (m.type == BPF_MAP_TYPE_RINGBUF || m.type == BPF_MAP_TYPE_USER_RINGBUF) {
      o.max_entries = RingSize(m.max_entries);
    }
    if (m.type == BPF_MAP_TYPE_PERF_EVENT_ARRAY && o.max_entries == 0) {
      // libbpf's convention: one slot per possible CPU.
      o.max_entries = PossibleCpus();
    }
    if (m.type == BPF_MAP_TYPE_PERF_EVENT_ARRAY) {
      if (o.key_size == 0) o.key_size = 4;
      if (o.value_size == 0) o.value_size = 4;
    }
    if (m.type == BPF_MAP_TYPE_STRUCT_OPS) {
      struct_ops_.AdjustMap(name, &o);
      o.btf_fd = btf_fd_.get();  // the kernel wants some program BTF beside its own type
      return Map::Create(o);
    }
    Map inner;
    if (IsMapInMap(m.type)) {
      if (!m.inner) {
        return absl::InvalidArgumentError(absl::StrCat("map '", name, "': a map-in-map without an inner map template"));
      }
      auto made = NewMap(name + ".inner", *m.inner);
      if (!made.ok()) return Annotate(made.status(), absl::StrCat("map '", name, "': inner map template"));
      inner = *made;
      inner.SetLifetimePolicy(LifetimePolicy::kIgnore);
      o.inner_map = &inner;
    }
    if (btf_fd_.valid() && m.btf_value_type_id != 0) {
      o.btf_fd = btf_fd_.get();
      o.btf_key_type_id = m.btf_key_type_id;
      o.btf_value_type_id = m.btf_value_type_id;
      auto with_btf = Map::Create(o);
      if (with_btf.ok()) return with_btf;
      int err = sys::StatusErrno(with_btf.status());
      if (err == ENOMEM || err == EMFILE || err == ENFILE || err == EPERM) return with_btf.status();
      // Some kernels refuse BTF for some map types; the map works without.
      o.btf_fd = -1;
      o.btf_key_type_id = o.btf_value_type_id = 0;
    }
    return Map::Create(o);
  }

  absl::Status CreateMap(MapEntry& entry) {
    const std::string& name = *entry.name;
    const MapSpec& m = *entry.spec;
    Map map;
    auto replaced = opt_.replace_maps.empty() ? opt_.replace_maps.end() : opt_.replace_maps.find(name);
    if (replaced != opt_.replace_maps.end()) {
      TETHER_RETURN_IF_ERROR(CheckCompatible(m, replaced->second, "the replacement map"));
      map = replaced->second;
      entry.reused = true;
    } else if (m.pinning == PinType::kByName) {
      const std::string& path = entry.pin_path;
      struct stat st;
      if (stat(path.c_str(), &st) == 0) {
        auto pinned = Map::LoadPinned(path);
        if (!pinned.ok()) return Annotate(pinned.status(), absl::StrCat("map '", name, "'"));
        TETHER_RETURN_IF_ERROR(CheckCompatible(m, *pinned, absl::StrCat("the pin at ", path)));
        map = *pinned;
        entry.reused = true;
      } else {
        auto made = NewMap(name, m);
        if (!made.ok()) return made.status();
        map = *made;
        TETHER_RETURN_IF_ERROR(map.Pin(path));
        result_.created_pins_.push_back(path);
      }
    } else {
      auto made = NewMap(name, m);
      if (!made.ok()) return made.status();
      map = *made;
    }
    // Plain maps come in name order, each at the end.
    entry.map = &result_.maps_.emplace_hint(result_.maps_.end(), name, std::move(map))->second;
    if (entry.reused) return absl::OkStatus();
    return Populate(name, m, *entry.map);
  }

  // Global data goes in before programs load, and .rodata is frozen, so
  // the verifier can treat its values as constants.
  absl::Status Populate(const std::string& name, const MapSpec& m, const Map& map) {
    if (m.type == BPF_MAP_TYPE_STRUCT_OPS) return absl::OkStatus();  // RegisterStructOps
    std::vector<uint8_t> contents = m.contents;
    if (m.section == ".kconfig") {
      auto kconfig = externs_.KconfigContents();
      if (!kconfig.ok()) return Annotate(kconfig.status(), absl::StrCat("map '", name, "'"));
      contents = std::move(*kconfig);
    }
    if (!contents.empty()) {
      if (contents.size() != map.value_size()) {
        return absl::InternalError(absl::StrFormat("map '%s': %u bytes of data for a %u-byte value",
                                                   name, contents.size(), map.value_size()));
      }
      uint32_t zero = 0;
      absl::Status st = map.Update(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&zero), 4), contents);
      if (!st.ok()) return Annotate(st, "collection: writing global data");
    }
    if (m.freeze) {
      absl::Status st = map.Freeze();
      if (!st.ok()) return Annotate(st, "collection: freezing");
    }
    return absl::OkStatus();
  }

  // One program's outcome: the program, or the error that stopped it.
  struct LoadedProgram {
    absl::Status status;
    Program program;
    std::string log;
  };

  // Workers for a load of `programs` programs: CollectionOptions::load_threads,
  // or TETHER_LOAD_THREADS when that is 0, or one per online CPU up to
  // kAutoLoadThreads. Automatic mode starts no thread for one or two
  // programs (a thread costs more to start than such a load can gain), nor
  // on one or two CPUs: there the part of BPF_PROG_LOAD that runs in
  // parallel (the verifier) was a few percent of it, the JIT's text
  // patching under the kernel's text_mutex and its IPIs most of it, and a
  // second loader only added system time (perf of the agent object, issue 21).
  size_t LoadThreads(size_t programs) const {
    constexpr size_t kAutoLoadThreads = 4;
    size_t asked = opt_.load_threads;
    if (asked == 0) {
      const char* env = getenv("TETHER_LOAD_THREADS");
      if (env != nullptr && *env != '\0') asked = strtoul(env, nullptr, 10);
    }
    if (asked == 0) {
      // Read once: sysconf opens and parses /sys for every call.
      static const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
      if (programs <= 2 || cpus <= 2) return 1;
      asked = std::min<size_t>(static_cast<size_t>(cpus), kAutoLoadThreads);
    }
    return std::max<size_t>(1, std::min(asked, programs));
  }

  // The calling thread works too; a thread that cannot be started leaves
  // its share to the others.
  void LoadInParallel(const std::vector<ProgramEntry*>& order, size_t threads,
                      std::vector<LoadedProgram>* loaded) {
    std::atomic<size_t> next{0};
    // No program at or past this index starts: the lowest failed so far.
    std::atomic<size_t> stop{order.size()};
    auto work = [&] {
      for (;;) {
        size_t i = next.fetch_add(1);
        if (i >= order.size() || i >= stop.load()) return;
        (*loaded)[i] = LoadProgram(*order[i]);
        if ((*loaded)[i].status.ok()) continue;
        size_t seen = stop.load();
        while (i < seen && !stop.compare_exchange_weak(seen, i)) {
        }
      }
    };
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) {
      try {
        pool.emplace_back(work);
      } catch (const std::system_error&) {
        break;
      }
    }
    work();
    for (std::thread& t : pool) t.join();
  }

  // Loads one program from the code Resolve linked. Runs on any worker: it reads the loader's
  // state, writes only `entry`'s code, and takes extern_mu_ for the extern resolver's caches.
  LoadedProgram LoadProgram(ProgramEntry& entry) {
    LoadedProgram out;
    const std::string& name = *entry.name;
    const ProgramSpec& p = *entry.spec;
    LinkedProgram& lp = entry.linked;
    std::vector<CorePoison> poisoned;
    if (!lp.core_relos.empty()) {
      absl::Status st = RelocateCore(name, lp, &poisoned);
      if (!st.ok()) {
        out.status = Annotate(st, absl::StrCat("collection: ", What(entry)));
        return out;
      }
    }
    std::vector<int> fd_array;
    {
      // Every map was created before programs load: the fds are read-only here.
      const uint32_t* maps = fixup_maps_.data() + entry.fixup_maps;
      auto map_fd = [&](size_t fixup) {
        uint32_t i = maps[fixup];
        const Map* map = i == kCounterMap ? miss_counter_map_ : i < maps_.size() ? maps_[i].map : nullptr;
        return map != nullptr ? map->fd() : -1;
      };
      std::lock_guard<std::mutex> lock(extern_mu_);
      out.status = externs_.Patch(name, lp, map_fd, &fd_array);
    }
    if (!out.status.ok()) return out;
    auto o = ProgramOptions(entry, fd_array);
    if (!o.ok()) {
      out.status = o.status();
      return out;
    }
    if (opt_.log_level > 0) o->log = &out.log;
    auto prog = Program::Load(*o);
    if (!prog.ok()) {
      auto [probe_name, probe] = ProgramProbe(o->type, p);
      absl::Status st = ExplainRefusal(prog.status(), spec_.source, "BPF_PROG_LOAD", probe_name, probe);
      out.status = Annotate(ExplainCorePoison(st, poisoned), absl::StrCat("collection: ", What(entry)));
      return out;
    }
    out.program = std::move(*prog);
    ReleaseCode(lp);
    return out;
  }

  // How errors name a program; built only for an error.
  static std::string What(const ProgramEntry& p) {
    return absl::StrFormat("program '%s' (section %s)", *p.name, p.spec->section);
  }

  // The kernel has its own copy of a loaded program's code: the linked
  // copy goes now rather than with the loader, so that a load's heap peak
  // holds the code of the programs still to load, not of all of them. Its
  // fixups and layout go too: Patch was their last reader (UsersOf asks
  // before anything loads, and the site table was made in Resolve). They
  // were 50 KB of the agent-scale load's peak, which comes at Commit.
  static void ReleaseCode(LinkedProgram& lp) {
    std::vector<bpf_insn>().swap(lp.insns);
    std::vector<FuncInfo>().swap(lp.func_info);
    std::vector<LineInfo>().swap(lp.line_info);
    std::vector<CoreRelo>().swap(lp.core_relos);
    std::vector<Fixup>().swap(lp.fixups);
    std::vector<std::pair<std::string, uint32_t>>().swap(lp.layout);
  }

  // PROG_LOAD's fields for `name`, pointing into `lp` and `fd_array`.
  absl::StatusOr<ProgramLoadOptions> ProgramOptions(const ProgramEntry& entry,
                                                    const std::vector<int>& fd_array) {
    const std::string& name = *entry.name;
    const ProgramSpec& p = *entry.spec;
    const LinkedProgram& lp = entry.linked;
    ProgramLoadOptions o;
    o.type = entry.type;
    if (o.type == BPF_PROG_TYPE_UNSPEC) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: the section does not say what kind of program this is; set "
          "CollectionOptions::program_types[\"%s\"] or default_program_type",
          What(entry), name));
    }
    o.instructions = lp.insns;
    o.fd_array = fd_array;
    o.name = KernelName(name);
    o.license = p.license.empty() ? spec_.license : p.license;
    o.expected_attach_type = p.expected_attach_type;
    o.flags = p.flags;
    o.kernel_version = p.kernel_version ? p.kernel_version : spec_.kernel_version;
    if (o.kernel_version == 0 && o.type == BPF_PROG_TYPE_KPROBE) {
      // Kernels before 5.0 checked it; newer ones ignore it.
      std::lock_guard<std::mutex> lock(extern_mu_);
      auto cfg = externs_.Config();
      if (cfg.ok()) o.kernel_version = (*cfg)->linux_kernel_version;
    }
    if (auto target = TracingTarget(p)) {
      auto vmlinux = KernelBtf();
      if (!vmlinux.ok()) return Annotate(vmlinux.status(), What(entry));
      auto id = (*vmlinux)->FindByNameKind(target->name, target->kind);
      if (!id) {
        return absl::NotFoundError(absl::StrFormat("%s: attach target '%s' is not in the kernel's BTF",
                                                   What(entry), target->name));
      }
      o.attach_btf_id = *id;
    }
    if (absl::Status st = struct_ops_.AdjustProgram(name, &o); !st.ok()) {
      return Annotate(st, absl::StrCat("collection: ", What(entry)));
    }
    if (btf_fd_.valid() && !lp.func_info.empty()) {
      o.btf_fd = btf_fd_.get();
      o.func_info = absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(lp.func_info.data()),
                                        lp.func_info.size() * sizeof(FuncInfo));
      o.func_info_rec_size = sizeof(FuncInfo);
      o.line_info = absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(lp.line_info.data()),
                                        lp.line_info.size() * sizeof(LineInfo));
      o.line_info_rec_size = sizeof(LineInfo);
    }
    o.log_level = opt_.log_level;
    o.log_size_cap = opt_.log_size_cap;
    return o;
  }

  // CO-RE against CollectionOptions::core_target, or the running kernel.
  absl::Status RelocateCore(const std::string& name, LinkedProgram& lp,
                            std::vector<CorePoison>* poisoned) {
    if (!spec_.btf) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "%u CO-RE relocations but the object has no BTF to resolve them", lp.core_relos.size()));
    }
    const CoreTarget* target;
    if (opt_.core_target != nullptr) {
      // One index of the caller's BTF serves every program of the load.
      std::call_once(custom_target_once_, [&] {
        custom_target_ = std::make_unique<CoreTarget>(*opt_.core_target);
      });
      target = custom_target_.get();
    } else {
      auto kernel = CoreTarget::Kernel();
      if (!kernel.ok()) return kernel.status();
      target = *kernel;
    }
    return ApplyCoreRelocations(name, *spec_.btf, lp.core_relos, absl::MakeSpan(lp.insns),
                                *target, poisoned);
  }

  void Rollback() {
    // A half-built collection must vanish without tripping lifetime
    // policies: nothing it made is in use yet.
    for (const MapEntry& m : maps_) {
      if (m.map != nullptr && !m.reused) m.map->SetLifetimePolicy(LifetimePolicy::kIgnore);
    }
    if (miss_counter_map_ != nullptr) miss_counter_map_->SetLifetimePolicy(LifetimePolicy::kIgnore);
    for (const std::string& path : result_.created_pins_) {
      unlink(path.c_str());
      detail::GraphRemovePin(path);
    }
    detail::RemoveDirectoriesIfEmpty(missing_dirs_);
    result_ = Collection();
  }

  const CollectionSpec& spec_;
  const CollectionOptions& opt_;
  std::vector<MapEntry> maps_;          // every map of the spec, in its order
  std::vector<ProgramEntry> programs_;  // every program of the spec, in its order
  NameIndex map_index_, program_index_;
  std::vector<Work> work_;                       // Resolve's worklist
  std::vector<std::string> missing_;             // names it found nothing for
  std::vector<MapEntry*> maps_wanted_;           // in name order
  std::vector<ProgramEntry*> programs_wanted_;   // in name order
  std::vector<uint32_t> fixup_maps_;             // each program's fixups' maps, in turn
  const Map* miss_counter_map_ = nullptr;        // in result_.maps_, until Commit
  std::map<std::string, Map>::iterator miss_counter_at_;
  std::vector<std::string> missing_dirs_;                // the pin directory's, if it had to be made
  sys::Fd btf_fd_;
  std::string btf_warning_;
  std::unique_ptr<CoreTarget> custom_target_;
  std::once_flag custom_target_once_;
  std::mutex extern_mu_;  // externs_ fills its caches on first use
  std::vector<TailCallSite> miss_sites_;  // in counter order
  Collection result_;
  detail::ExternResolver externs_;
  detail::StructOpsLoader struct_ops_;
  bool committed_ = false;
};

namespace {

absl::StatusOr<Collection> LoadResolved(CollectionLoader& loader) {
  for (auto step : {&CollectionLoader::CheckPinPaths, &CollectionLoader::LoadBtf,
                    &CollectionLoader::PlanStructOps, &CollectionLoader::CreateMaps,
                    &CollectionLoader::CreateMissCounters, &CollectionLoader::LoadPrograms,
                    &CollectionLoader::InitialiseMaps, &CollectionLoader::RegisterStructOps}) {
    TETHER_RETURN_IF_ERROR((loader.*step)());
  }
  return loader.Commit();
}

}  // namespace

absl::StatusOr<Collection> Collection::Load(const CollectionSpec& spec, const CollectionOptions& options) {
  CollectionLoader loader(spec, options);
  TETHER_RETURN_IF_ERROR(loader.Resolve(nullptr, nullptr));
  return LoadResolved(loader);
}

Map Collection::map(absl::string_view name) const {
  auto it = maps_.find(std::string(name));
  return it == maps_.end() ? Map() : it->second;
}

Link Collection::link(absl::string_view name) const {
  auto it = links_.find(std::string(name));
  return it == links_.end() ? Link() : it->second;
}

Program Collection::program(absl::string_view name) const {
  auto it = programs_.find(std::string(name));
  return it == programs_.end() ? Program() : it->second;
}

const std::string& Collection::verifier_log(absl::string_view name) const {
  static const std::string* const kNone = new std::string();
  auto it = verifier_logs_.find(name);
  return it == verifier_logs_.end() ? *kNone : it->second;
}

absl::StatusOr<std::vector<TailCallSite>> Collection::TailCallMisses() const {
  if (!miss_counters_) return std::vector<TailCallSite>();
  std::vector<uint64_t> counts(miss_counters_.value_size() / 8);
  uint32_t zero = 0;
  int ret = sys::MapLookupElem(miss_counters_.fd(), &zero, counts.data(), 0);
  if (ret < 0) {
    return sys::ErrnoStatus(-ret, absl::StrFormat("tail-call counter map (id %u)", miss_counters_.id()),
                            "BPF_MAP_LOOKUP_ELEM");
  }
  std::vector<TailCallSite> out = miss_sites_;
  for (TailCallSite& s : out) s.misses = s.index < counts.size() ? counts[s.index] : 0;
  return out;
}

absl::StatusOr<std::vector<TailCallSite>> TailCallMisses(const Program& program) {
  if (!program) return absl::InvalidArgumentError("TailCallMisses: the program handle is empty");
  return detail::ReadProgramMisses(program.fd());
}

absl::Status LoadAndAssign(const CollectionSpec& spec, const Assignment& assignment,
                           const CollectionOptions& options) {
  std::set<std::string> programs, maps;
  for (const auto& [name, out] : assignment.programs) {
    if (out == nullptr) return absl::InvalidArgumentError(absl::StrCat("LoadAndAssign: program '", name, "': null output"));
    programs.insert(name);
  }
  for (const auto& [name, out] : assignment.maps) {
    if (out == nullptr) return absl::InvalidArgumentError(absl::StrCat("LoadAndAssign: map '", name, "': null output"));
    maps.insert(name);
  }
  std::set<std::string> links;
  for (const auto& [name, out] : assignment.links) {
    if (out == nullptr) return absl::InvalidArgumentError(absl::StrCat("LoadAndAssign: link '", name, "': null output"));
    auto m = spec.maps.find(name);
    if (m == spec.maps.end() || m->second.type != BPF_MAP_TYPE_STRUCT_OPS ||
        (m->second.flags & sys::uapi::kMapFLink) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "LoadAndAssign: link '", name, "': the object has no .struct_ops.link map of that name"));
    }
    maps.insert(name);  // its link registers it
    links.insert(name);
  }
  CollectionLoader loader(spec, options);
  loader.LinkStructOpsOnly(std::move(links));
  absl::Status st = loader.Resolve(&programs, &maps);
  if (!st.ok()) return st;
  st = loader.CheckNoOrphanedArrays(maps);
  if (!st.ok()) return st;
  auto coll = LoadResolved(loader);
  if (!coll.ok()) return coll.status();
  for (const auto& [name, out] : assignment.programs) *out = coll->program(name);
  for (const auto& [name, out] : assignment.maps) *out = coll->map(name);
  for (const auto& [name, out] : assignment.links) *out = coll->link(name);
  // Everything else goes with `coll`: dependency programs stay alive
  // through the arrays that hold them, and used maps through programs.
  return absl::OkStatus();
}

}  // namespace tether

namespace tether::detail {

// For the live replacement (lib/upgrade/): the same rule as a pin or a
// replace_maps entry, so that a kept map is exactly one Load would accept.
absl::Status CheckMapMatchesSpec(const MapSpec& spec, const Map& existing, absl::string_view where) {
  return CheckCompatible(spec, existing, where);
}

}  // namespace tether::detail
