#include "tether/collection_spec.h"

#include <dlfcn.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/types/optional.h"

namespace tether {

MapSpec::MapSpec(const MapSpec& o)
    : name(o.name),
      section(o.section),
      type(o.type),
      key_size(o.key_size),
      value_size(o.value_size),
      max_entries(o.max_entries),
      flags(o.flags),
      numa_node(o.numa_node),
      map_extra(o.map_extra),
      pinning(o.pinning),
      btf_key_type_id(o.btf_key_type_id),
      btf_value_type_id(o.btf_value_type_id),
      freeze(o.freeze),
      contents(o.contents),
      init(o.init),
      inner(o.inner ? std::make_unique<MapSpec>(*o.inner) : nullptr),
      extra(o.extra),
      iproute2_id(o.iproute2_id),
      iproute2_inner_id(o.iproute2_inner_id),
      iproute2_inner_idx(o.iproute2_inner_idx),
      legacy_inner_idx(o.legacy_inner_idx) {}

MapSpec& MapSpec::operator=(const MapSpec& o) {
  if (this != &o) {
    MapSpec copy(o);
    *this = std::move(copy);
  }
  return *this;
}

absl::Status CheckCreatable(const MapSpec& map) {
  for (size_t i = 0; i < map.extra.size(); ++i) {
    if (map.extra[i] != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "map '", map.name, "' (section ", map.section, "): definition has ", map.extra.size(),
          " trailing bytes that no known layout explains; byte ", i, " is non-zero"));
    }
  }
  return absl::OkStatus();
}

absl::string_view ReferenceKindName(ReferenceKind kind) {
  switch (kind) {
    case ReferenceKind::kMap: return "map";
    case ReferenceKind::kMapValue: return "map_value";
    case ReferenceKind::kKconfig: return "kconfig";
    case ReferenceKind::kKsym: return "ksym";
    case ReferenceKind::kKfunc: return "kfunc";
    case ReferenceKind::kCall: return "call";
    case ReferenceKind::kFuncAddr: return "func_addr";
    case ReferenceKind::kUnresolved: return "unresolved";
  }
  return "?";
}

absl::string_view FixupKindName(Fixup::Kind kind) {
  switch (kind) {
    case Fixup::Kind::kMapFd: return "map_fd";
    case Fixup::Kind::kMapValue: return "map_value";
    case Fixup::Kind::kKconfig: return "kconfig";
    case Fixup::Kind::kKsym: return "ksym";
    case Fixup::Kind::kKfunc: return "kfunc";
  }
  return "?";
}

MapSpec* CollectionSpec::FindMap(absl::string_view name) {
  auto it = maps.find(std::string(name));
  return it == maps.end() ? nullptr : &it->second;
}

ProgramSpec* CollectionSpec::FindProgram(absl::string_view name) {
  auto it = programs.find(std::string(name));
  return it == programs.end() ? nullptr : &it->second;
}

absl::Status CollectionSpec::SetVariable(absl::string_view name, absl::Span<const uint8_t> value) {
  auto it = variables.find(std::string(name));
  if (it == variables.end()) {
    return absl::NotFoundError(absl::StrCat("no global variable '", name, "'"));
  }
  const VariableSpec& v = it->second;
  if (value.size() != v.size) {
    return absl::InvalidArgumentError(absl::StrCat("variable '", name, "' in ", v.section, " is ",
                                                   v.size, " bytes, not ", value.size()));
  }
  MapSpec* m = FindMap(v.section);
  if (m == nullptr || uint64_t{v.offset} + v.size > m->contents.size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "variable '", name, "': map ", v.section, " is missing or smaller than offset ", v.offset,
        " + ", v.size));
  }
  std::copy(value.begin(), value.end(), m->contents.begin() + v.offset);
  return absl::OkStatus();
}

absl::StatusOr<absl::Span<const uint8_t>> CollectionSpec::GetVariable(absl::string_view name) const {
  auto it = variables.find(std::string(name));
  if (it == variables.end()) {
    return absl::NotFoundError(absl::StrCat("no global variable '", name, "'"));
  }
  const VariableSpec& v = it->second;
  auto m = maps.find(v.section);
  if (m == maps.end() || uint64_t{v.offset} + v.size > m->second.contents.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat("variable '", name, "': map ", v.section, " is missing or too small"));
  }
  return absl::MakeConstSpan(m->second.contents).subspan(v.offset, v.size);
}

// --- LinkProgram -----------------------------------------------------------------

namespace {

// The references LinkProgram turns into a Fixup (the others are calls
// between functions, resolved in place).
bool IsFixupKind(ReferenceKind kind) {
  switch (kind) {
    case ReferenceKind::kMap:
    case ReferenceKind::kMapValue:
    case ReferenceKind::kKconfig:
    case ReferenceKind::kKsym:
    case ReferenceKind::kKfunc:
      return true;
    case ReferenceKind::kCall:
    case ReferenceKind::kFuncAddr:
    case ReferenceKind::kUnresolved:
      return false;
  }
  return false;
}

// Room for a function's fixups at once: grown one push at a time, a
// program's list held up to twice its size (88-byte entries) from the link
// until the program is loaded. Past the program's own function, the room
// still grows geometrically.
void ReserveFixups(const FunctionCode& code, std::vector<Fixup>* fixups) {
  size_t sites = 0;
  for (const InsnReference& r : code.references) sites += IsFixupKind(r.kind);
  if (fixups->size() + sites > fixups->capacity())
    fixups->reserve(std::max(fixups->size() + sites, 2 * fixups->capacity()));
}

// Rebased copies of a function's BTF.ext records, appended in one go.
template <typename Records>
void AppendRebased(Records& to, const Records& from, uint32_t base) {
  size_t old = to.size();
  to.insert(to.end(), from.begin(), from.end());
  for (size_t i = old; i < to.size(); ++i) to[i].insn_off += base;
}

// Appends a function's code and records; returns where it starts.
uint32_t AppendCode(const FunctionCode& code, LinkedProgram* out) {
  uint32_t base = static_cast<uint32_t>(out->insns.size());
  out->insns.insert(out->insns.end(), code.insns.begin(), code.insns.end());
  AppendRebased(out->func_info, code.func_info, base);
  AppendRebased(out->line_info, code.line_info, base);
  AppendRebased(out->core_relos, code.core_relos, base);
  return base;
}

// The spec's maps by name. Code names the same map several times in a row
// (a lookup, then an update of the same map): the last map found is asked
// first, before the ordered map's string comparisons.
class MapFinder {
 public:
  explicit MapFinder(const CollectionSpec& spec) : spec_(spec) {}
  const MapSpec* Find(const std::string& name) {
    if (last_name_ != nullptr && *last_name_ == name) return last_;
    auto it = spec_.maps.find(name);
    if (it == spec_.maps.end()) return nullptr;
    last_name_ = &it->first;
    last_ = &it->second;
    return last_;
  }

 private:
  const CollectionSpec& spec_;
  const std::string* last_name_ = nullptr;
  const MapSpec* last_ = nullptr;
};

}  // namespace

absl::StatusOr<LinkedProgram> LinkProgram(const CollectionSpec& spec,
                                          absl::string_view program_name) {
  auto pit = spec.programs.find(std::string(program_name));
  if (pit == spec.programs.end()) {
    return absl::NotFoundError(absl::StrCat("no program '", program_name, "'"));
  }
  const ProgramSpec& prog = pit->second;
  LinkedProgram out;
  out.name = prog.name;

  // Functions appended so far are out.layout (name, base); `queue` holds
  // indices into it still to scan. A program without sub-programs, the
  // common case, then costs no hash map and no copied names.
  struct Placed {
    const FunctionCode* code;
    uint32_t base;
    size_t layout_index;
  };
  // In place for a handful of functions: a deque allocated twice per link.
  absl::InlinedVector<Placed, 4> queue;
  size_t next = 0;  // queue[next..] are still to scan
  absl::flat_hash_map<absl::string_view, uint32_t> placed;  // once layout grows past a few
  auto placed_base = [&](const std::string& name) -> absl::optional<uint32_t> {
    if (out.layout.size() <= 8) {
      for (const auto& [n, base] : out.layout)
        if (n == name) return base;
      return absl::nullopt;
    }
    if (placed.empty()) {
      for (const auto& [n, base] : out.layout) placed.emplace(n, base);
    }
    auto it = placed.find(name);
    if (it == placed.end()) return absl::nullopt;
    return it->second;
  };
  auto place = [&](const std::string& name, const FunctionCode& code) {
    ReserveFixups(code, &out.fixups);
    uint32_t base = AppendCode(code, &out);
    out.layout.emplace_back(name, base);
    // layout's strings may move as it grows: the index map is rebuilt.
    placed.clear();
    queue.push_back({&code, base, out.layout.size() - 1});
    return base;
  };
  place(prog.name, prog.code);

  MapFinder maps(spec);

  while (next < queue.size()) {
    const Placed cur = queue[next++];
    for (const InsnReference& ref : cur.code->references) {
      auto where = [&]() {
        return absl::StrCat("program '", prog.name, "': function '", out.layout[cur.layout_index].first, "' insn ", ref.insn);
      };
      if (ref.insn >= cur.code->insns.size()) {
        return absl::InvalidArgumentError(absl::StrCat(where(), ": reference past the end"));
      }
      uint32_t at = cur.base + ref.insn;
      bpf_insn& insn = out.insns[at];
      bool ld64 = insn.code == (BPF_LD | BPF_IMM | BPF_DW);
      bool needs_ld64 = ref.kind == ReferenceKind::kMap || ref.kind == ReferenceKind::kMapValue ||
                        ref.kind == ReferenceKind::kKconfig || ref.kind == ReferenceKind::kKsym ||
                        ref.kind == ReferenceKind::kFuncAddr;
      if (needs_ld64 && (!ld64 || ref.insn + 1 >= cur.code->insns.size())) {
        return absl::InvalidArgumentError(absl::StrCat(
            where(), ": ", ReferenceKindName(ref.kind), " reference to '", ref.name,
            "' is not on a complete ld_imm64"));
      }
      Fixup fx;
      fx.insn = at;
      fx.name = ref.name;
      switch (ref.kind) {
        case ReferenceKind::kMap: {
          if (maps.Find(ref.name) == nullptr) {
            return absl::NotFoundError(absl::StrCat(where(), ": map '", ref.name, "' is not in the spec"));
          }
          insn.src_reg = BPF_PSEUDO_MAP_FD;
          insn.imm = 0;
          fx.kind = Fixup::Kind::kMapFd;
          out.fixups.push_back(std::move(fx));
          break;
        }
        case ReferenceKind::kMapValue:
        case ReferenceKind::kKconfig: {
          std::string map = ref.kind == ReferenceKind::kKconfig ? ".kconfig" : ref.name;
          const MapSpec* m = maps.Find(map);
          if (m == nullptr) {
            return absl::NotFoundError(absl::StrCat(where(), ": map '", map, "' is not in the spec"));
          }
          if (ref.offset > m->value_size) {
            return absl::OutOfRangeError(absl::StrCat(where(), ": offset ", ref.offset,
                                                      " is past the value of map '", map, "' (",
                                                      m->value_size, " bytes)"));
          }
          insn.src_reg = BPF_PSEUDO_MAP_VALUE;
          insn.imm = 0;
          out.insns[at + 1].imm = static_cast<int32_t>(ref.offset);
          fx.kind = ref.kind == ReferenceKind::kKconfig ? Fixup::Kind::kKconfig
                                                        : Fixup::Kind::kMapValue;
          fx.name = map;
          fx.offset = ref.offset;
          if (ref.kind == ReferenceKind::kKconfig) fx.extern_name = ref.name;
          out.fixups.push_back(std::move(fx));
          break;
        }
        case ReferenceKind::kKsym:
        case ReferenceKind::kKfunc: {
          auto e = spec.externs.find(ref.name);
          if (e == spec.externs.end()) {
            return absl::NotFoundError(absl::StrCat(where(), ": extern '", ref.name, "' is not in the spec"));
          }
          fx.weak = e->second.weak;
          if (ref.kind == ReferenceKind::kKsym) {
            fx.kind = Fixup::Kind::kKsym;
            fx.btf_type_id = e->second.type_id;
          } else {
            fx.kind = Fixup::Kind::kKfunc;
            fx.btf_type_id = e->second.btf_id;
            insn.src_reg = BPF_PSEUDO_KFUNC_CALL;
          }
          out.fixups.push_back(std::move(fx));
          break;
        }
        case ReferenceKind::kCall:
        case ReferenceKind::kFuncAddr: {
          uint32_t target;
          if (auto done = placed_base(ref.name)) {
            target = *done;
          } else if (auto f = spec.functions.find(ref.name); f != spec.functions.end()) {
            target = place(ref.name, f->second.code);
          } else if (auto p = spec.programs.find(ref.name); p != spec.programs.end()) {
            target = place(ref.name, p->second.code);
          } else {
            return absl::NotFoundError(absl::StrCat(where(), ": unsatisfied program reference to '",
                                                    ref.name, "'"));
          }
          // place() may have grown out.insns: index again.
          bpf_insn& site = out.insns[at];
          site.src_reg = ref.kind == ReferenceKind::kCall ? BPF_PSEUDO_CALL : BPF_PSEUDO_FUNC;
          site.imm = static_cast<int32_t>(int64_t{target} - (int64_t{at} + 1));
          break;
        }
        case ReferenceKind::kUnresolved:
          return absl::NotFoundError(absl::StrCat(
              where(), ": unsatisfied program reference to undefined symbol '", ref.name, "'"));
      }
    }
  }
  return out;
}

// --- kconfig ---------------------------------------------------------------------

namespace {

uint32_t KernelVersionFromRelease(absl::string_view release) {
  uint32_t parts[3] = {0, 0, 0};
  int i = 0;
  for (size_t p = 0; p < release.size() && i < 3;) {
    if (!isdigit(static_cast<unsigned char>(release[p]))) break;
    uint32_t v = 0;
    while (p < release.size() && isdigit(static_cast<unsigned char>(release[p]))) {
      v = v * 10 + (release[p] - '0');
      ++p;
    }
    parts[i++] = v;
    if (p < release.size() && release[p] == '.') ++p; else break;
  }
  // The sublevel field is 8 bits; stable kernels past .255 saturate.
  return (parts[0] << 16) + (parts[1] << 8) + std::min<uint32_t>(parts[2], 255);
}

// /proc/config.gz needs zlib, which tether does not link: libelf already
// pulls libz.so.1 into the process, so look it up at run time instead.
absl::StatusOr<std::string> ReadGzip(const char* path) {
  void* z = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
  if (z == nullptr) return absl::UnavailableError("libz.so.1 is not available to read config.gz");
  using GzOpen = void* (*)(const char*, const char*);
  using GzRead = int (*)(void*, void*, unsigned);
  using GzClose = int (*)(void*);
  auto gzopen = reinterpret_cast<GzOpen>(dlsym(z, "gzopen"));
  auto gzread = reinterpret_cast<GzRead>(dlsym(z, "gzread"));
  auto gzclose = reinterpret_cast<GzClose>(dlsym(z, "gzclose"));
  if (!gzopen || !gzread || !gzclose) {
    dlclose(z);
    return absl::UnavailableError("libz.so.1 lacks gzopen/gzread/gzclose");
  }
  void* f = gzopen(path, "rb");
  if (f == nullptr) {
    dlclose(z);
    return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  }
  std::string out;
  char buf[65536];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) out.append(buf, n);
  gzclose(f);
  dlclose(z);
  if (n < 0) return absl::DataLossError(absl::StrCat(path, ": corrupt gzip data"));
  return out;
}

}  // namespace

absl::StatusOr<KernelConfig> KernelConfig::Parse(absl::string_view text, uint32_t kernel_version) {
  KernelConfig cfg;
  cfg.linux_kernel_version = kernel_version;
#if defined(__x86_64__) || defined(__aarch64__) || defined(__s390x__) || defined(__riscv)
  // These architectures wrap syscalls as __<arch>_sys_* since 4.17.
  cfg.has_syscall_wrapper = kernel_version >= (4u << 16) + (17u << 8);
#endif
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    if (absl::ConsumePrefix(&line, "# ")) {
      if (absl::ConsumeSuffix(&line, " is not set") && absl::StartsWith(line, "CONFIG_")) {
        cfg.values[std::string(line)] = "n";
      }
      continue;
    }
    if (line[0] == '#') continue;
    size_t eq = line.find('=');
    if (eq == absl::string_view::npos || !absl::StartsWith(line, "CONFIG_")) {
      return absl::InvalidArgumentError(
          absl::StrCat("kernel config line ", line_no, ": not CONFIG_X=value: '", line, "'"));
    }
    cfg.values[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
  }
  return cfg;
}

absl::StatusOr<KernelConfig> KernelConfig::Load() {
  struct utsname u;
  if (uname(&u) != 0) return absl::InternalError("uname failed");
  uint32_t version = KernelVersionFromRelease(u.release);
  std::string boot = absl::StrCat("/boot/config-", u.release);
  std::ifstream in(boot);
  if (in) {
    std::stringstream ss;
    ss << in.rdbuf();
    return Parse(ss.str(), version);
  }
  auto gz = ReadGzip("/proc/config.gz");
  if (!gz.ok()) {
    return absl::NotFoundError(absl::StrCat("kernel config: neither ", boot,
                                            " nor /proc/config.gz is readable (",
                                            gz.status().message(), ")"));
  }
  return Parse(*gz, version);
}

absl::StatusOr<std::vector<uint8_t>> ResolveKconfig(const CollectionSpec& spec,
                                                    const KernelConfig& config) {
  auto mit = spec.maps.find(".kconfig");
  if (mit == spec.maps.end()) return std::vector<uint8_t>{};
  std::vector<uint8_t> out(mit->second.value_size, 0);
  if (!spec.btf) return absl::FailedPreconditionError(".kconfig externs need BTF");
  const Btf& btf = *spec.btf;
  for (const auto& entry : spec.externs) {
    // Named references, not a structured binding: clang 14 (the fuzz
    // build) cannot capture bindings in the lambdas below.
    const std::string& name = entry.first;
    const ExternSpec& e = entry.second;
    if (e.kind != ExternSpec::Kind::kKconfig) continue;
    auto err = [&](auto&&... args) {
      return absl::InvalidArgumentError(absl::StrCat("kconfig extern '", name, "': ", args...));
    };
    if (uint64_t{e.offset} + e.size > out.size()) return err("outside the .kconfig map");
    uint8_t* dst = out.data() + e.offset;
    auto put_int = [&](uint64_t v) {
      // Little-endian host: the low bytes of v are the value.
      memcpy(dst, &v, std::min<size_t>(e.size, 8));
    };
    if (name == "LINUX_KERNEL_VERSION") {
      put_int(config.linux_kernel_version);
      continue;
    }
    if (name == "LINUX_HAS_SYSCALL_WRAPPER") {
      put_int(config.has_syscall_wrapper ? 1 : 0);
      continue;
    }
    if (name == "LINUX_HAS_BPF_COOKIE") {
      put_int(config.linux_kernel_version >= (5u << 16) + (15u << 8) ? 1 : 0);
      continue;
    }
    auto vit = config.values.find(name);
    if (vit == config.values.end()) {
      if (e.weak) continue;
      return err("no value in the kernel config, and the extern is not __weak");
    }
    const std::string& val = vit->second;
    const BtfType* t = btf.TypeById(btf.SkipQualifiers(e.type_id));
    if (t == nullptr) return err("missing BTF type");
    bool tristate_word = val == "y" || val == "n" || val == "m";
    if (t->kind == BtfKind::kEnum) {
      // libbpf's enum libbpf_tristate: no, yes, module.
      if (!tristate_word) return err("value '", val, "' is not y/n/m");
      put_int(val == "y" ? 1 : val == "m" ? 2 : 0);
    } else if (t->kind == BtfKind::kArray) {
      absl::string_view s = val;
      if (!absl::ConsumePrefix(&s, "\"") || !absl::ConsumeSuffix(&s, "\"")) {
        return err("value ", val, " is not a string");
      }
      // A string longer than the array is cut to the array's length, with
      // no room kept for a NUL (as cilium/ebpf does; libbpf keeps one and
      // so loses the last byte: `extern char CONFIG_X[1]` would read "").
      // Shorter strings end in the zeros the map starts with.
      size_t n = std::min<size_t>(s.size(), e.size);
      if (n > 0) memcpy(dst, s.data(), n);
    } else if (t->kind == BtfKind::kInt) {
      if (tristate_word) {
        if (val == "m" && (t->int_encoding() & kBtfIntBool)) return err("bool cannot hold 'm'");
        put_int(val == "y" ? 1 : val == "m" ? 2 : 0);
        continue;
      }
      int64_t v;
      uint64_t uv;
      if (absl::SimpleAtoi(val, &v)) {
        put_int(static_cast<uint64_t>(v));
      } else if (absl::StartsWith(val, "0x") && absl::SimpleHexAtoi(val.substr(2), &uv)) {
        put_int(uv);
      } else {
        return err("value '", val, "' is not an integer");
      }
    } else {
      return err("type ", BtfKindName(t->kind), " is not supported");
    }
  }
  return out;
}

}  // namespace tether
