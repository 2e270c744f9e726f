#include "fuzz_bodies.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tether/btf.h"
#include "tether/collection_spec.h"
#include "tether/core.h"

namespace tether::fuzz {
namespace {

// A broken invariant is a bug in tether, not a bad input: crash loudly so
// that the fuzzer keeps the input.
[[noreturn]] void Broken(const std::string& what) {
  fprintf(stderr, "fuzz invariant broken: %s\n", what.c_str());
  abort();
}

// Errors must say what went wrong; an empty message is a bug.
void RequireMessage(const absl::Status& st, const char* step) {
  if (!st.ok() && st.message().empty()) Broken(absl::StrCat(step, " failed without a message"));
}
absl::Status Checked(absl::Status st, const char* step) {
  RequireMessage(st, step);
  return st;
}

void WalkTypes(const Btf& btf) {
  for (uint32_t id = 1; id < btf.NumTypes(); ++id) {
    const BtfType* t = btf.TypeById(id);
    if (t == nullptr) Broken(absl::StrCat("type ", id, " below NumTypes is missing"));
    (void)btf.Name(*t);
    (void)btf.SizeOf(id);
    (void)btf.AlignOf(id);
    (void)btf.SkipQualifiers(id);
    switch (t->kind) {
      case BtfKind::kStruct:
      case BtfKind::kUnion: {
        size_t n = 0;
        for (const BtfMember& m : btf.Members(*t)) {
          if (++n > 64) break;  // keeps huge structs from making this quadratic
          absl::string_view name = btf.String(m.name_off);
          if (!name.empty()) (void)btf.FindMember(id, name);
        }
        break;
      }
      case BtfKind::kEnum:
      case BtfKind::kEnum64:
        for (const BtfEnumValue& v : btf.EnumValues(*t)) (void)btf.String(v.name_off);
        break;
      case BtfKind::kDatasec:
        for (const BtfVarSecinfo& s : btf.Secinfos(*t)) (void)btf.TypeById(s.type);
        break;
      default:
        break;
    }
    if (!btf.Name(*t).empty()) {
      bool found = false;
      for (uint32_t other : btf.IdsByName(btf.Name(*t))) found |= other == id;
      if (!found) Broken(absl::StrCat("type ", id, " is missing from the name index"));
    }
  }
}

void CheckSameTypes(const Btf& a, const Btf& b, const char* what) {
  if (a.NumTypes() != b.NumTypes()) {
    Broken(absl::StrCat(what, ": ", a.NumTypes(), " types became ", b.NumTypes()));
  }
  for (uint32_t id = 1; id < a.NumTypes(); ++id) {
    const BtfType* x = a.TypeById(id);
    const BtfType* y = b.TypeById(id);
    if (x->kind != y->kind || x->vlen != y->vlen || x->size_or_type != y->size_or_type ||
        a.Name(*x) != b.Name(*y)) {
      Broken(absl::StrCat(what, ": type ", id, " changed"));
    }
  }
}

struct LocalProgram {
  std::string name;
  std::vector<bpf_insn> insns;
  std::vector<CoreRelo> relos;
};

struct LocalObject {
  CollectionSpec spec;
  std::vector<LocalProgram> programs;
};

std::vector<LocalObject>& LocalObjects() {
  static auto* objects = new std::vector<LocalObject>();
  return *objects;
}

}  // namespace

absl::Status FuzzElf(absl::Span<const uint8_t> data) {
  auto spec = CollectionSpec::FromMemory(data, "fuzz.o");
  if (!spec.ok()) return Checked(spec.status(), "FromMemory");
  absl::Status first_error;
  for (const auto& [name, prog] : spec->programs) {
    auto linked = LinkProgram(*spec, name);
    if (!linked.ok()) {
      RequireMessage(linked.status(), "LinkProgram");
      if (first_error.ok()) first_error = linked.status();
      continue;
    }
    for (const Fixup& f : linked->fixups) {
      if (f.insn >= linked->insns.size()) Broken(absl::StrCat(name, ": fixup past the end"));
    }
  }
  for (const auto& [name, var] : spec->variables) {
    auto value = spec->GetVariable(name);
    if (value.ok()) {
      std::vector<uint8_t> copy(value->begin(), value->end());
      RequireMessage(spec->SetVariable(name, absl::MakeConstSpan(copy)), "SetVariable");
    }
  }
  CollectionSpec copy = spec->Copy();
  if (copy.programs.size() != spec->programs.size() || copy.maps.size() != spec->maps.size()) {
    Broken("Copy() lost objects");
  }
  return first_error;
}

absl::Status FuzzBtf(absl::Span<const uint8_t> data) {
  auto btf = Btf::Parse(data, "fuzz.btf");
  if (!btf.ok()) return Checked(btf.status(), "Btf::Parse");
  WalkTypes(*btf);

  std::vector<uint8_t> wire = btf->Marshal();
  auto again = Btf::Parse(wire, "marshalled");
  if (!again.ok()) Broken(absl::StrCat("Marshal() output does not parse: ", again.status().message()));
  CheckSameTypes(*btf, *again, "Marshal round trip");

  BtfFeatures oldest;
  oldest.func = oldest.func_global = oldest.datasec = oldest.float_kind = false;
  oldest.decl_tag = oldest.type_tag = oldest.enum64 = false;
  for (const BtfFeatures& features : {oldest, BtfFeatures{}}) {
    std::vector<uint8_t> sanitized = SanitizeBtfForKernel(*btf, features);
    auto parsed = Btf::Parse(sanitized, "sanitized");
    if (!parsed.ok()) {
      Broken(absl::StrCat("sanitized BTF does not parse: ", parsed.status().message()));
    }
    if (parsed->NumTypes() != btf->NumTypes() && parsed->NumTypes() != btf->NumTypes() + 1) {
      Broken("sanitizing changed the type ids");
    }
  }
  return absl::OkStatus();
}

absl::Status SetCoreLocalObjects(const std::vector<std::string>& paths) {
  std::vector<LocalObject>& objects = LocalObjects();
  objects.clear();
  for (const std::string& path : paths) {
    auto spec = CollectionSpec::FromFile(path);
    if (!spec.ok()) return spec.status();
    if (!spec->btf.has_value()) return absl::InvalidArgumentError(path + ": no BTF");
    LocalObject obj{std::move(*spec), {}};
    for (const auto& [name, prog] : obj.spec.programs) {
      auto linked = LinkProgram(obj.spec, name);
      if (!linked.ok() || linked->core_relos.empty()) continue;
      obj.programs.push_back({name, std::move(linked->insns), std::move(linked->core_relos)});
    }
    if (obj.programs.empty()) return absl::InvalidArgumentError(path + ": no CO-RE relocations");
    objects.push_back(std::move(obj));
  }
  return absl::OkStatus();
}

std::vector<std::string> DefaultCoreLocalObjects(const std::string& source_dir) {
  std::vector<std::string> paths;
  for (const char* name : {"relocs-el.elf", "relocs_read-el.elf", "relocs_enum-el.elf",
                           "errors-el.elf", "manyprogs-el.elf"}) {
    paths.push_back(source_dir + "/test/corpus/" + name);
  }
  return paths;
}

absl::Status FuzzCore(absl::Span<const uint8_t> data) {
  if (LocalObjects().empty()) Broken("SetCoreLocalObjects was not called");
  auto target_btf = Btf::Parse(data, "target.btf");
  if (!target_btf.ok()) return Checked(target_btf.status(), "Btf::Parse");
  CoreTarget target(*target_btf);
  absl::Status first_error;
  for (const LocalObject& obj : LocalObjects()) {
    for (const LocalProgram& prog : obj.programs) {
      std::vector<bpf_insn> insns = prog.insns;
      std::vector<CorePoison> poisoned;
      absl::Status st = Checked(
          ApplyCoreRelocations(prog.name, *obj.spec.btf, prog.relos, absl::MakeSpan(insns), target,
                               &poisoned),
          "ApplyCoreRelocations");
      if (!st.ok() && first_error.ok()) first_error = st;
      for (const CorePoison& p : poisoned) {
        if (p.insn + p.count > insns.size()) Broken(prog.name + ": poison past the end");
        if (p.reason.empty()) Broken(prog.name + ": poison without a reason");
      }
      for (const CoreRelo& relo : prog.relos) {
        auto fixup = ComputeCoreFixup(*obj.spec.btf, relo, target);
        RequireMessage(fixup.status(), "ComputeCoreFixup");
      }
    }
  }
  return first_error;
}

}  // namespace tether::fuzz
