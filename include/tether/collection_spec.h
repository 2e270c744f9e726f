// What a BPF ELF object asks for, before anything touches the kernel:
// maps, programs, sub-programs, global variables and externs.
//
// A CollectionSpec is a plain value: copying it (or Copy()) is deep, and
// every field may be changed before loading (map sizes, program types,
// constants in .rodata). The collection loader turns a spec into kernel
// objects; the piece it needs from here is LinkProgram(), which flattens
// one program and its sub-programs and lists the sites to patch with fds.
#ifndef TETHER_COLLECTION_SPEC_H_
#define TETHER_COLLECTION_SPEC_H_

#include <linux/bpf.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"
#include "tether/btf.h"

namespace tether {

enum class PinType : uint32_t {
  kNone = 0,
  kByName = 1,    // libbpf LIBBPF_PIN_BY_NAME, iproute2 PIN_GLOBAL_NS
  kObjectNs = 2,  // iproute2 PIN_OBJECT_NS: per-object directory
};

// One `.values = {...}` slot: the key and the program or map placed there.
struct MapInitEntry {
  uint32_t key = 0;
  std::string name;
};

struct MapSpec {
  std::string name;     // symbol name; the section name for data sections
  std::string section;  // "maps", ".maps", ".data", ".rodata.str1.1", ".kconfig"
  uint32_t type = 0;    // enum bpf_map_type
  uint32_t key_size = 0;
  uint32_t value_size = 0;
  uint32_t max_entries = 0;
  uint32_t flags = 0;
  uint32_t numa_node = 0;
  uint64_t map_extra = 0;
  PinType pinning = PinType::kNone;
  // Ids in CollectionSpec::btf, 0 when unknown.
  uint32_t btf_key_type_id = 0;
  uint32_t btf_value_type_id = 0;
  // Freeze after populating: .rodata* and .kconfig are read-only to
  // user space once loaded, which is what lets the verifier trust them.
  bool freeze = false;
  // Value of key 0 for data-section maps (value_size bytes); empty otherwise.
  std::vector<uint8_t> contents;
  // Static initialisers from `.values` (PROG_ARRAY: program names;
  // ARRAY_OF_MAPS/HASH_OF_MAPS: map names).
  std::vector<MapInitEntry> init;
  // Template of the inner map for map-in-map types.
  std::unique_ptr<MapSpec> inner;
  // Trailing bytes of a legacy definition that no known layout explains.
  // Parsing keeps them; CheckCreatable() refuses the map if any is non-zero.
  std::vector<uint8_t> extra;
  // iproute2 bpf_elf_map fields (legacy layouts of 36 bytes).
  uint32_t iproute2_id = 0;
  uint32_t iproute2_inner_id = 0;
  uint32_t iproute2_inner_idx = 0;
  // samples/bpf's 28-byte bpf_map_def: the index, among the legacy
  // definitions, of this map-in-map's inner map template.
  absl::optional<uint32_t> legacy_inner_idx;

  MapSpec() = default;
  MapSpec(const MapSpec& other);
  MapSpec& operator=(const MapSpec& other);
  MapSpec(MapSpec&&) = default;
  MapSpec& operator=(MapSpec&&) = default;

  // True for maps made from .data/.rodata/.bss/.kconfig sections.
  bool is_data_section() const { return !contents.empty(); }
};

// Refuses what the kernel would misread: non-zero unknown legacy bytes.
absl::Status CheckCreatable(const MapSpec& map);

// A global variable of a data section, writable through the spec.
struct VariableSpec {
  std::string name;
  std::string section;  // also the name of the map holding it
  uint32_t offset = 0;
  uint32_t size = 0;
  uint32_t btf_type_id = 0;  // the VAR's type in CollectionSpec::btf, 0 without BTF
  bool constant = false;     // in .rodata*: frozen, so the verifier sees the value
};

struct ExternSpec {
  enum class Kind { kKconfig, kKsym };
  std::string name;
  Kind kind = Kind::kKsym;
  bool weak = false;       // may stay unresolved; its value is then 0
  bool is_func = false;    // a kfunc (.ksyms FUNC)
  uint32_t btf_id = 0;     // the VAR or FUNC in CollectionSpec::btf
  uint32_t type_id = 0;    // VAR: its type (0 for untyped `void` ksyms)
  uint32_t offset = 0;     // kKconfig: byte offset in the .kconfig map
  uint32_t size = 0;       // kKconfig: byte size
};

enum class ReferenceKind {
  kMap,         // ld_imm64 of a map: name = map
  kMapValue,    // ld_imm64 of an address inside a data map: name = map, offset
  kKconfig,     // like kMapValue into ".kconfig"; extern = the extern's name
  kKsym,        // ld_imm64 of a kernel symbol: name = extern
  kKfunc,       // call of a kernel function: name = extern
  kCall,        // bpf-to-bpf call: name = function
  kFuncAddr,    // ld_imm64 of a function (callback): name = function
  kUnresolved,  // call or load of an undefined symbol; linking fails
};
absl::string_view ReferenceKindName(ReferenceKind kind);

// A relocation the spec resolved to a name, at an instruction of a function.
struct InsnReference {
  uint32_t insn = 0;  // index into the function's instructions
  ReferenceKind kind = ReferenceKind::kMap;
  std::string name;
  uint32_t offset = 0;  // kMapValue/kKconfig: byte offset in the map value
};

// The code of one BPF function. Instruction offsets in the BTF.ext records
// are relative to insns[0].
struct FunctionCode {
  std::vector<bpf_insn> insns;
  std::vector<InsnReference> references;
  std::vector<FuncInfo> func_info;
  std::vector<LineInfo> line_info;
  std::vector<CoreRelo> core_relos;
};

// A sub-program: a function called (or used as a callback) by programs.
struct FunctionSpec {
  std::string name;  // key in CollectionSpec::functions; unique among functions and programs
  std::string section;
  uint32_t section_offset = 0;  // in instructions
  bool global = false;          // kernel verifies global functions on their own
  FunctionCode code;
};

struct ProgramSpec {
  std::string name;  // the function symbol
  std::string section;
  uint32_t section_offset = 0;  // in instructions
  uint32_t type = 0;            // enum bpf_prog_type; 0 when the section said nothing
  uint32_t expected_attach_type = 0;
  std::string attach_to;  // e.g. the function of kprobe/<fn>
  uint32_t flags = 0;     // PROG_LOAD prog_flags (sleepable, xdp frags)
  bool return_probe = false;
  std::string license;
  uint32_t kernel_version = 0;
  FunctionCode code;
};

class CollectionSpec {
 public:
  static absl::StatusOr<CollectionSpec> FromFile(const std::string& path);
  // `what` names the object in error messages.
  static absl::StatusOr<CollectionSpec> FromMemory(absl::Span<const uint8_t> elf,
                                                   absl::string_view what = "<memory>");

  CollectionSpec Copy() const { return *this; }

  // Ordered by name so that iteration (and inspection output) is stable.
  std::map<std::string, MapSpec> maps;
  std::map<std::string, ProgramSpec> programs;
  std::map<std::string, FunctionSpec> functions;  // sub-programs
  std::map<std::string, VariableSpec> variables;
  std::map<std::string, ExternSpec> externs;
  std::string license;
  uint32_t kernel_version = 0;
  // Where the object came from: FromFile's path or FromMemory's `what`.
  // Load errors name it.
  std::string source;
  // The object's own BTF, with DATASEC sizes and offsets completed from
  // the ELF symbols; absent for objects built without -g.
  absl::optional<Btf> btf;
  // Things that parse but deserve a look (a map with key_size 0, ...).
  std::vector<std::string> warnings;

  MapSpec* FindMap(absl::string_view name);
  ProgramSpec* FindProgram(absl::string_view name);

  // Overwrites a variable's bytes in its section's contents (also .bss:
  // the loader writes the whole value after creating the map). The size
  // must match the variable's exactly.
  absl::Status SetVariable(absl::string_view name, absl::Span<const uint8_t> value);
  template <typename T>
  absl::Status SetVariable(absl::string_view name, const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    return SetVariable(name, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&value),
                                                 sizeof(T)));
  }
  absl::StatusOr<absl::Span<const uint8_t>> GetVariable(absl::string_view name) const;
};

// --- linking for load ------------------------------------------------------------

// A site in LinkedProgram::insns the loader must complete.
struct Fixup {
  enum class Kind {
    // ld_imm64, src_reg already BPF_PSEUDO_MAP_FD: set insns[insn].imm = fd.
    kMapFd,
    // ld_imm64, src_reg already BPF_PSEUDO_MAP_VALUE and insns[insn+1].imm
    // already `offset`: set insns[insn].imm = fd of map `name`.
    kMapValue,
    // Same as kMapValue with name ".kconfig"; `extern_name` says which
    // CONFIG_* it reads. The .kconfig map must be filled (ResolveKconfig)
    // before it is created.
    kKconfig,
    // ld_imm64 of kernel variable `name`. Typed (btf_type_id != 0): set
    // src_reg = BPF_PSEUDO_BTF_ID, imm = its BTF id in vmlinux or in a
    // module, insns[insn+1].imm = that module's BTF fd or 0. Untyped:
    // imm/insns[insn+1].imm = the kallsyms address, low/high halves. A
    // kfunc's address (bpf_ksym_exists): its BTF id as a plain constant.
    // Weak and missing: leave 0.
    kKsym,
    // call of kernel function `name`: src_reg is already
    // BPF_PSEUDO_KFUNC_CALL; set imm = its BTF id, off = fd_array index of
    // its module BTF (0 for vmlinux).
    kKfunc,
  };
  uint32_t insn = 0;
  Kind kind = Kind::kMapFd;
  std::string name;         // map name (kMapFd, kMapValue, kKconfig) or extern name
  uint32_t offset = 0;      // kMapValue/kKconfig: byte offset, already in insns[insn+1].imm
  std::string extern_name;  // kKconfig
  bool weak = false;        // kKsym/kKfunc
  uint32_t btf_type_id = 0; // kKsym: the VAR's type in the spec's BTF; kKfunc: the FUNC
};
absl::string_view FixupKindName(Fixup::Kind kind);

// One program ready for the loader: PROG_LOAD takes insns, func_info and
// line_info as they are (record sizes are the kernel's, 8 and 16 bytes).
struct LinkedProgram {
  std::string name;
  std::vector<bpf_insn> insns;
  std::vector<FuncInfo> func_info;
  std::vector<LineInfo> line_info;
  // Not for PROG_LOAD: input of CO-RE relocation, insn offsets in `insns`.
  std::vector<CoreRelo> core_relos;
  std::vector<Fixup> fixups;
  // The program's function first, then each sub-program in the order appended,
  // with where it starts in insns.
  std::vector<std::pair<std::string, uint32_t>> layout;
};

// Flattens program `program_name`: its code followed by every sub-program
// it reaches (transitively, each once), with bpf-to-bpf call and callback
// offsets set, BTF.ext records rebased and map/extern sites listed in
// fixups. Fails on calls to undefined functions and on references to maps
// that are not in spec.maps.
absl::StatusOr<LinkedProgram> LinkProgram(const CollectionSpec& spec,
                                          absl::string_view program_name);

// --- kconfig ---------------------------------------------------------------------

struct KernelConfig {
  // "CONFIG_BPF" -> "y", "CONFIG_HZ" -> "250", "CONFIG_X" -> "\"str\"".
  std::map<std::string, std::string> values;
  uint32_t linux_kernel_version = 0;  // KERNEL_VERSION(a, b, c)
  // Value of LINUX_HAS_SYSCALL_WRAPPER; Parse() derives it from the
  // architecture and version.
  bool has_syscall_wrapper = false;

  // Reads /boot/config-$(uname -r) or /proc/config.gz and uname.
  static absl::StatusOr<KernelConfig> Load();
  // Parses the text of a kernel .config.
  static absl::StatusOr<KernelConfig> Parse(absl::string_view text, uint32_t kernel_version);
};

// Computes the contents of the ".kconfig" map from the spec's kconfig
// externs. A missing CONFIG_ value is 0 for weak externs and an error
// for the others. Returns an empty vector when there is no .kconfig map.
absl::StatusOr<std::vector<uint8_t>> ResolveKconfig(const CollectionSpec& spec,
                                                    const KernelConfig& config);

}  // namespace tether

#endif  // TETHER_COLLECTION_SPEC_H_
