// USDT attach: a uprobe per site (with the semaphore's offset, so the
// kernel bumps it), and the argument specs in libbpf's usdt.bpf.h maps.
#include "tether/usdt.h"

#include <linux/bpf.h>

#include <cstring>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/mutex_internal.h"
#include "base/status_macros.h"
#include "sys/bpf.h"
#include "sys/perf_event_internal.h"
#include "tether/probe.h"

namespace tether {
namespace {

// struct __bpf_usdt_spec of <bpf/usdt.bpf.h>, byte for byte.
constexpr int kUsdtMaxArgs = 12;  // BPF_USDT_MAX_ARG_CNT
enum : uint32_t { kArgConst = 0, kArgReg = 1, kArgRegDeref = 2 };
struct BpfUsdtArgSpec {
  uint64_t val_off;
  uint32_t arg_type;
  int16_t reg_off;
  bool arg_signed;
  int8_t arg_bitshift;
};
struct BpfUsdtSpec {
  BpfUsdtArgSpec args[kUsdtMaxArgs];
  uint64_t usdt_cookie;
  int16_t arg_cnt;
};
static_assert(sizeof(BpfUsdtArgSpec) == 16, "usdt.bpf.h layout");
static_assert(sizeof(BpfUsdtSpec) == 208, "usdt.bpf.h layout");

// The kernel keeps 15 bytes of a map's name: "__bpf_usdt_specs" loses its s.
constexpr char kSpecsMapName[] = "__bpf_usdt_spec";

std::string ProgLabel(const Program& p) {
  return absl::StrFormat("program '%s' (id %u)", p.name(), p.id());
}

// Spec ids in use, per spec map (by id): attachments of programs that share
// the map (usdt.bpf.h's maps are __weak, so one per object) must not
// overwrite each other's specs.
detail::Mutex g_spec_ids_mu;
std::map<uint32_t, std::set<int>>& SpecIdsInUse() {
  static auto* in_use = new std::map<uint32_t, std::set<int>>();
  return *in_use;
}

absl::StatusOr<Map> FindSpecsMap(const Program& program) {
  for (uint32_t id : program.info().map_ids) {
    auto map = Map::FromId(id);
    if (!map.ok() || map->name() != kSpecsMapName) continue;
    if (map->type() != BPF_MAP_TYPE_ARRAY || map->key_size() != 4 ||
        map->value_size() != sizeof(BpfUsdtSpec)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: map '%s' (id %u) is not usdt.bpf.h's spec map (an array of 4-byte keys and %u-byte "
          "values)",
          ProgLabel(program), map->name(), map->id(), sizeof(BpfUsdtSpec)));
    }
    return std::move(*map);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      ProgLabel(program), " uses no '__bpf_usdt_specs' map: write the program with <bpf/usdt.bpf.h> "
                          "(BPF_USDT, bpf_usdt_arg)"));
}

BpfUsdtSpec BuildSpec(const UsdtNote& note, uint64_t cookie) {
  BpfUsdtSpec spec;
  memset(&spec, 0, sizeof(spec));
  spec.usdt_cookie = cookie;
  spec.arg_cnt = static_cast<int16_t>(note.parsed_args.size());
  for (size_t i = 0; i < note.parsed_args.size(); ++i) {
    const UsdtArg& a = note.parsed_args[i];
    BpfUsdtArgSpec& s = spec.args[i];
    switch (a.kind) {
      case UsdtArg::Kind::kConstant: s.arg_type = kArgConst; break;
      case UsdtArg::Kind::kRegister: s.arg_type = kArgReg; break;
      case UsdtArg::Kind::kMemory: s.arg_type = kArgRegDeref; break;
    }
    s.val_off = static_cast<uint64_t>(a.value);
    s.reg_off = a.pt_regs_offset;
    s.arg_signed = a.is_signed;
    // The BPF side reads 8 bytes and shifts away what the argument lacks.
    s.arg_bitshift = static_cast<int8_t>(64 - 8 * a.size);
  }
  return spec;
}

// A uprobe on one site whose BPF cookie is `spec_id`.
absl::StatusOr<Link> AttachSite(const Program& program, const std::string& binary,
                                const UsdtNote& site, int pid, uint64_t spec_id) {
  std::string hook = absl::StrFormat("usdt %s:%s:%s at 0x%x", binary, site.provider, site.name,
                                     site.file_offset);
  auto event = detail::OpenUprobeEvent(binary, site.file_offset, false, pid, site.semaphore_offset);
  if (!event.ok()) {
    return absl::Status(event.status().code(),
                        absl::StrCat(ProgLabel(program), " on ", hook, ": ", event.status().message()));
  }
  sys::LinkCreateRequest req;
  req.prog_fd = program.fd();
  req.target_fd = event->get();
  req.attach_type = BPF_PERF_EVENT;
  req.extra = &spec_id;  // link_create.perf_event.bpf_cookie (5.15)
  req.extra_size = sizeof(spec_id);
  auto fd = sys::LinkCreate(req);
  if (!fd.ok()) {
    return sys::ErrnoStatus(sys::StatusErrno(fd.status()), absl::StrCat(ProgLabel(program), " on ", hook),
                            "BPF_LINK_CREATE");
  }
  return Link::FromFd(fd->Release(), hook);
}

}  // namespace

struct UsdtAttachment::SpecIds {
  uint32_t map_id = 0;
  std::vector<int> ids;
  ~SpecIds() {
    detail::MutexLock lock(&g_spec_ids_mu);
    auto it = SpecIdsInUse().find(map_id);
    if (it == SpecIdsInUse().end()) return;
    for (int id : ids) it->second.erase(id);
    if (it->second.empty()) SpecIdsInUse().erase(it);
  }
  // The lowest free id below `limit`, taken; -1 when all are in use.
  int Take(uint32_t limit) {
    detail::MutexLock lock(&g_spec_ids_mu);
    std::set<int>& used = SpecIdsInUse()[map_id];
    for (uint32_t i = 0; i < limit; ++i) {
      if (used.insert(static_cast<int>(i)).second) {
        ids.push_back(static_cast<int>(i));
        return static_cast<int>(i);
      }
    }
    return -1;
  }
};

UsdtAttachment::~UsdtAttachment() { Detach(); }

UsdtAttachment::UsdtAttachment() = default;
UsdtAttachment::UsdtAttachment(UsdtAttachment&&) noexcept = default;

UsdtAttachment& UsdtAttachment::operator=(UsdtAttachment&& other) noexcept {
  if (this != &other) {
    Detach();  // in its order: our uprobes go before our spec ids
    links_ = std::move(other.links_);
    sites_ = std::move(other.sites_);
    spec_ids_ = std::move(other.spec_ids_);
  }
  return *this;
}

void UsdtAttachment::Detach() {
  // Links first: no uprobe may fire with a spec id that is free again.
  links_.clear();
  sites_.clear();
  spec_ids_.reset();
}

absl::StatusOr<UsdtAttachment> AttachUsdt(const Program& program, const std::string& binary,
                                          const std::string& provider, const std::string& name,
                                          int pid, uint64_t cookie) {
  std::string what = absl::StrCat("usdt ", binary, ":", provider, ":", name);
  if (!program) return absl::InvalidArgumentError(absl::StrCat(what, ": the program handle is empty"));
  if (absl::Status have = probe::HaveLinkKind(probe::LinkKind::kUprobe); absl::IsUnimplemented(have)) {
    return absl::UnimplementedError(absl::StrCat(ProgLabel(program), " on ", what,
                                                 ": USDT needs uprobe links with BPF cookies: ",
                                                 have.message()));
  }
  TETHER_ASSIGN_OR_RETURN(Map specs, FindSpecsMap(program));
  auto notes = ReadUsdtNotes(binary);
  if (!notes.ok()) {
    return absl::Status(notes.status().code(),
                        absl::StrCat(ProgLabel(program), " on ", what, ": ", notes.status().message()));
  }
  UsdtAttachment out;
  out.spec_ids_ = std::make_unique<UsdtAttachment::SpecIds>();
  out.spec_ids_->map_id = specs.id();
  std::map<std::string, int> spec_by_args;  // sites with the same layout share a spec
  for (UsdtNote& note : *notes) {
    if (note.provider != provider || note.name != name) continue;
    if (!note.args_error.empty()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s on %s: note %u of .note.stapsdt (site at 0x%x, args '%s'): %s", ProgLabel(program), what,
          note.index, note.file_offset, note.args, note.args_error));
    }
    if (note.parsed_args.size() > kUsdtMaxArgs) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s on %s: the site at 0x%x has %u arguments; usdt.bpf.h reads at most %d",
          ProgLabel(program), what, note.file_offset, note.parsed_args.size(), kUsdtMaxArgs));
    }
    auto known = spec_by_args.find(note.args);
    int spec_id = known != spec_by_args.end() ? known->second : out.spec_ids_->Take(specs.max_entries());
    if (spec_id < 0) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "%s on %s: all %u entries of map '%s' (id %u) hold specs of other USDT attachments "
          "(raise BPF_USDT_MAX_SPEC_CNT)",
          ProgLabel(program), what, specs.max_entries(), specs.name(), specs.id()));
    }
    if (known == spec_by_args.end()) {
      spec_by_args.emplace(note.args, spec_id);
      BpfUsdtSpec spec = BuildSpec(note, cookie);
      absl::Status st = specs.Update(spec_id, spec);
      if (!st.ok()) return base::Annotate(st, absl::StrCat(ProgLabel(program), " on ", what));
    }
    // A failure drops the links made so far with `out`: all or nothing.
    TETHER_ASSIGN_OR_RETURN(Link link, AttachSite(program, binary, note, pid,
                                                  static_cast<uint64_t>(spec_id)));
    out.links_.push_back(std::move(link));
    out.sites_.push_back(std::move(note));
  }
  if (out.links_.empty()) {
    return absl::NotFoundError(absl::StrCat(ProgLabel(program), " on ", what, ": ", binary,
                                            " has no USDT probe ", provider, ":", name));
  }
  return out;
}

}  // namespace tether
