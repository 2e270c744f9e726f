// kfuncs found in kernel module BTF (test/bpf/module_kfunc.bpf.c): the
// call's imm is an id in the module's BTF and its off an fd_array slot
// holding that BTF's fd; every fd the load opened is closed after it. On
// Debian's 6.1 nf_conntrack is a module; on the host it is built in, and
// the same object must load against vmlinux.
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "btf/kernel_btf.h"
#include "sys/bpf.h"
#include "test_support.h"
#include "tether/collection.h"
#include "tether/probe.h"

using namespace tether;

namespace {

CollectionSpec ModuleKfuncSpec() {
  auto spec = CollectionSpec::FromFile(testing::BpfObjectPath("module_kfunc"));
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  return *std::move(spec);
}

// nf_conntrack may be a module (Debian) or built in (the host, which has
// no modprobe at all); a failure here only means there is nothing to load.
void LoadConntrackModule() { (void)system("modprobe nf_conntrack >/dev/null 2>&1"); }

// The module BTF describing FUNC `name`, or nullopt when vmlinux does.
absl::optional<detail::ModuleBtf> ModuleOf(const std::string& name) {
  auto vmlinux = KernelBtf();
  REQUIRE(vmlinux.ok());
  if ((*vmlinux)->FindByNameKind(name, BtfKind::kFunc)) return absl::nullopt;
  auto modules = detail::LoadedModuleBtfs();
  REQUIRE(modules.ok());
  for (const detail::ModuleBtf& m : *modules) {
    if (m.btf->FindByNameKind(name, BtfKind::kFunc)) return m;
  }
  FAIL("kfunc " << name << " is in no BTF, yet the probe found it");
  return absl::nullopt;
}

struct KfuncCall {
  int32_t imm;
  int16_t off;
};
std::vector<KfuncCall> KfuncCalls(const std::vector<bpf_insn>& insns) {
  std::vector<KfuncCall> out;
  for (const bpf_insn& in : insns) {
    if (in.code == (BPF_JMP | BPF_CALL) && in.src_reg == BPF_PSEUDO_KFUNC_CALL) {
      out.push_back({in.imm, in.off});
    }
  }
  return out;
}

}  // namespace

TEST_CASE("kfuncs from a kernel module's BTF: fd_array slot, test run, no fd left open",
          "[collection][kfunc][module]") {
  LoadConntrackModule();
  TETHER_REQUIRE_FEATURE("kfunc bpf_xdp_ct_lookup", probe::HaveKfunc("bpf_xdp_ct_lookup"));
  CollectionSpec spec = ModuleKfuncSpec();
  for (const char* name : {"bpf_xdp_ct_lookup", "bpf_ct_release"}) {
    const ExternSpec& e = spec.externs.at(name);
    CHECK(e.kind == ExternSpec::Kind::kKsym);
    CHECK(e.is_func);
    CHECK_FALSE(e.weak);
    CHECK(spec.btf->TypeById(e.btf_id)->kind == BtfKind::kFunc);
  }
  absl::optional<detail::ModuleBtf> module = ModuleOf("bpf_xdp_ct_lookup");
  INFO("bpf_xdp_ct_lookup is in " << (module ? module->name : std::string("vmlinux")));
  if (module) {
    absl::optional<detail::ModuleBtf> release = ModuleOf("bpf_ct_release");
    REQUIRE(release.has_value());
    REQUIRE(release->obj_id == module->obj_id);
  }

  size_t fds = testing::CountOpenFds();
  sys::testing::RecordProgLoads(true);
  Program prog;
  Map data;
  absl::Status st = LoadAndAssign(spec, {{{".data", &data}}, {{"ct_lookup", &prog}}});
  sys::testing::RecordProgLoads(false);
  std::vector<sys::testing::RecordedProgLoad> loads = sys::testing::TakeRecordedProgLoads();
  INFO(st.ToString());
  REQUIRE(st.ok());
  // Only what the caller holds is open: the program and .data. The module
  // BTF fd went with the loader; the kernel holds its own reference.
  CHECK(testing::CountOpenFds() == fds + 2);

  REQUIRE(loads.size() == 1);
  const sys::testing::RecordedProgLoad& load = loads[0];
  CHECK(load.name == "ct_lookup");
  std::vector<KfuncCall> calls = KfuncCalls(load.insns);
  REQUIRE(calls.size() == 2);
  auto vmlinux = KernelBtf();
  const Btf& where = module ? *module->btf : **vmlinux;
  std::vector<std::string> names;
  for (const KfuncCall& c : calls) {
    REQUIRE(where.TypeById(c.imm) != nullptr);
    CHECK(where.TypeById(c.imm)->kind == BtfKind::kFunc);
    names.emplace_back(where.NameOf(c.imm));
    if (module) {
      CHECK(c.imm >= static_cast<int32_t>(module->btf->FirstOwnId()));
      CHECK(c.off == 1);  // one module, one slot; slot 0 would mean vmlinux
    } else {
      CHECK(c.off == 0);
    }
  }
  CHECK(names == std::vector<std::string>{"bpf_xdp_ct_lookup", "bpf_ct_release"});
  if (module) {
    REQUIRE(load.fd_array.size() == 2);
    CHECK(load.fd_array[0] == -1);
    CHECK(load.fd_array_btf_ids[1] == module->obj_id);
  } else {
    CHECK(load.fd_array.empty());
  }

  // A flow nobody opened: the lookup finds nothing and says -ENOENT.
  std::vector<uint8_t> packet(64, 0);
  RunOptions ro;
  ro.data = packet;
  auto run = prog.Run(ro);
  INFO(run.status().ToString());
  REQUIRE(run.ok());
  CHECK(run->return_value == XDP_PASS);
  int32_t lookup_error = 0;
  REQUIRE(data.Lookup(uint32_t{0}, &lookup_error).ok());
  CHECK(lookup_error == -ENOENT);
}

TEST_CASE("a missing kfunc that is not weak: the error names the program, the kfunc, every BTF searched",
          "[collection][kfunc][module]") {
  LoadConntrackModule();  // so that on 6.1 there is at least one module BTF to name
  CollectionSpec spec = ModuleKfuncSpec();
  auto modules = detail::LoadedModuleBtfs();
  REQUIRE(modules.ok());
  size_t fds = testing::CountOpenFds();
  Program p;
  absl::Status st = LoadAndAssign(spec, {{}, {{"missing_kfunc", &p}}});
  INFO(st.ToString());
  REQUIRE_FALSE(st.ok());
  CHECK(st.code() == absl::StatusCode::kNotFound);
  std::string msg(st.message());
  CHECK_THAT(msg, Catch::Contains("program 'missing_kfunc'") &&
                      Catch::Contains("kfunc 'bpf_tether_no_such_kfunc'"));
  size_t n = modules->size();
  CHECK_THAT(msg, Catch::Contains(absl::StrCat("searched vmlinux and ", n, n == 1 ? " module BTF" : " module BTFs")));
  for (size_t i = 0; i < n && i < 12; ++i) CHECK_THAT(msg, Catch::Contains((*modules)[i].name));
  CHECK_FALSE(p);
  CHECK(testing::CountOpenFds() == fds);
}

TEST_CASE("a failure at any bpf() call of a module kfunc load leaves no fd open",
          "[collection][kfunc][module][faults]") {
  LoadConntrackModule();
  TETHER_REQUIRE_FEATURE("kfunc bpf_xdp_ct_lookup", probe::HaveKfunc("bpf_xdp_ct_lookup"));
  CollectionSpec spec = ModuleKfuncSpec();
  auto load = [&] {
    Program prog;
    absl::Status st = LoadAndAssign(spec, {{}, {{"ct_lookup", &prog}}});
    return std::make_pair(st, prog);
  };
  size_t fds = testing::CountOpenFds();
  sys::testing::StartCounting();
  REQUIRE(load().first.ok());
  uint64_t calls = sys::testing::CallCount();
  sys::testing::ClearFault();
  REQUIRE(testing::CountOpenFds() == fds);
  for (uint64_t n = 1; n <= calls; ++n) {
    for (int err : {ENOMEM, EMFILE, EPERM}) {
      INFO("failing call " << n << " of " << calls << " with errno " << err);
      sys::testing::InjectFault(n, err);
      auto [st, prog] = load();
      sys::testing::ClearFault();
      if (st.ok()) {
        std::vector<uint8_t> packet(64, 0);
        RunOptions ro;
        ro.data = packet;
        auto run = prog.Run(ro);
        REQUIRE(run.ok());
        CHECK(run->return_value == XDP_PASS);
      } else {
        INFO(st.ToString());
        CHECK_THAT(std::string(st.message()), Catch::Contains(std::string(sys::ErrnoName(err))));
      }
    }
    CHECK(testing::CountOpenFds() == fds);
  }
}
