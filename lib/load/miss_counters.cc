// Tail-call miss counters (docs/lifecycle.md, "Tail-call miss counters").
//
// After a bpf_tail_call that hits, execution never comes back; only a miss
// falls through to the next instruction. So a counter placed right after
// the call counts exactly the misses and costs the hit path nothing. The
// counter code touches only R1 and R2, which the call clobbered (the
// verifier refuses any read of R1-R5 after a helper call), so R0 and the
// callee-saved R6-R9 keep their values.
#include "load/miss_counters.h"

#include <linux/bpf.h>

#include <algorithm>
#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/printable.h"
#include "base/status_macros.h"
#include "btf/btf_writer.h"
#include "sys/bpf.h"

namespace tether::detail {
namespace {

bool IsLdImm64(const bpf_insn& in) { return in.code == (BPF_LD | BPF_IMM | BPF_DW); }

bool IsTailCall(const bpf_insn& in) {
  return in.code == (BPF_JMP | BPF_CALL) && in.src_reg == 0 && in.imm == BPF_FUNC_tail_call;
}

// A jump whose `off` (or, for the 32-bit-class `gotol`, `imm`) is relative
// to the next instruction. Calls and exits are not jumps.
bool IsJump(const bpf_insn& in) {
  uint8_t cls = BPF_CLASS(in.code);
  if (cls != BPF_JMP && cls != BPF_JMP32) return false;
  uint8_t op = BPF_OP(in.code);
  return op != BPF_CALL && op != BPF_EXIT;
}
bool JumpUsesImm(const bpf_insn& in) {
  return BPF_CLASS(in.code) == BPF_JMP32 && BPF_OP(in.code) == BPF_JA;
}

// --- site table names ------------------------------------------------------------
//
// A BTF member name must be a C identifier, and names in the object are
// untrusted. Each text field is escaped: letters and digits stay, '_'
// becomes "__", any other byte "_XX" (two upper-case hex digits); fields
// are separated by "_z", which no escape produces.
// The kernel takes identifiers shorter than KSYM_NAME_LEN, 128 before 6.1:
// the file gets what the other fields leave of 127 bytes.
constexpr size_t kProgramBudget = 24, kFunctionBudget = 20, kArrayBudget = 20, kNameLimit = 127;

// Writes escaped `text`, at most `budget` bytes of it, at `dst` (room for
// `budget` bytes); returns how many it wrote.
size_t EscapeInto(char* dst, absl::string_view text, size_t budget) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  size_t used = 0;
  for (unsigned char c : text) {
    if (absl::ascii_isalnum(c)) {
      if (used + 1 > budget) break;
      dst[used++] = static_cast<char>(c);
    } else if (c == '_') {
      if (used + 2 > budget) break;
      dst[used++] = '_';
      dst[used++] = '_';
    } else {
      if (used + 3 > budget) break;
      dst[used++] = '_';
      dst[used++] = kHex[c >> 4];
      dst[used++] = kHex[c & 15];
    }
  }
  return used;
}

absl::string_view BaseName(absl::string_view path) {
  size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? path : path.substr(slash + 1);
}

// Which function of the layout holds instruction `at`.
const std::string& FunctionAt(const LinkedProgram& lp, uint32_t at) {
  const std::string* name = &lp.name;
  uint32_t best = 0;
  for (const auto& [fn, start] : lp.layout) {
    if (start <= at && start >= best) {
      best = start;
      name = &fn;
    }
  }
  return *name;
}

// The source line of instruction `at`: the last line_info record at or
// before it.
void SourceOf(const LinkedProgram& lp, const Btf* btf, uint32_t at, TailCallSite* site) {
  const LineInfo* best = nullptr;
  for (const LineInfo& li : lp.line_info) {
    if (li.insn_off <= at && (best == nullptr || li.insn_off >= best->insn_off)) best = &li;
  }
  if (best == nullptr || btf == nullptr) return;
  site->line = best->line_col >> 10;
  absl::string_view file = BaseName(btf->String(best->file_name_off));
  site->file.assign(file.data(), file.size());
}

// What InsertMissCounters needs from one pass over the program.
// Inline vectors: a program's few calls and jumps need no allocation.
struct ProgramScan {
  absl::InlinedVector<uint32_t, 8> calls;      // the bpf_tail_calls, in order
  absl::InlinedVector<uint32_t, 32> relative;  // every instruction Retarget may have to move
  absl::InlinedVector<uint32_t, 32> targets;   // jump targets (block starts), unsorted
};

// A bpf-to-bpf call, a callback's ld_imm64 or a jump: an offset relative
// to the next instruction.
bool IsRelative(const bpf_insn& in) {
  return (in.code == (BPF_JMP | BPF_CALL) && in.src_reg == BPF_PSEUDO_CALL) ||
         (IsLdImm64(in) && in.src_reg == BPF_PSEUDO_FUNC) || IsJump(in);
}

// Most instructions are neither jumps nor calls nor ld_imm64: their class
// alone rules them out, so that is looked at first.
ProgramScan Scan(const LinkedProgram& lp) {
  ProgramScan scan;
  const uint32_t n = static_cast<uint32_t>(lp.insns.size());
  for (uint32_t i = 0; i < n; ++i) {
    const bpf_insn& in = lp.insns[i];
    const uint8_t cls = BPF_CLASS(in.code);
    if (cls == BPF_LD) {
      if (!IsLdImm64(in)) continue;
      if (in.src_reg == BPF_PSEUDO_FUNC) scan.relative.push_back(i);
      // Its second half is no instruction of its own, except to Retarget,
      // which looks at every slot as the rewrite always did.
      if (i + 1 < n && IsRelative(lp.insns[i + 1])) scan.relative.push_back(i + 1);
      ++i;
      continue;
    }
    if (cls != BPF_JMP && cls != BPF_JMP32) continue;
    const uint8_t op = BPF_OP(in.code);
    if (op == BPF_EXIT) continue;
    if (op == BPF_CALL) {
      if (in.code != (BPF_JMP | BPF_CALL)) continue;  // no JMP32 call exists
      if (in.src_reg == BPF_PSEUDO_CALL) {
        scan.relative.push_back(i);
      } else if (IsTailCall(in)) {
        scan.calls.push_back(i);
      }
      continue;
    }
    scan.relative.push_back(i);
    int64_t target = int64_t{i} + 1 + (JumpUsesImm(in) ? in.imm : in.off);
    if (target >= 0 && target < n) scan.targets.push_back(static_cast<uint32_t>(target));
  }
  return scan;
}

// The map each call site's R2 holds (one entry per element of scan.calls,
// null when unknown), followed forward through straight-line code: a block
// start (a function start or a jump target) may be reached with other
// values, so it forgets all. Hence only the code from the last block start
// before a call up to the call matters, and only that is walked: no table
// over the whole program, no walk of code no call depends on.
absl::InlinedVector<const std::string*, 8> ArraysAtTailCalls(const LinkedProgram& lp,
                                                             const ProgramScan& scan) {
  const auto& calls = scan.calls;
  const uint32_t n = static_cast<uint32_t>(lp.insns.size());
  absl::InlinedVector<const std::string*, 8> out(calls.size(), nullptr);
  for (size_t k = 0; k < calls.size(); ++k) {
    const uint32_t call = calls[k];
    uint32_t from = 0;
    for (const auto& [fn, start] : lp.layout)
      if (start <= call && start > from && start < n) from = start;
    for (uint32_t t : scan.targets)
      if (t <= call && t > from) from = t;
    const std::string* reg[MAX_BPF_REG] = {nullptr};
    for (uint32_t i = from; i < call; ++i) {
      const bpf_insn& in = lp.insns[i];
      if (in.dst_reg >= MAX_BPF_REG || in.src_reg >= MAX_BPF_REG) continue;
      uint8_t cls = BPF_CLASS(in.code);
      if (IsLdImm64(in)) {
        const std::string* map = nullptr;  // a kMapFd fixup's map at this ld_imm64
        for (const Fixup& f : lp.fixups)
          if (f.insn == i && f.kind == Fixup::Kind::kMapFd) map = &f.name;
        reg[in.dst_reg] = map;
        ++i;
      } else if (in.code == (BPF_ALU64 | BPF_MOV | BPF_X) && in.off == 0) {
        reg[in.dst_reg] = reg[in.src_reg];
      } else if (in.code == (BPF_JMP | BPF_CALL)) {
        for (int r = BPF_REG_0; r <= BPF_REG_5; ++r) reg[r] = nullptr;
      } else if (cls == BPF_ALU || cls == BPF_ALU64 || cls == BPF_LDX || cls == BPF_LD) {
        reg[in.dst_reg] = nullptr;
      } else if (cls == BPF_STX && BPF_MODE(in.code) == BPF_ATOMIC && (in.imm & BPF_FETCH)) {
        reg[in.src_reg] = nullptr;
        reg[BPF_REG_0] = nullptr;  // cmpxchg
      }
    }
    if (lp.insns[call].dst_reg < MAX_BPF_REG && lp.insns[call].src_reg < MAX_BPF_REG) {
      out[k] = reg[BPF_REG_2];
    }
  }
  return out;
}

// `lock *(u64 *)(counter map value + 8 * slot) += 1`, using R1 and R2,
// written at `at`[0..kCounterInsns).
void WriteCounter(bpf_insn* at, uint32_t slot) {
  bpf_insn ld{};
  ld.code = BPF_LD | BPF_IMM | BPF_DW;
  ld.dst_reg = BPF_REG_1;
  ld.src_reg = BPF_PSEUDO_MAP_VALUE;
  bpf_insn ld_hi{};
  ld_hi.imm = static_cast<int32_t>(slot * 8);
  bpf_insn one{};
  one.code = BPF_ALU64 | BPF_MOV | BPF_K;
  one.dst_reg = BPF_REG_2;
  one.imm = 1;
  bpf_insn add{};
  add.code = BPF_STX | BPF_ATOMIC | BPF_DW;
  add.dst_reg = BPF_REG_1;
  add.src_reg = BPF_REG_2;
  add.imm = BPF_ADD;
  at[0] = ld;
  at[1] = ld_hi;
  at[2] = one;
  at[3] = add;
}

// Rewrites the relative offset of the instruction that sat at `old_at`
// (now at `new_at`) so that it reaches the same instruction as before.
template <typename NewPos>
absl::Status Retarget(bpf_insn& in, uint32_t old_at, uint32_t new_at, const NewPos& new_pos,
                      const std::string& program) {
  bool call = in.code == (BPF_JMP | BPF_CALL) && in.src_reg == BPF_PSEUDO_CALL;
  bool func = IsLdImm64(in) && in.src_reg == BPF_PSEUDO_FUNC;
  bool jump = IsJump(in);
  if (!call && !func && !jump) return absl::OkStatus();
  bool imm = call || func || JumpUsesImm(in);
  int64_t target = int64_t{old_at} + 1 + (imm ? in.imm : in.off);
  if (target < 0) return absl::OkStatus();  // the verifier refuses it as it was
  int64_t rel = int64_t{new_pos(static_cast<uint32_t>(target))} - new_at - 1;
  if (imm) {
    in.imm = static_cast<int32_t>(rel);
  } else if (rel < INT16_MIN || rel > INT16_MAX) {
    return absl::OutOfRangeError(absl::StrFormat(
        "program '%s': tail-call miss counters: the jump at insn %u no longer fits a 16-bit "
        "offset; load with CollectionOptions::count_tail_call_misses = false",
        base::Printable(program), old_at));
  } else {
    in.off = static_cast<int16_t>(rel);
  }
  return absl::OkStatus();
}

}  // namespace

namespace {

// EncodeSiteName, appended to `out` (the site table's string section).
// Built in a buffer on the stack, bounded by the budgets (the fields before
// the file take at most 100 bytes, the file what is left of kNameLimit),
// then appended at once: no string per site or per character.
void AppendSiteName(std::string* out, const TailCallSite& site) {
  static_assert(4 + 2 * 6 + kProgramBudget + kFunctionBudget + 10 + 10 + kArrayBudget <= kNameLimit,
                "the fields before the file fit the name buffer");
  char name[kNameLimit + 1];
  size_t len = 0;
  auto sep = [&] {
    name[len++] = '_';
    name[len++] = 'z';
  };
  auto field = [&](absl::string_view text, size_t budget) {
    sep();
    len += EscapeInto(name + len, text, budget);
  };
  memcpy(name, "site", 4);
  len = 4;
  field(site.program, kProgramBudget);
  field(site.function, kFunctionBudget);
  field(absl::AlphaNum(site.insn).Piece(), 10);
  field(absl::AlphaNum(site.line).Piece(), 10);
  field(site.array, kArrayBudget);
  sep();
  len += EscapeInto(name + len, site.file, len < kNameLimit ? kNameLimit - len : 0);
  out->append(name, len);
}

}  // namespace

std::string EncodeSiteName(const TailCallSite& site) {
  std::string out;
  AppendSiteName(&out, site);
  return out;
}

absl::StatusOr<TailCallSite> DecodeSiteName(absl::string_view name) {
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("tail-call site table: '", base::Printable(name), "' is not a site name"));
  };
  if (name.substr(0, 4) != "site") return bad();
  std::vector<std::string> fields;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 4; i < name.size();) {
    char c = name[i];
    if (c != '_') {
      if (fields.empty()) return bad();
      fields.back().push_back(c);
      ++i;
      continue;
    }
    if (i + 1 >= name.size()) return bad();
    char next = name[i + 1];
    if (next == 'z') {
      fields.emplace_back();
      i += 2;
    } else if (next == '_' && !fields.empty()) {
      fields.back().push_back('_');
      i += 2;
    } else if (i + 2 < name.size() && hex(next) >= 0 && hex(name[i + 2]) >= 0 && !fields.empty()) {
      fields.back().push_back(static_cast<char>(hex(next) * 16 + hex(name[i + 2])));
      i += 3;
    } else {
      return bad();
    }
  }
  TailCallSite site;
  if (fields.size() != 6 || !absl::SimpleAtoi(fields[2], &site.insn) ||
      !absl::SimpleAtoi(fields[3], &site.line)) {
    return bad();
  }
  site.program = fields[0];
  site.function = fields[1];
  site.array = fields[4];
  site.file = fields[5];
  return site;
}

absl::Status InsertMissCounters(const std::string& program, LinkedProgram& lp, const Btf* btf,
                                std::vector<TailCallSite>* sites) {
  ProgramScan scan = Scan(lp);
  const auto& calls = scan.calls;
  if (calls.empty()) return absl::OkStatus();
  if (sites->size() + calls.size() > kMaxMissSites) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "program '%s': tail-call miss counters: more than %u bpf_tail_call sites in the "
        "collection; load with CollectionOptions::count_tail_call_misses = false",
        base::Printable(program), kMaxMissSites));
  }
  // An instruction at old index x moves down by the counters of the calls
  // before it: a jump to the instruction after a call lands after that
  // call's counter, so it does not count a miss.
  // (A program has a few calls: counting them beats a binary search.)
  const uint32_t* const call_at = calls.data();
  const size_t call_count = calls.size();
  auto new_pos = [call_at, call_count](uint32_t x) {
    size_t before = 0;
    if (call_count <= 8) {
      while (before < call_count && call_at[before] < x) ++before;
    } else {
      before = std::lower_bound(call_at, call_at + call_count, x) - call_at;
    }
    return static_cast<uint32_t>(x + kCounterInsns * before);
  };
  // The code between calls moves in blocks; only the instructions with a
  // relative offset are looked at one by one. Retargeted before anything
  // else changes, so a failure leaves lp and sites as they were.
  const uint32_t n = static_cast<uint32_t>(lp.insns.size());
  std::vector<bpf_insn> out;
  out.reserve(n + kCounterInsns * calls.size());
  uint32_t from = 0;
  for (size_t k = 0; k <= calls.size(); ++k) {
    uint32_t end = k < calls.size() ? calls[k] + 1 : n;  // the call itself comes along
    out.insert(out.end(), lp.insns.begin() + from, lp.insns.begin() + end);
    if (k < calls.size()) out.resize(out.size() + kCounterInsns);  // WriteCounter fills it
    from = end;
  }
  for (uint32_t r : scan.relative) {
    uint32_t at = new_pos(r);
    absl::Status st = Retarget(out[at], r, at, new_pos, program);
    if (!st.ok()) return st;
  }
  // Room for the counters' fixups first: `arrays` points at names in lp.fixups.
  const size_t old_fixups = lp.fixups.size();
  lp.fixups.reserve(old_fixups + calls.size());
  auto arrays = ArraysAtTailCalls(lp, scan);
  for (size_t k = 0; k < calls.size(); ++k) {
    uint32_t at = new_pos(calls[k]);
    TailCallSite& site = sites->emplace_back();
    site.program = program;
    site.function = FunctionAt(lp, calls[k]);
    site.insn = at;
    SourceOf(lp, btf, calls[k], &site);
    if (arrays[k] != nullptr) site.array = *arrays[k];
    site.index = static_cast<uint32_t>(sites->size() - 1);
    WriteCounter(&out[at + 1], site.index);
    Fixup fx;
    fx.insn = at + 1;
    fx.kind = Fixup::Kind::kMapValue;
    fx.name = kMissCounterKey;
    fx.offset = site.index * 8;
    lp.fixups.push_back(std::move(fx));
  }
  lp.insns = std::move(out);
  for (FuncInfo& fi : lp.func_info) fi.insn_off = new_pos(fi.insn_off);
  for (LineInfo& li : lp.line_info) li.insn_off = new_pos(li.insn_off);
  for (CoreRelo& cr : lp.core_relos) cr.insn_off = new_pos(cr.insn_off);
  // The counters' own fixups, appended above, already have their places.
  for (size_t f = 0; f < old_fixups; ++f) lp.fixups[f].insn = new_pos(lp.fixups[f].insn);
  for (auto& [fn, start] : lp.layout) start = new_pos(start);
  return absl::OkStatus();
}

// --- the counter map -------------------------------------------------------------

namespace {

// u32 key, u64 counters, and the value: a struct with one u64 member per
// site, named after it (EncodeSiteName), at byte offset 8 * site.
std::vector<uint8_t> SiteTableBtf(const std::vector<TailCallSite>& sites) {
  std::vector<uint8_t> types;
  types.reserve(12 * (3 + sites.size()) + 4 * 4);
  std::string strings(1, '\0');
  strings.reserve(64 + sites.size() * 96);
  auto str = [&strings](absl::string_view s) {
    uint32_t off = static_cast<uint32_t>(strings.size());
    strings.append(s.data(), s.size());
    strings.push_back('\0');
    return off;
  };
  auto word = [&types](uint32_t w) { btf::AppendWord(&types, w); };
  // [1] the key, [2] a counter, [3] the value.
  word(str("unsigned int"));
  word(btf::TypeInfo(BtfKind::kInt, false, 0));
  word(4);
  word(32);
  word(str("unsigned long long"));
  word(btf::TypeInfo(BtfKind::kInt, false, 0));
  word(8);
  word(64);
  word(str(kMissCounterTypeName));
  word(btf::TypeInfo(BtfKind::kStruct, false, static_cast<uint32_t>(sites.size())));
  word(static_cast<uint32_t>(sites.size() * 8));
  for (size_t i = 0; i < sites.size(); ++i) {
    // Each name straight into the string section: no string per site.
    word(static_cast<uint32_t>(strings.size()));
    AppendSiteName(&strings, sites[i]);
    strings.push_back('\0');
    word(2);
    word(static_cast<uint32_t>(i * 64));
  }
  return btf::AssembleBlob(types, strings);
}

}  // namespace

absl::StatusOr<Map> CreateMissCounterMap(const std::vector<TailCallSite>& sites,
                                         LifetimePolicy policy) {
  MapOptions o;
  o.type = BPF_MAP_TYPE_ARRAY;
  o.key_size = 4;
  o.value_size = static_cast<uint32_t>(sites.size() * 8);
  o.max_entries = 1;
  o.name = kMissCounterMapName;
  o.lifetime_policy = policy;
  auto btf = sys::BtfLoad(SiteTableBtf(sites));
  if (btf.ok()) {
    o.btf_fd = btf->fd.get();
    o.btf_key_type_id = 1;
    o.btf_value_type_id = 3;
    auto with_btf = Map::Create(o);
    if (with_btf.ok()) return with_btf;
    int err = sys::StatusErrno(with_btf.status());
    if (err == ENOMEM || err == EMFILE || err == ENFILE || err == EPERM) return with_btf.status();
  }
  // Without BTF the counters still count; only readers outside this
  // process cannot find the site table.
  o.btf_fd = -1;
  o.btf_key_type_id = o.btf_value_type_id = 0;
  return Map::Create(o);
}

namespace {

// The site table of counter map `info`, from its BTF.
absl::StatusOr<std::vector<TailCallSite>> SiteTable(const bpf_map_info& info) {
  std::string what = absl::StrFormat("tail-call counter map (id %u)", info.id);
  if (info.btf_id == 0 || info.btf_value_type_id == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": it has no BTF, so its site table is unknown"));
  }
  auto fd = sys::GetFdById(sys::ObjectKind::kBtf, info.btf_id);
  if (!fd.ok()) return base::Annotate(fd.status(), what);
  std::vector<uint8_t> data;
  auto btf_info = sys::GetBtfInfo(fd->get(), &data);
  if (!btf_info.ok()) return base::Annotate(btf_info.status(), what);
  auto btf = Btf::Parse(data, what);
  if (!btf.ok()) return btf.status();
  const BtfType* t = btf->TypeById(info.btf_value_type_id);
  if (t == nullptr || t->kind != BtfKind::kStruct || btf->Name(*t) != kMissCounterTypeName) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": its value type is not ", kMissCounterTypeName));
  }
  std::vector<TailCallSite> sites;
  for (const BtfMember& m : btf->Members(*t)) {
    if (m.bit_offset % 64 != 0 || m.bitfield_size != 0) continue;
    uint64_t index = m.bit_offset / 64;
    if ((index + 1) * 8 > info.value_size) continue;  // hostile: past the value
    auto site = DecodeSiteName(btf->String(m.name_off));
    if (!site.ok()) continue;
    site->index = static_cast<uint32_t>(index);
    sites.push_back(*std::move(site));
  }
  return sites;
}

}  // namespace

absl::StatusOr<std::vector<TailCallSite>> ReadMissCounterMap(int map_fd) {
  auto info = sys::GetMapInfo(map_fd);
  if (!info.ok()) return base::Annotate(info.status(), "tail-call counter map");
  auto sites = SiteTable(*info);
  if (!sites.ok()) return sites.status();
  if (info->type != BPF_MAP_TYPE_ARRAY || info->key_size != 4 || info->value_size % 8 != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "tail-call counter map (id %u): not an array of u64 counters", info->id));
  }
  std::vector<uint64_t> counts(info->value_size / 8);
  uint32_t zero = 0;
  int ret = sys::MapLookupElem(map_fd, &zero, counts.data(), 0);
  if (ret < 0) {
    return sys::ErrnoStatus(-ret, absl::StrFormat("tail-call counter map (id %u)", info->id),
                            "BPF_MAP_LOOKUP_ELEM");
  }
  for (TailCallSite& s : *sites) s.misses = counts[s.index];
  return sites;
}

namespace {

// A counter the loader inserted, found in translated code: the counter
// map's id and the slot. The pattern is exactly AppendCounter's.
// A dump shows the verifier's internal tail-call opcode as the helper call,
// with the helper id zeroed when raw dumps are not allowed (kptr_restrict).
bool IsDumpedTailCall(const bpf_insn& in) {
  return in.code == (BPF_JMP | BPF_CALL) && in.src_reg == 0 &&
         (in.imm == BPF_FUNC_tail_call || in.imm == 0);
}

struct CounterRef {
  uint32_t map_id;
  uint32_t slot;
  uint32_t array_id;  // the map in R2 at the tail call before it; 0 if unknown
};
std::vector<CounterRef> CountersIn(const std::vector<bpf_insn>& code) {
  std::vector<CounterRef> out;
  uint32_t reg_map[MAX_BPF_REG] = {0};
  uint32_t r2_at_call = 0;
  for (size_t i = 0; i < code.size(); ++i) {
    const bpf_insn& in = code[i];
    if (in.dst_reg >= MAX_BPF_REG || in.src_reg >= MAX_BPF_REG) continue;
    if (IsLdImm64(in) && in.src_reg == BPF_PSEUDO_MAP_VALUE && in.dst_reg == BPF_REG_1 &&
        i + 3 < code.size() && code[i + 2].code == (BPF_ALU64 | BPF_MOV | BPF_K) &&
        code[i + 2].dst_reg == BPF_REG_2 && code[i + 2].imm == 1 &&
        code[i + 3].code == (BPF_STX | BPF_ATOMIC | BPF_DW) && code[i + 3].imm == BPF_ADD &&
        code[i + 3].dst_reg == BPF_REG_1 && code[i + 3].src_reg == BPF_REG_2 &&
        code[i + 3].off == 0 && code[i + 1].imm >= 0 && code[i + 1].imm % 8 == 0 && i > 0 &&
        IsDumpedTailCall(code[i - 1])) {
      out.push_back({static_cast<uint32_t>(in.imm), static_cast<uint32_t>(code[i + 1].imm) / 8,
                     r2_at_call});
    }
    uint8_t cls = BPF_CLASS(in.code);
    if (IsLdImm64(in)) {
      reg_map[in.dst_reg] = in.src_reg == BPF_PSEUDO_MAP_FD ? static_cast<uint32_t>(in.imm) : 0;
      ++i;
    } else if (in.code == (BPF_ALU64 | BPF_MOV | BPF_X) && in.off == 0) {
      reg_map[in.dst_reg] = reg_map[in.src_reg];
    } else if (in.code == (BPF_JMP | BPF_CALL)) {
      r2_at_call = reg_map[BPF_REG_2];
      for (int r = BPF_REG_0; r <= BPF_REG_5; ++r) reg_map[r] = 0;
    } else if (cls == BPF_ALU || cls == BPF_ALU64 || cls == BPF_LDX || cls == BPF_LD) {
      reg_map[in.dst_reg] = 0;
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<TailCallSite>> ReadProgramMisses(int prog_fd) {
  auto info = sys::GetProgInfo(prog_fd);
  if (!info.ok()) return base::Annotate(info.status(), "tail-call misses");
  std::string what = absl::StrFormat("tail-call misses of program '%s' (id %u)",
                                     base::Printable(absl::string_view(
                                         info->name, strnlen(info->name, sizeof(info->name)))),
                                     info->id);
  auto code = sys::GetTranslatedCode(prog_fd, info->xlated_prog_len);
  if (!code.ok()) return base::Annotate(code.status(), what);
  std::vector<CounterRef> refs = CountersIn(*code);
  absl::flat_hash_map<uint32_t, std::vector<TailCallSite>> tables;  // counter map id -> sites
  std::vector<TailCallSite> out;
  for (const CounterRef& r : refs) {
    auto table = tables.find(r.map_id);
    if (table == tables.end()) {
      // A map the program writes through a map-value pointer is never a
      // program array, so opening it by id is safe (docs/repro/).
      auto fd = sys::GetFdById(sys::ObjectKind::kMap, r.map_id);
      if (!fd.ok()) return base::Annotate(fd.status(), what);
      auto map_info = sys::GetMapInfo(fd->get());
      if (!map_info.ok()) return base::Annotate(map_info.status(), what);
      absl::string_view name(map_info->name, strnlen(map_info->name, sizeof(map_info->name)));
      std::vector<TailCallSite> sites;
      if (name == kMissCounterMapName) {
        auto read = ReadMissCounterMap(fd->get());
        if (!read.ok()) return base::Annotate(read.status(), what);
        sites = *std::move(read);
      }
      table = tables.emplace(r.map_id, std::move(sites)).first;
    }
    for (const TailCallSite& s : table->second) {
      if (s.index != r.slot) continue;
      out.push_back(s);
      out.back().array_id = r.array_id;
    }
  }
  std::sort(out.begin(), out.end(),
            [](const TailCallSite& a, const TailCallSite& b) { return a.index < b.index; });
  return out;
}

}  // namespace tether::detail
