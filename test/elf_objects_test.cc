// Test objects for what the ELF loader supports and the corpus alone
// covered: .ksyms of every kind, custom .rodata.*/.data.* sections,
// numa_node in BTF-defined maps, BTF decl and type tags. Each spec is
// checked field by field, then loaded and run where the kernel can.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "btf/kernel_btf.h"
#include "sys/bpf.h"
#include "test_programs.h"
#include "test_support.h"
#include "tether/btf.h"
#include "tether/collection.h"
#include "tether/probe.h"

using namespace tether;
using testing::RunValue;

namespace {

CollectionSpec Load(const std::string& name) {
  auto spec = CollectionSpec::FromFile(testing::BpfObjectPath(name));
  INFO(name << ": " << spec.status().ToString());
  REQUIRE(spec.ok());
  return *std::move(spec);
}

template <typename T>
std::vector<uint8_t> Bytes(const T& v) {
  std::vector<uint8_t> out(sizeof(T));
  memcpy(out.data(), &v, sizeof(T));
  return out;
}

// Reads or writes one variable of a loaded data-section map (key 0).
template <typename T>
T ReadVar(const Map& map, const CollectionSpec& spec, const std::string& var) {
  const VariableSpec& v = spec.variables.at(var);
  REQUIRE(v.size == sizeof(T));
  std::vector<uint8_t> value(map.value_size());
  uint32_t zero = 0;
  REQUIRE(map.Lookup(absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&zero), 4), absl::MakeSpan(value)).ok());
  T out;
  memcpy(&out, value.data() + v.offset, sizeof(T));
  return out;
}
template <typename T>
void WriteVar(const Map& map, const CollectionSpec& spec, const std::string& var, const T& x) {
  const VariableSpec& v = spec.variables.at(var);
  REQUIRE(v.size == sizeof(T));
  std::vector<uint8_t> value(map.value_size());
  uint32_t zero = 0;
  auto key = absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&zero), 4);
  REQUIRE(map.Lookup(key, absl::MakeSpan(value)).ok());
  memcpy(value.data() + v.offset, &x, sizeof(T));
  REQUIRE(map.Update(key, value).ok());
}

absl::StatusOr<uint32_t> RunXdp(const Program& p) {
  std::vector<uint8_t> packet(64, 0);
  RunOptions ro;
  ro.data = packet;
  auto r = p.Run(ro);
  if (!r.ok()) return r.status();
  return r->return_value;
}

uint64_t KallsymsAddress(const std::string& name) {
  std::ifstream in("/proc/kallsyms");
  std::string addr, type, sym, rest;
  while (in >> addr >> type >> sym) {
    std::getline(in, rest);
    if (sym == name) return std::stoull(addr, nullptr, 16);
  }
  return 0;
}

std::vector<Fixup::Kind> FixupKinds(const CollectionSpec& spec, const std::string& program,
                                    const std::string& name) {
  auto linked = LinkProgram(spec, program);
  REQUIRE(linked.ok());
  std::vector<Fixup::Kind> out;
  for (const Fixup& f : linked->fixups)
    if (f.name == name) out.push_back(f.kind);
  return out;
}

}  // namespace

TEST_CASE(".ksyms in the spec: typed and untyped variables, kfuncs called and kfuncs tested for",
          "[elf][ksym][collection]") {
  CollectionSpec spec = Load("ksyms");
  struct Want {
    const char* name;
    bool is_func, weak;
    const char* type;  // VAR: the name of its type after qualifiers; "" for untyped
  };
  const std::vector<Want> want = {
      {"runqueues", false, false, "rq"},
      {"bpf_prog_active", false, false, "int"},
      {"bpf_prog_put", false, false, ""},
      {"bpf_task_from_pid", true, false, nullptr},
      {"bpf_task_release", true, false, nullptr},
      {"bpf_rcu_read_lock", true, true, nullptr},
      {"bpf_rcu_read_unlock", true, true, nullptr},
      {"bpf_tether_missing_kfunc", true, true, nullptr},
  };
  CHECK(spec.externs.size() == want.size());
  for (const Want& w : want) {
    INFO(w.name);
    REQUIRE(spec.externs.count(w.name));
    const ExternSpec& e = spec.externs.at(w.name);
    CHECK(e.name == w.name);
    CHECK(e.kind == ExternSpec::Kind::kKsym);
    CHECK(e.is_func == w.is_func);
    CHECK(e.weak == w.weak);
    const BtfType* t = spec.btf->TypeById(e.btf_id);
    REQUIRE(t != nullptr);
    CHECK(t->kind == (w.is_func ? BtfKind::kFunc : BtfKind::kVar));
    CHECK(spec.btf->Name(*t) == w.name);
    if (w.is_func) {
      CHECK(spec.btf->TypeById(e.type_id)->kind == BtfKind::kFuncProto);
    } else if (*w.type == '\0') {
      CHECK(e.type_id == 0);  // `const void`: resolved through kallsyms
    } else {
      REQUIRE(e.type_id != 0);
      CHECK(spec.btf->NameOf(e.type_id) == w.type);
    }
  }
  // .ksyms is no map: only the data sections are.
  std::set<std::string> maps;
  for (const auto& [name, m] : spec.maps) maps.insert(name);
  CHECK(maps == std::set<std::string>{".bss", ".data"});
  CHECK(FixupKinds(spec, "typed_ksyms", "runqueues") == std::vector<Fixup::Kind>{Fixup::Kind::kKsym});
  CHECK(FixupKinds(spec, "untyped_ksym", "bpf_prog_put") == std::vector<Fixup::Kind>{Fixup::Kind::kKsym});
  CHECK(FixupKinds(spec, "kfunc_task", "bpf_task_from_pid") == std::vector<Fixup::Kind>{Fixup::Kind::kKfunc});
  // bpf_ksym_exists() takes the address (ld_imm64), then the guarded call.
  CHECK(FixupKinds(spec, "kfunc_exists", "bpf_tether_missing_kfunc") ==
        std::vector<Fixup::Kind>{Fixup::Kind::kKsym, Fixup::Kind::kKfunc});

}

// A skip returns from the test case, and Catch2 would then never find the
// sections after it: each load is a test case of its own.
namespace {
bool HaveTaskKfuncs() {
  return probe::HaveKfunc("bpf_task_from_pid").ok() && probe::HaveKfunc("bpf_task_release").ok();
}
}  // namespace

TEST_CASE(".ksyms loaded: typed ksyms read runqueues[cpu].cpu and this CPU's bpf_prog_active",
          "[elf][ksym][collection]") {
  TETHER_REQUIRE_FEATURE("typed_ksyms", probe::HaveTypedKsyms());
  CollectionSpec spec = Load("ksyms");
  Program prog;
  Map bss, data;
  absl::Status st = LoadAndAssign(spec, {{{".bss", &bss}, {".data", &data}}, {{"typed_ksyms", &prog}}});
  INFO(st.ToString());
  REQUIRE(st.ok());
  for (uint32_t cpu = 0; cpu < std::min<uint32_t>(PossibleCpus(), 4); ++cpu) {
    INFO("cpu " << cpu);
    WriteVar(bss, spec, "want_cpu", cpu);
    auto ret = RunXdp(prog);
    REQUIRE(ret.ok());
    CHECK(*ret == XDP_PASS);
    CHECK(ReadVar<int32_t>(data, spec, "rq_cpu") == static_cast<int32_t>(cpu));
    // A test run is no tracing program: nothing holds bpf_prog_active.
    int32_t active = ReadVar<int32_t>(data, spec, "prog_active");
    CHECK(active >= 0);
    CHECK(active <= 1);
  }
  WriteVar(bss, spec, "want_cpu", uint32_t{1u << 20});  // no such CPU: NULL
  auto ret = RunXdp(prog);
  REQUIRE(ret.ok());
  CHECK(*ret == XDP_DROP);
  CHECK(ReadVar<int32_t>(data, spec, "rq_cpu") == -2);
}

TEST_CASE(".ksyms loaded: an untyped ksym is the kallsyms address", "[elf][ksym][collection]") {
  CollectionSpec spec = Load("ksyms");
  uint64_t want_addr = KallsymsAddress("bpf_prog_put");
  REQUIRE(want_addr != 0);
  Program prog;
  Map bss;
  absl::Status st = LoadAndAssign(spec, {{{".bss", &bss}}, {{"untyped_ksym", &prog}}});
  INFO(st.ToString());
  REQUIRE(st.ok());
  auto ret = RunXdp(prog);
  REQUIRE(ret.ok());
  CHECK(*ret == XDP_PASS);
  CHECK(ReadVar<uint64_t>(bss, spec, "prog_put_addr") == want_addr);
}

TEST_CASE(".ksyms loaded: vmlinux kfuncs find this process by pid, and no task for a pid nobody has",
          "[elf][ksym][kfunc][collection]") {
  if (!HaveTaskKfuncs()) {
    TETHER_REQUIRE_FEATURE("kfunc bpf_task_from_pid", probe::HaveKfunc("bpf_task_from_pid"));
    TETHER_REQUIRE_FEATURE("kfunc bpf_task_release", probe::HaveKfunc("bpf_task_release"));
  }
  CollectionSpec spec = Load("ksyms");
  REQUIRE(spec.SetVariable("want_pid", static_cast<int32_t>(getpid())).ok());
  Program prog;
  Map bss, data;
  absl::Status st = LoadAndAssign(spec, {{{".bss", &bss}, {".data", &data}}, {{"kfunc_task", &prog}}});
  INFO(st.ToString());
  REQUIRE(st.ok());
  auto ret = RunXdp(prog);
  REQUIRE(ret.ok());
  CHECK(*ret == XDP_PASS);
  CHECK(ReadVar<int32_t>(data, spec, "found_pid") == getpid());
  WriteVar(bss, spec, "want_pid", int32_t{0x3fffffff});  // above any pid_max
  ret = RunXdp(prog);
  REQUIRE(ret.ok());
  CHECK(*ret == XDP_DROP);
  CHECK(ReadVar<int32_t>(data, spec, "found_pid") == 0);
}

TEST_CASE(".ksyms loaded: bpf_ksym_exists is 0 for a kfunc no kernel has, the BTF id for one it has",
          "[elf][ksym][kfunc][collection]") {
  CollectionSpec spec = Load("ksyms");
  const bool have_rcu_kfuncs = probe::HaveKfunc("bpf_rcu_read_lock").ok() &&
                               probe::HaveKfunc("bpf_rcu_read_unlock").ok();
  sys::testing::RecordProgLoads(true);
  Program prog;
  absl::Status st = LoadAndAssign(spec, {{}, {{"kfunc_exists", &prog}}});
  sys::testing::RecordProgLoads(false);
  auto loads = sys::testing::TakeRecordedProgLoads();
  INFO(st.ToString());
  REQUIRE(st.ok());
  auto ret = RunXdp(prog);
  REQUIRE(ret.ok());
  CHECK(*ret == (have_rcu_kfuncs ? 2u : 0u));
  // What the loader put in the ld_imm64s: a missing weak kfunc reads 0,
  // a present one its vmlinux BTF id, as a plain constant.
  REQUIRE(loads.size() == 1);
  auto vmlinux = KernelBtf();
  REQUIRE(vmlinux.ok());
  std::vector<uint32_t> loaded_constants;
  for (size_t i = 0; i + 1 < loads[0].insns.size(); ++i) {
    const bpf_insn& in = loads[0].insns[i];
    if (in.code != (BPF_LD | BPF_IMM | BPF_DW)) continue;
    CHECK(in.src_reg == 0);
    CHECK(in.off == 0);
    CHECK(loads[0].insns[i + 1].imm == 0);
    loaded_constants.push_back(static_cast<uint32_t>(in.imm));
    ++i;
  }
  std::vector<uint32_t> want_constants = {0};
  for (const char* f : {"bpf_rcu_read_lock", "bpf_rcu_read_unlock"}) {
    auto id = (*vmlinux)->FindByNameKind(f, BtfKind::kFunc);
    want_constants.push_back(id ? *id : 0);
  }
  std::sort(loaded_constants.begin(), loaded_constants.end());
  std::sort(want_constants.begin(), want_constants.end());
  CHECK(loaded_constants == want_constants);
  for (const bpf_insn& in : loads[0].insns) {
    if (in.code == (BPF_JMP | BPF_CALL) && in.src_reg == BPF_PSEUDO_KFUNC_CALL) CHECK(in.off == 0);
  }
}

TEST_CASE(".ksyms loaded: the whole object, or an error naming the program and the kfunc missing",
          "[elf][ksym][kfunc][collection]") {
  CollectionSpec spec = Load("ksyms");
  auto coll = Collection::Load(spec);
  absl::Status typed = probe::HaveTypedKsyms();
  if (probe::Unusable(typed)) {
    // typed_ksyms cannot load here; the error still names it.
    REQUIRE_FALSE(coll.ok());
    CHECK_THAT(std::string(coll.status().message()), Catch::Contains("typed_ksyms"));
    TETHER_SKIP_FOR_PROBE("typed_ksyms", typed.message());
  }
  if (HaveTaskKfuncs()) {
    INFO(coll.status().ToString());
    REQUIRE(coll.ok());
    CHECK(coll->programs().size() == 4);
  } else {
    REQUIRE_FALSE(coll.ok());
    CHECK_THAT(std::string(coll.status().message()),
               Catch::Contains("program 'kfunc_task'") && Catch::Contains("kfunc 'bpf_task_from_pid'") &&
                   Catch::Contains("searched vmlinux and"));
  }
}

TEST_CASE("custom .rodata.* and .data.* sections: a map each, frozen, addressable, rewritable",
          "[elf][data][collection]") {
  CollectionSpec spec = Load("custom_sections");
  std::set<std::string> maps;
  for (const auto& [name, m] : spec.maps) maps.insert(name);
  CHECK(maps == std::set<std::string>{".data.counters", ".rodata.cfg"});

  const MapSpec& cfg = spec.maps.at(".rodata.cfg");
  CHECK(cfg.name == ".rodata.cfg");
  CHECK(cfg.section == ".rodata.cfg");
  CHECK(cfg.type == BPF_MAP_TYPE_ARRAY);
  CHECK(cfg.key_size == 4);
  CHECK(cfg.value_size == 8);
  CHECK(cfg.max_entries == 1);
  CHECK(cfg.flags == BPF_F_RDONLY_PROG);
  CHECK(cfg.freeze);
  CHECK(cfg.pinning == PinType::kNone);
  CHECK(cfg.init.empty());
  std::vector<uint8_t> want_cfg = Bytes(uint32_t{3});
  for (uint8_t b : Bytes(uint32_t{10})) want_cfg.push_back(b);
  CHECK(cfg.contents == want_cfg);
  CHECK(spec.btf->NameOf(cfg.btf_value_type_id) == ".rodata.cfg");
  CHECK(spec.btf->TypeById(cfg.btf_value_type_id)->kind == BtfKind::kDatasec);

  const MapSpec& ctr = spec.maps.at(".data.counters");
  CHECK(ctr.section == ".data.counters");
  CHECK(ctr.type == BPF_MAP_TYPE_ARRAY);
  CHECK(ctr.key_size == 4);
  CHECK(ctr.value_size == 12);
  CHECK(ctr.max_entries == 1);
  CHECK(ctr.flags == 0);
  CHECK_FALSE(ctr.freeze);
  std::vector<uint8_t> want_ctr = Bytes(uint64_t{100});
  for (uint8_t b : Bytes(uint32_t{7})) want_ctr.push_back(b);
  CHECK(ctr.contents == want_ctr);
  CHECK(spec.btf->NameOf(ctr.btf_value_type_id) == ".data.counters");

  // Each variable where the DATASEC says, under its section's map.
  struct WantVar {
    const char* name;
    const char* section;
    uint32_t offset, size;
    bool constant;
  };
  for (const WantVar& w : std::vector<WantVar>{{"cfg_scale", ".rodata.cfg", 0, 4, true},
                                               {"cfg_offset", ".rodata.cfg", 4, 4, true},
                                               {"hits", ".data.counters", 0, 8, false},
                                               {"last", ".data.counters", 8, 4, false}}) {
    INFO(w.name);
    const VariableSpec& v = spec.variables.at(w.name);
    CHECK(v.name == w.name);
    CHECK(v.section == w.section);
    CHECK(v.offset == w.offset);
    CHECK(v.size == w.size);
    CHECK(v.constant == w.constant);
    CHECK(*spec.btf->SizeOf(v.btf_type_id) == w.size);  // the VAR's type
    const BtfType* ds = spec.btf->TypeById(spec.maps.at(w.section).btf_value_type_id);
    bool in_datasec = false;
    for (const BtfVarSecinfo& si : spec.btf->Secinfos(*ds)) {
      if (spec.btf->NameOf(si.type) != w.name) continue;
      CHECK(spec.btf->TypeById(si.type)->kind == BtfKind::kVar);
      CHECK(spec.btf->TypeById(si.type)->type() == v.btf_type_id);
      in_datasec = true;
      CHECK(si.offset == w.offset);
      CHECK(si.size == w.size);
    }
    CHECK(in_datasec);
  }

  SECTION("loaded: the program reads both sections; .rodata.cfg is frozen, .data.counters is not") {
    auto coll = Collection::Load(spec);
    INFO(coll.status().ToString());
    REQUIRE(coll.ok());
    CHECK(RunValue(coll->program("read_sections")) == 3 * 7 + 10);
    Map counters = coll->map(".data.counters");
    Map rodata = coll->map(".rodata.cfg");
    REQUIRE(counters);
    REQUIRE(rodata);
    CHECK(counters.name() == ".data.counters");
    CHECK(rodata.name() == ".rodata.cfg");
    CHECK(rodata.value_size() == 8);
    CHECK((rodata.flags() & BPF_F_RDONLY_PROG) != 0);
    CHECK(ReadVar<uint64_t>(counters, spec, "hits") == 101);
    CHECK(ReadVar<uint32_t>(counters, spec, "last") == 31);
    CHECK(ReadVar<uint32_t>(rodata, spec, "cfg_scale") == 3);
    CHECK(ReadVar<uint32_t>(rodata, spec, "cfg_offset") == 10);
    uint32_t zero = 0;
    std::vector<uint8_t> value(8, 0);
    absl::Status frozen = rodata.Update(absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&zero), 4), value);
    CHECK_FALSE(frozen.ok());
    CHECK_THAT(std::string(frozen.message()), Catch::Contains("EPERM"));
    WriteVar(counters, spec, "hits", uint64_t{5});
    CHECK(RunValue(coll->program("read_sections")) == 31);
    CHECK(ReadVar<uint64_t>(counters, spec, "hits") == 6);
  }
  SECTION("a .rodata.cfg constant rewritten in the spec changes what the program returns") {
    CollectionSpec copy = spec.Copy();
    REQUIRE(spec.SetVariable("cfg_scale", uint32_t{5}).ok());
    REQUIRE(spec.SetVariable("cfg_offset", uint32_t{1}).ok());
    CHECK_FALSE(spec.SetVariable("cfg_scale", uint64_t{5}).ok());  // 4 bytes, not 8
    auto coll = Collection::Load(spec);
    REQUIRE(coll.ok());
    CHECK(RunValue(coll->program("read_sections")) == 5 * 7 + 1);
    CHECK(ReadVar<uint32_t>(coll->map(".data.counters"), spec, "last") == 36);
    auto original = Collection::Load(copy);
    REQUIRE(original.ok());
    CHECK(RunValue(original->program("read_sections")) == 31);
  }
}

TEST_CASE("numa_node in a BTF-defined map: in the spec, and given to the kernel with BPF_F_NUMA_NODE",
          "[elf][map][numa]") {
  CollectionSpec spec = Load("numa_map");
  const MapSpec& node0 = spec.maps.at("on_node0");
  CHECK(node0.section == ".maps");
  CHECK(node0.type == BPF_MAP_TYPE_HASH);
  CHECK(node0.key_size == 4);
  CHECK(node0.value_size == 8);
  CHECK(node0.max_entries == 8);
  CHECK(node0.flags == BPF_F_NUMA_NODE);
  CHECK(node0.numa_node == 0);
  const MapSpec& node1 = spec.maps.at("on_node1");
  CHECK(node1.type == BPF_MAP_TYPE_ARRAY);
  CHECK(node1.max_entries == 2);
  CHECK(node1.flags == BPF_F_NUMA_NODE);
  CHECK(node1.numa_node == 1);

  Program prog;
  Map map;
  absl::Status st = LoadAndAssign(spec, {{{"on_node0", &map}}, {{"count_on_node0", &prog}}});
  INFO(st.ToString());
  REQUIRE(st.ok());
  CHECK(map.flags() == BPF_F_NUMA_NODE);  // the kernel keeps the flag it was given
  CHECK(map.type() == BPF_MAP_TYPE_HASH);
  CHECK(RunValue(prog) == 1);
  CHECK(RunValue(prog) == 2);
  uint64_t count = 0;
  REQUIRE(map.Lookup(uint32_t{1}, &count).ok());
  CHECK(count == 2);

  // The node reaches the kernel: node 1 exists only on multi-node machines.
  struct stat sb;
  bool have_node1 = stat("/sys/devices/system/node/node1", &sb) == 0;
  Map m1;
  size_t fds = testing::CountOpenFds();
  absl::Status st1 = LoadAndAssign(spec, {{{"on_node1", &m1}}, {}});
  INFO(st1.ToString());
  if (have_node1) {
    CHECK(st1.ok());
  } else {
    REQUIRE_FALSE(st1.ok());
    CHECK_THAT(std::string(st1.message()), Catch::Contains("on_node1") && Catch::Contains("EINVAL"));
    CHECK(testing::CountOpenFds() == fds);
  }
}

TEST_CASE("BTF decl and type tags: in the spec's BTF, kept or sanitized for the kernel, and loaded",
          "[elf][btf][collection]") {
  CollectionSpec spec = Load("btf_tags");
  const Btf& btf = *spec.btf;
  using Tag = std::tuple<std::string, std::string, int64_t>;  // tag, tagged type, component
  std::set<Tag> decl_tags;
  std::set<std::pair<std::string, std::string>> type_tags;  // tag, the type it qualifies
  for (uint32_t id = 1; id < btf.NumTypes(); ++id) {
    const BtfType* t = btf.TypeById(id);
    if (t->kind == BtfKind::kDeclTag) {
      decl_tags.emplace(std::string(btf.Name(*t)), std::string(btf.NameOf(t->type())),
                        static_cast<int32_t>(t->extra));
    } else if (t->kind == BtfKind::kTypeTag) {
      type_tags.emplace(std::string(btf.Name(*t)), std::string(btf.NameOf(t->type())));
    }
  }
  CHECK(decl_tags == std::set<Tag>{{"struct_tag", "tagged", -1},
                                   {"member_tag", "tagged", 0},
                                   {"var_tag", "tagged_calls", -1},
                                   {"func_tag", "sum", -1},
                                   {"param_tag", "sum", 0}});
  CHECK(type_tags == std::set<std::pair<std::string, std::string>>{{"tether_ptr", "int"},
                                                                     {"tether_arg", "int"}});
  // The tag sits between the pointer and what it points to.
  auto tagged = btf.FindByNameKind("tagged", BtfKind::kStruct);
  REQUIRE(tagged.has_value());
  auto ptr = btf.FindMember(*tagged, "ptr");
  REQUIRE(ptr.ok());
  const BtfType* p = btf.TypeById(ptr->type);
  REQUIRE(p->kind == BtfKind::kPtr);
  CHECK(btf.TypeById(p->type())->kind == BtfKind::kTypeTag);
  CHECK(btf.NameOf(p->type()) == "tether_ptr");

  auto count_kind = [](const Btf& b, BtfKind k) {
    int n = 0;
    for (uint32_t id = 1; id < b.NumTypes(); ++id) n += b.TypeById(id)->kind == k;
    return n;
  };
  SECTION("what the loader gives this kernel keeps the tags it accepts, and BTF_LOAD takes it") {
    const BtfFeatures& features = KernelBtfFeatures();
    std::vector<uint8_t> blob = SanitizeBtfForKernel(btf, features);
    auto sanitized = Btf::Parse(blob);
    REQUIRE(sanitized.ok());
    CHECK(sanitized->NumTypes() == btf.NumTypes());
    CHECK(count_kind(*sanitized, BtfKind::kDeclTag) == (features.decl_tag ? 5 : 0));
    CHECK(count_kind(*sanitized, BtfKind::kTypeTag) == (features.type_tag ? 2 : 0));
    auto loaded = sys::BtfLoad(blob);
    INFO(loaded.status().ToString());
    CHECK(loaded.ok());
  }
  SECTION("for a kernel before 5.16 both kinds are rewritten, ids unchanged, and any kernel takes it") {
    BtfFeatures old;
    old.decl_tag = false;
    old.type_tag = false;
    std::vector<uint8_t> blob = SanitizeBtfForKernel(btf, old);
    auto sanitized = Btf::Parse(blob);
    REQUIRE(sanitized.ok());
    CHECK(sanitized->NumTypes() == btf.NumTypes());
    CHECK(count_kind(*sanitized, BtfKind::kDeclTag) == 0);
    CHECK(count_kind(*sanitized, BtfKind::kTypeTag) == 0);
    CHECK(sanitized->TypeById(p->type())->kind == BtfKind::kConst);  // TYPE_TAG -> CONST
    auto struct_tag = btf.FindByNameKind("struct_tag", BtfKind::kDeclTag);
    REQUIRE(struct_tag.has_value());
    CHECK(sanitized->TypeById(*struct_tag)->kind == BtfKind::kInt);  // DECL_TAG -> INT
    auto loaded = sys::BtfLoad(blob);
    INFO(loaded.status().ToString());
    CHECK(loaded.ok());
  }
  SECTION("the object loads with its BTF and runs") {
    auto coll = Collection::Load(spec);
    INFO(coll.status().ToString());
    REQUIRE(coll.ok());
    Program prog = coll->program("tagged_prog");
    REQUIRE(prog);
    // Non-zero only if PROG_LOAD took the object's BTF (func and line info).
    CHECK(prog.info().btf_id != 0);
    CHECK(RunValue(prog) == 7 + 5 + 30);
    Map bss = coll->map(".bss");
    REQUIRE(bss);
    CHECK(bss.info().btf_id == prog.info().btf_id);
    CHECK(ReadVar<uint32_t>(bss, spec, "tagged_calls") == 1);
  }
}
