#include "load/struct_ops.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/types/optional.h"
#include "base/status_macros.h"
#include "btf/kernel_btf.h"
#include "graph/graph_internal.h"
#include "handles/map_internal.h"
#include "sys/bpf.h"
#include "sys/uapi_compat.h"
#include "tether/probe.h"
#include "tether/struct_ops.h"

namespace tether::detail {
namespace {

std::string Label(const MapSpec& map) { return absl::StrFormat("struct_ops map '%s'", map.name); }

// A pointer to a function prototype: a slot that takes a program.
bool IsFuncPointer(const Btf& btf, uint32_t type) {
  const BtfType* t = btf.TypeById(btf.SkipQualifiers(type));
  if (t == nullptr || t->kind != BtfKind::kPtr) return false;
  const BtfType* target = btf.TypeById(btf.SkipQualifiers(t->type()));
  return target != nullptr && target->kind == BtfKind::kFuncProto;
}

struct KernelMember {
  uint32_t index = 0;
  uint32_t offset = 0;  // bytes, in the kernel's struct
  uint32_t type = 0;
  bool is_func = false;
};

// Members are matched by name, as libbpf and cilium/ebpf do: the object
// declares the members it sets, in any order, and kernels reorder them.
absl::optional<KernelMember> FindKernelMember(const Btf& kernel, uint32_t struct_id,
                                              absl::string_view name) {
  const BtfType* t = kernel.TypeById(struct_id);
  if (t == nullptr) return absl::nullopt;
  absl::Span<const BtfMember> members = kernel.Members(*t);
  for (uint32_t i = 0; i < members.size(); ++i) {
    if (kernel.String(members[i].name_off) != name) continue;
    return KernelMember{i, members[i].bit_offset / 8, members[i].type,
                        IsFuncPointer(kernel, members[i].type)};
  }
  return absl::nullopt;
}

// The object's member at byte `offset` of its struct_ops struct.
const BtfMember* ObjectMemberAt(const Btf& btf, const BtfType& type, uint32_t offset) {
  for (const BtfMember& m : btf.Members(type)) {
    if (m.bitfield_size == 0 && m.bit_offset == offset * 8) return &m;
  }
  return nullptr;
}

absl::StatusOr<const BtfType*> ObjectStruct(const CollectionSpec& spec, const MapSpec& map) {
  if (!spec.btf) {
    return absl::FailedPreconditionError(absl::StrCat(Label(map), ": the object has no BTF"));
  }
  const BtfType* t = spec.btf->TypeById(map.btf_value_type_id);
  if (t == nullptr || t->kind != BtfKind::kStruct || spec.btf->Name(*t).empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Label(map), ": its variable is not of a named struct type"));
  }
  return t;
}

}  // namespace

absl::StatusOr<StructOpsPlan> PlanStructOps(const CollectionSpec& spec, const MapSpec& map,
                                            const Btf& kernel) {
  TETHER_ASSIGN_OR_RETURN(const BtfType* type, ObjectStruct(spec, map));
  const Btf& btf = *spec.btf;
  StructOpsPlan plan;
  plan.map = map.name;
  plan.type_name = std::string(btf.Name(*type));
  plan.link = (map.flags & sys::uapi::kMapFLink) != 0;
  std::string wrapper = absl::StrCat("bpf_struct_ops_", plan.type_name);
  auto value_id = kernel.FindByNameKind(wrapper, BtfKind::kStruct);
  auto kernel_id = kernel.FindByNameKind(plan.type_name, BtfKind::kStruct);
  if (!value_id || !kernel_id) {
    return absl::NotFoundError(absl::StrFormat(
        "%s: the kernel has no struct_ops type '%s' (its BTF has no struct %s; struct_ops types "
        "of kernel modules are not supported)",
        Label(map), plan.type_name, wrapper));
  }
  plan.kernel_type_id = *kernel_id;
  plan.value_type_id = *value_id;
  TETHER_ASSIGN_OR_RETURN(uint64_t value_size, kernel.SizeOf(*value_id));
  plan.value_size = static_cast<uint32_t>(value_size);
  auto data = kernel.FindMember(*value_id, "data");
  if (!data.ok() || kernel.SkipQualifiers(data->type) != *kernel_id) {
    return absl::InternalError(absl::StrFormat(
        "%s: the kernel's struct %s has no member 'data' of type struct %s", Label(map), wrapper,
        plan.type_name));
  }
  plan.data_offset = data->bit_offset / 8;
  for (const MapInitEntry& e : map.init) {
    const BtfMember* m = ObjectMemberAt(btf, *type, e.key);
    if (m == nullptr || !IsFuncPointer(btf, m->type)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: program '%s' is stored at byte %u of struct %s, which is not a function pointer",
          Label(map), e.name, e.key, plan.type_name));
    }
    std::string member(btf.String(m->name_off));
    auto km = FindKernelMember(kernel, *kernel_id, member);
    if (!km || !km->is_func) {
      return absl::NotFoundError(absl::StrFormat(
          "%s: member '%s' (program '%s') is not a function pointer of the kernel's struct %s",
          Label(map), member, e.name, plan.type_name));
    }
    plan.slots.push_back({e.name, member, km->index});
  }
  return plan;
}

absl::StatusOr<std::vector<uint8_t>> BuildStructOpsValue(
    const CollectionSpec& spec, const MapSpec& map, const StructOpsPlan& plan, const Btf& kernel,
    const std::map<std::string, Program>& programs) {
  TETHER_ASSIGN_OR_RETURN(const BtfType* type, ObjectStruct(spec, map));
  const Btf& btf = *spec.btf;
  std::vector<uint8_t> value(plan.value_size, 0);
  for (const BtfMember& om : btf.Members(*type)) {
    std::string name(btf.String(om.name_off));
    uint32_t off = om.bit_offset / 8;
    auto km = FindKernelMember(kernel, plan.kernel_type_id, name);
    if (IsFuncPointer(btf, om.type)) {
      for (const StructOpsProgramSlot& slot : plan.slots) {
        if (slot.member != name) continue;
        auto prog = programs.find(slot.program);
        if (prog == programs.end()) {
          return absl::NotFoundError(absl::StrFormat("%s: program '%s' was not loaded",
                                                     Label(map), slot.program));
        }
        // The kernel reads a program fd where the pointer will be.
        uint64_t fd = static_cast<uint64_t>(prog->second.fd());
        memcpy(value.data() + plan.data_offset + km->offset, &fd, sizeof(fd));
      }
      continue;
    }
    if (om.bitfield_size != 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: member '%s' is a bitfield, which is not copied", Label(map), name));
    }
    TETHER_ASSIGN_OR_RETURN(uint64_t size, btf.SizeOf(om.type));
    if (uint64_t{off} + size > map.contents.size()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: member '%s' lies outside the variable", Label(map), name));
    }
    const uint8_t* bytes = map.contents.data() + off;
    bool set = false;
    for (uint64_t i = 0; i < size; ++i) set = set || bytes[i] != 0;
    if (!km || km->is_func) {
      if (!set) continue;
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: member '%s' is set (non-zero) in the object, but the kernel's struct %s has no "
          "such %s",
          Label(map), name, plan.type_name, km ? "data member" : "member"));
    }
    TETHER_ASSIGN_OR_RETURN(uint64_t kernel_size, kernel.SizeOf(km->type));
    if (kernel_size != size) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: member '%s' is %u bytes in the object but %u in the kernel's struct %s",
          Label(map), name, size, kernel_size, plan.type_name));
    }
    memcpy(value.data() + plan.data_offset + km->offset, bytes, size);
  }
  return value;
}

absl::Status StructOpsLoader::Plan(const CollectionSpec& spec,
                                   const std::vector<const std::string*>& maps) {
  const Btf* kernel = nullptr;
  for (const std::string* map_name : maps) {
    const std::string& name = *map_name;
    const MapSpec& m = spec.maps.at(name);
    if (m.type != BPF_MAP_TYPE_STRUCT_OPS) continue;
    if (kernel == nullptr) {
      auto vmlinux = KernelBtf();
      if (!vmlinux.ok()) {
        return absl::Status(vmlinux.status().code(),
                            absl::StrCat(Label(m), ": ", vmlinux.status().message()));
      }
      kernel = *vmlinux;
    }
    TETHER_ASSIGN_OR_RETURN(StructOpsPlan plan, PlanStructOps(spec, m, *kernel));
    if (plan.link) {
      // Before 6.4 MAP_CREATE would only say EINVAL about the flag.
      absl::Status links = probe::HaveLinkKind(probe::LinkKind::kStructOps);
      if (absl::IsUnimplemented(links)) {
        return absl::UnimplementedError(absl::StrCat(
            Label(m), " is in .struct_ops.link, to be registered by a link: ", links.message()));
      }
    }
    plans_[name] = std::move(plan);
  }
  for (const auto& [name, plan] : plans_) {
    for (const StructOpsProgramSlot& slot : plan.slots) {
      auto [it, fresh] = by_program_.emplace(slot.program, &plan);
      if (!fresh && (it->second->kernel_type_id != plan.kernel_type_id ||
                     member_of_program_.at(slot.program) != slot.member_index)) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "program '%s' implements %s.%s in struct_ops map '%s' and another member in '%s'; "
            "a struct_ops program serves one member of one type",
            slot.program, plan.type_name, slot.member, name, it->second->map));
      }
      member_of_program_[slot.program] = slot.member_index;
    }
  }
  return absl::OkStatus();
}

void StructOpsLoader::AdjustMap(const std::string& map, MapOptions* o) const {
  auto it = plans_.find(map);
  if (it == plans_.end()) return;
  o->value_size = it->second.value_size;
  o->btf_vmlinux_value_type_id = it->second.value_type_id;
  // The value is described by the kernel's type, not the object's.
  o->btf_key_type_id = 0;
  o->btf_value_type_id = 0;
}

absl::Status StructOpsLoader::AdjustProgram(const std::string& program,
                                            ProgramLoadOptions* o) const {
  if (o->type != BPF_PROG_TYPE_STRUCT_OPS) return absl::OkStatus();
  auto it = by_program_.find(program);
  if (it == by_program_.end()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "struct_ops program '%s' is not used by any struct_ops map of this load, so the kernel "
        "cannot tell which member it implements",
        program));
  }
  o->attach_btf_id = it->second->kernel_type_id;
  o->expected_attach_type = member_of_program_.at(program);
  return absl::OkStatus();
}

absl::Status StructOpsLoader::Register(const CollectionSpec& spec,
                                       const std::map<std::string, Map>& maps,
                                       const std::map<std::string, Program>& programs,
                                       std::map<std::string, Link>* links) const {
  if (plans_.empty()) return absl::OkStatus();
  TETHER_ASSIGN_OR_RETURN(const Btf* kernel, KernelBtf());
  for (const auto& [name, plan] : plans_) {
    const MapSpec& m = spec.maps.at(name);
    const Map& map = maps.at(name);
    TETHER_ASSIGN_OR_RETURN(std::vector<uint8_t> value,
                            BuildStructOpsValue(spec, m, plan, *kernel, programs));
    uint32_t zero = 0;
    int ret = sys::MapUpdateElem(map.fd(), &zero, value.data(), BPF_ANY);
    if (ret < 0) {
      absl::Status st = sys::ErrnoStatus(
          -ret, absl::StrFormat("%s (%s, id %u)", Label(m), plan.type_name, map.id()),
          plan.link ? "setting its value (BPF_MAP_UPDATE_ELEM)" : "registering (BPF_MAP_UPDATE_ELEM)");
      if (ret == -EEXIST) {
        return absl::Status(st.code(), absl::StrCat(st.message(), " (the kernel already has a ",
                                                    plan.type_name, " of that name)"));
      }
      return st;
    }
    for (const StructOpsProgramSlot& slot : plan.slots) {
      GraphSetStructOpsMember(map.id(), slot.member_index, programs.at(slot.program).id());
    }
    if (!plan.link) {
      MarkStructOpsRegistered(map);
      continue;
    }
    if (link_only_ && !link_only_->count(name)) continue;
    TETHER_ASSIGN_OR_RETURN(Link link, AttachStructOps(map));
    links->emplace(name, std::move(link));
  }
  return absl::OkStatus();
}

}  // namespace tether::detail
