// CO-RE: the relocation rules on hand-made local and target BTF, the
// corpus objects that carry relocations, and programs that read the
// running kernel's task_struct through relocated offsets.
#include "tether/core.h"

#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <thread>

#include "btf/kernel_btf.h"
#include "sys/bpf.h"
#include "test_programs.h"
#include "test_support.h"
#include "tether/collection.h"
#include "tether/insn.h"

using namespace tether;

namespace {

// Builds BTF blobs type by type; ids are returned in order from 1.
class BtfBuilder {
 public:
  struct M {
    const char* name;
    uint32_t type;
    uint32_t bit_offset;
    uint32_t bitfield = 0;
  };
  struct E {
    const char* name;
    int64_t value;
  };

  uint32_t Str(const char* s) {
    if (s == nullptr || *s == 0) return 0;
    uint32_t off = static_cast<uint32_t>(strs_.size());
    strs_ += s;
    strs_.push_back('\0');
    return off;
  }
  uint32_t Int(const char* name, uint32_t size, bool is_signed = true) {
    return Add({Str(name), Info(1, 0), size, (is_signed ? 1u << 24 : 0u) | size * 8});
  }
  uint32_t Ptr(uint32_t to) { return Add({0, Info(2, 0), to}); }
  uint32_t Array(uint32_t elem, uint32_t n) {
    if (index_ == 0) index_ = Int("__index", 4, false);
    return Add({0, Info(3, 0), 0, elem, index_, n});
  }
  uint32_t Struct(const char* name, uint32_t size, std::vector<M> members, bool is_union = false) {
    bool kflag = false;
    for (const M& m : members) kflag |= m.bitfield != 0;
    std::vector<uint32_t> w = {Str(name), Info(is_union ? 5 : 4, members.size(), kflag), size};
    for (const M& m : members) {
      w.push_back(Str(m.name));
      w.push_back(m.type);
      w.push_back(kflag ? (m.bitfield << 24) | m.bit_offset : m.bit_offset);
    }
    return Add(w);
  }
  uint32_t Union(const char* name, uint32_t size, std::vector<M> members) {
    return Struct(name, size, std::move(members), true);
  }
  uint32_t Enum(const char* name, std::vector<E> values, uint32_t size = 4) {
    std::vector<uint32_t> w = {Str(name), Info(6, values.size()), size};
    for (const E& e : values) {
      w.push_back(Str(e.name));
      w.push_back(static_cast<uint32_t>(e.value));
    }
    return Add(w);
  }
  uint32_t Enum64(const char* name, std::vector<E> values) {
    std::vector<uint32_t> w = {Str(name), Info(19, values.size()), 8};
    for (const E& e : values) {
      w.push_back(Str(e.name));
      w.push_back(static_cast<uint32_t>(e.value));
      w.push_back(static_cast<uint32_t>(static_cast<uint64_t>(e.value) >> 32));
    }
    return Add(w);
  }
  uint32_t Fwd(const char* name, bool is_union = false) {
    return Add({Str(name), Info(7, 0, is_union), 0});
  }
  uint32_t Typedef(const char* name, uint32_t to) { return Add({Str(name), Info(8, 0), to}); }
  uint32_t Const(uint32_t to) { return Add({0, Info(10, 0), to}); }
  uint32_t FuncProto(uint32_t ret, std::vector<uint32_t> params) {
    std::vector<uint32_t> w = {0, Info(13, params.size()), ret};
    for (uint32_t p : params) {
      w.push_back(0);
      w.push_back(p);
    }
    return Add(w);
  }

  std::vector<uint8_t> Build() const {
    std::vector<uint8_t> out(24);
    uint32_t tl = static_cast<uint32_t>(words_.size() * 4);
    uint32_t hdr[6] = {0, 24, 0, tl, tl, static_cast<uint32_t>(strs_.size())};
    memcpy(out.data(), hdr, 24);
    out[0] = 0x9f;
    out[1] = 0xeb;
    out[2] = 1;
    out[3] = 0;
    size_t at = out.size();
    out.resize(at + tl);
    memcpy(out.data() + at, words_.data(), tl);
    out.insert(out.end(), strs_.begin(), strs_.end());
    return out;
  }
  Btf Parse() const {
    auto btf = Btf::Parse(Build(), "test BTF");
    INFO(btf.status().ToString());
    REQUIRE(btf.ok());
    return *std::move(btf);
  }

 private:
  static uint32_t Info(uint32_t kind, size_t vlen, bool kflag = false) {
    return kind << 24 | static_cast<uint32_t>(vlen) | (kflag ? 1u << 31 : 0);
  }
  uint32_t Add(std::vector<uint32_t> w) {
    words_.insert(words_.end(), w.begin(), w.end());
    return next_++;
  }
  std::vector<uint32_t> words_;
  std::string strs_ = std::string(1, '\0');
  uint32_t next_ = 1;
  uint32_t index_ = 0;
};

// A local BTF with the relocations' access strings in it.
struct Local {
  BtfBuilder b;
  absl::optional<Btf> btf;
  std::vector<std::pair<std::string, uint32_t>> access;
  uint32_t Access(const char* s) { return b.Str(s); }
  void Done() { btf = b.Parse(); }
};

CoreFixup Fix(const Btf& local, uint32_t type, uint32_t access_off, CoreReloKind kind,
              const Btf& target) {
  CoreTarget t(target);
  auto fx = ComputeCoreFixup(local, {0, type, access_off, kind}, t);
  INFO(fx.status().ToString());
  REQUIRE(fx.ok());
  return *fx;
}

absl::Status FixError(const Btf& local, uint32_t type, uint32_t access_off, CoreReloKind kind,
                      const Btf& target) {
  CoreTarget t(target);
  auto fx = ComputeCoreFixup(local, {0, type, access_off, kind}, t);
  REQUIRE_FALSE(fx.ok());
  return fx.status();
}

}  // namespace

TEST_CASE("essential names drop the last flavour only", "[core]") {
  CHECK(CoreEssentialName("task_struct") == "task_struct");
  CHECK(CoreEssentialName("task_struct___v1") == "task_struct");
  CHECK(CoreEssentialName("a___b___c") == "a___b");
  CHECK(CoreEssentialName("a____b") == "a____b");  // X___Y needs Y not '_'... and X not '_'
  CHECK(CoreEssentialName("___x") == "___x");
  CHECK(CoreEssentialName("x___") == "x___");
  CHECK(CoreEssentialName("") == "");
}

TEST_CASE("field relocations follow members to their target offsets", "[core]") {
  // Local: struct s { int a; unsigned b; char c[4]; long d; }
  Local l;
  uint32_t l_int = l.b.Int("int", 4);
  uint32_t l_uint = l.b.Int("unsigned int", 4, false);
  uint32_t l_char = l.b.Int("char", 1);
  uint32_t l_long = l.b.Int("long", 8);
  uint32_t l_arr = l.b.Array(l_char, 4);
  uint32_t l_s = l.b.Struct("s", 24, {{"a", l_int, 0}, {"b", l_uint, 32}, {"c", l_arr, 64},
                                      {"d", l_long, 128}});
  uint32_t a0_0 = l.Access("0:0"), a0_1 = l.Access("0:1"), a0_2_3 = l.Access("0:2:3"),
           a0_3 = l.Access("0:3"), a2_1 = l.Access("2:1");
  l.Done();
  // Target: struct s { long pad; unsigned long b; int a; char c[8]; int d; }
  BtfBuilder t;
  uint32_t t_int = t.Int("int", 4);
  uint32_t t_ulong = t.Int("unsigned long", 8, false);
  uint32_t t_long = t.Int("long", 8);
  uint32_t t_char = t.Int("char", 1);
  uint32_t t_arr = t.Array(t_char, 8);
  t.Struct("s", 40, {{"pad", t_long, 0}, {"b", t_ulong, 64}, {"a", t_int, 128},
                     {"c", t_arr, 160}, {"d", t_int, 256}});
  Btf target = t.Parse();
  const Btf& local = *l.btf;

  CoreFixup fx = Fix(local, l_s, a0_0, CoreReloKind::kFieldByteOffset, target);
  CHECK(fx.local_value == 0);
  CHECK(fx.target_value == 16);
  CHECK(fx.local_size == 4);
  CHECK(fx.target_size == 4);
  CHECK_FALSE(fx.poison);
  CHECK_THAT(fx.local_spec, Catch::Contains("struct s.a"));

  // unsigned int -> unsigned long: the load widens, which is safe.
  fx = Fix(local, l_s, a0_1, CoreReloKind::kFieldByteOffset, target);
  CHECK(fx.local_value == 4);
  CHECK(fx.target_value == 8);
  CHECK(fx.local_size == 4);
  CHECK(fx.target_size == 8);
  CHECK_FALSE(fx.size_change_unsafe);
  CHECK(Fix(local, l_s, a0_1, CoreReloKind::kFieldByteSize, target).target_value == 8);
  CHECK(Fix(local, l_s, a0_1, CoreReloKind::kFieldSigned, target).target_value == 0);
  CHECK(Fix(local, l_s, a0_0, CoreReloKind::kFieldSigned, target).target_value == 1);
  CHECK(Fix(local, l_s, a0_0, CoreReloKind::kFieldExists, target).target_value == 1);

  // An array element: c[3].
  fx = Fix(local, l_s, a0_2_3, CoreReloKind::kFieldByteOffset, target);
  CHECK(fx.local_value == 11);
  CHECK(fx.target_value == 23);
  CHECK(Fix(local, l_s, a0_2_3, CoreReloKind::kFieldByteSize, target).target_value == 1);

  // long -> int is a signed narrowing: refused for loads.
  fx = Fix(local, l_s, a0_3, CoreReloKind::kFieldByteOffset, target);
  CHECK(fx.target_value == 32);
  CHECK(fx.size_change_unsafe);

  // The root used as an array: &p[2].b.
  fx = Fix(local, l_s, a2_1, CoreReloKind::kFieldByteOffset, target);
  CHECK(fx.local_value == 2 * 24 + 4);
  CHECK(fx.target_value == 2 * 40 + 8);
}

TEST_CASE("fields inside anonymous members are found at any depth", "[core]") {
  Local l;
  uint32_t l_int = l.b.Int("int", 4);
  uint32_t l_s = l.b.Struct("s", 8, {{"a", l_int, 0}, {"b", l_int, 32}});
  uint32_t a0_1 = l.Access("0:1");
  l.Done();
  BtfBuilder t;
  uint32_t t_int = t.Int("int", 4);
  uint32_t inner = t.Union(nullptr, 4, {{"x", t_int, 0}, {"b", t_int, 0}});
  uint32_t mid = t.Struct(nullptr, 8, {{"y", t_int, 0}, {nullptr, inner, 32}});
  t.Struct("s", 16, {{"a", t_int, 0}, {nullptr, mid, 64}});
  Btf target = t.Parse();
  CoreFixup fx = Fix(*l.btf, l_s, a0_1, CoreReloKind::kFieldByteOffset, target);
  CHECK(fx.target_value == 12);
  CHECK_THAT(fx.target_spec, Catch::Contains("0:1:1:1"));
}

TEST_CASE("missing fields poison, existence reads 0, and incompatible fields do not match",
          "[core]") {
  Local l;
  uint32_t l_int = l.b.Int("int", 4);
  uint32_t l_s = l.b.Struct("s", 8, {{"a", l_int, 0}, {"gone", l_int, 32}});
  uint32_t l_nope = l.b.Struct("nope", 4, {{"a", l_int, 0}});
  uint32_t a0_0 = l.Access("0:0"), a0_1 = l.Access("0:1"), zero = l.Access("0");
  l.Done();
  BtfBuilder t;
  uint32_t t_int = t.Int("int", 4);
  uint32_t t_s2 = t.Struct("s2", 4, {{"q", t_int, 0}});
  // `a` is a struct in the target: not compatible with an int.
  t.Struct("s", 8, {{"a", t_s2, 0}});
  Btf target = t.Parse();
  for (uint32_t access : {a0_0, a0_1}) {
    CoreFixup fx = Fix(*l.btf, l_s, access, CoreReloKind::kFieldByteOffset, target);
    CHECK(fx.poison);
    CHECK_THAT(fx.poison_reason, Catch::Contains("struct s.") && Catch::Contains("not in the target"));
    CHECK(Fix(*l.btf, l_s, access, CoreReloKind::kFieldExists, target).target_value == 0);
    CHECK(Fix(*l.btf, l_s, access, CoreReloKind::kFieldExists, target).local_value == 1);
  }
  // A type the target lacks entirely: type relocations read 0 and do not poison.
  CoreFixup fx = Fix(*l.btf, l_nope, zero, CoreReloKind::kTypeExists, target);
  CHECK(fx.target_value == 0);
  CHECK_FALSE(fx.poison);
  CHECK(Fix(*l.btf, l_nope, a0_0, CoreReloKind::kFieldByteOffset, target).poison);
}

TEST_CASE("type relocations: exists, size, ids, matches", "[core]") {
  Local l;
  uint32_t l_int = l.b.Int("int", 4);
  uint32_t l_s = l.b.Struct("s", 4, {{"a", l_int, 0}});
  uint32_t l_td = l.b.Typedef("s_t", l_s);
  uint32_t l_missing = l.b.Struct("missing", 4, {{"a", l_int, 0}});
  uint32_t l_e = l.b.Enum("e", {{"A", 1}, {"B", 2}});
  uint32_t l_fp = l.b.FuncProto(l_int, {l_int});
  uint32_t l_fpt = l.b.Typedef("fn_t", l_fp);
  uint32_t zero = l.Access("0");
  l.Done();
  BtfBuilder t;
  uint32_t t_int = t.Int("int", 4);
  uint32_t t_long = t.Int("long", 8);
  t.Int("pad", 1);
  uint32_t t_s = t.Struct("s", 16, {{"a", t_int, 0}, {"b", t_long, 64}});
  uint32_t t_td = t.Typedef("s_t", t_s);
  uint32_t t_e = t.Enum("e", {{"B", 5}, {"A", 4}, {"C", 6}});
  uint32_t t_fp = t.FuncProto(t_int, {t_int});
  uint32_t t_fpt = t.Typedef("fn_t", t_fp);
  Btf target = t.Parse();
  const Btf& local = *l.btf;

  CHECK(Fix(local, l_s, zero, CoreReloKind::kTypeExists, target).target_value == 1);
  CHECK(Fix(local, l_s, zero, CoreReloKind::kTypeSize, target).target_value == 16);
  CHECK(Fix(local, l_s, zero, CoreReloKind::kTypeSize, target).local_value == 4);
  CoreFixup id = Fix(local, l_s, zero, CoreReloKind::kTypeIdTarget, target);
  CHECK(id.local_value == l_s);
  CHECK(id.target_value == t_s);
  CHECK(Fix(local, l_td, zero, CoreReloKind::kTypeIdTarget, target).target_value == t_td);
  CHECK(Fix(local, l_e, zero, CoreReloKind::kTypeIdTarget, target).target_value == t_e);
  CHECK(Fix(local, l_fpt, zero, CoreReloKind::kTypeIdTarget, target).target_value == t_fpt);
  CoreFixup local_id = Fix(local, l_s, zero, CoreReloKind::kTypeIdLocal, target);
  CHECK(local_id.local_value == l_s);
  CHECK(local_id.target_value == l_s);

  CoreFixup missing = Fix(local, l_missing, zero, CoreReloKind::kTypeExists, target);
  CHECK(missing.target_value == 0);
  CHECK_FALSE(missing.poison);
  CHECK(Fix(local, l_missing, zero, CoreReloKind::kTypeSize, target).target_value == 0);
  CHECK(Fix(local, l_missing, zero, CoreReloKind::kTypeIdTarget, target).target_value == 0);

  // TYPE_MATCHES: every local member must exist with a matching type;
  // the target's extra member is fine. The enum's names all exist.
  CHECK(Fix(local, l_s, zero, CoreReloKind::kTypeMatches, target).target_value == 1);
  CHECK(Fix(local, l_e, zero, CoreReloKind::kTypeMatches, target).target_value == 1);
  CHECK(Fix(local, l_fpt, zero, CoreReloKind::kTypeMatches, target).target_value == 1);

  // A type access string other than "0" is malformed.
  Local bad;
  uint32_t b_int = bad.b.Int("int", 4);
  uint32_t b_s = bad.b.Struct("s", 4, {{"a", b_int, 0}});
  uint32_t one = bad.Access("0:0");
  bad.Done();
  CHECK_THAT(std::string(FixError(*bad.btf, b_s, one, CoreReloKind::kTypeExists, target).message()),
             Catch::Contains("type_exists") && Catch::Contains("'0:0'"));
}

TEST_CASE("TYPE_MATCHES refuses layouts that merely share a name", "[core]") {
  Local l;
  uint32_t l_int = l.b.Int("int", 4);
  uint32_t l_s = l.b.Struct("s", 4, {{"a", l_int, 0}});
  uint32_t l_e = l.b.Enum("e", {{"A", 1}, {"Z", 2}});
  uint32_t zero = l.Access("0");
  l.Done();
  BtfBuilder t;
  uint32_t t_uint = t.Int("unsigned int", 4, false);
  t.Struct("s", 4, {{"a", t_uint, 0}});  // signedness differs
  t.Enum("e", {{"A", 1}});               // Z is missing
  Btf target = t.Parse();
  CoreFixup s = Fix(*l.btf, l_s, zero, CoreReloKind::kTypeMatches, target);
  CHECK(s.target_value == 0);
  CHECK(Fix(*l.btf, l_s, zero, CoreReloKind::kTypeExists, target).target_value == 1);
  CHECK(Fix(*l.btf, l_e, zero, CoreReloKind::kTypeMatches, target).target_value == 0);
}

TEST_CASE("enum value relocations, with flavours on enumerators and ENUM64 targets", "[core]") {
  Local l;
  uint32_t l_e = l.b.Enum("e___mine", {{"A___mine", 1}, {"GONE", 2}});
  uint32_t l_e64 = l.b.Enum64("big", {{"HUGE", 1}});
  uint32_t a0 = l.Access("0"), a1 = l.Access("1"), a5 = l.Access("5");
  l.Done();
  BtfBuilder t;
  t.Enum("e", {{"X", 9}, {"A", -3}});
  t.Enum64("big", {{"HUGE", int64_t{1} << 40}});
  Btf target = t.Parse();
  CoreFixup v = Fix(*l.btf, l_e, a0, CoreReloKind::kEnumvalValue, target);
  CHECK(v.local_value == 1);
  CHECK(v.target_value == static_cast<uint32_t>(-3));
  CHECK(Fix(*l.btf, l_e, a0, CoreReloKind::kEnumvalExists, target).target_value == 1);
  CHECK(Fix(*l.btf, l_e, a1, CoreReloKind::kEnumvalExists, target).target_value == 0);
  CoreFixup gone = Fix(*l.btf, l_e, a1, CoreReloKind::kEnumvalValue, target);
  CHECK(gone.poison);
  CHECK_THAT(gone.poison_reason, Catch::Contains("GONE"));
  CHECK(Fix(*l.btf, l_e64, a0, CoreReloKind::kEnumvalValue, target).target_value ==
        uint64_t{1} << 40);
  // An enumerator index past the local enum is malformed.
  CoreTarget ct(target);
  auto past = ComputeCoreFixup(*l.btf, {0, l_e, a5, CoreReloKind::kEnumvalValue}, ct);
  REQUIRE_FALSE(past.ok());
  CHECK_THAT(std::string(past.status().message()), Catch::Contains("'5'"));
}

TEST_CASE("flavours are ignored; agreeing candidates are accepted, disagreeing ones refused",
          "[core]") {
  Local l;
  uint32_t l_int = l.b.Int("int", 4);
  uint32_t l_s = l.b.Struct("s___new", 8, {{"a", l_int, 0}, {"b", l_int, 32}});
  uint32_t a0_0 = l.Access("0:0"), a0_1 = l.Access("0:1"), zero = l.Access("0");
  l.Done();
  // Two candidates: "s" and "s___old". `a` sits at 0 in both; `b` at
  // 4 in one and 8 in the other.
  BtfBuilder t;
  uint32_t t_int = t.Int("int", 4);
  t.Struct("s", 8, {{"a", t_int, 0}, {"b", t_int, 32}});
  t.Struct("s___old", 12, {{"a", t_int, 0}, {"pad", t_int, 32}, {"b", t_int, 64}});
  Btf target = t.Parse();
  CoreFixup a = Fix(*l.btf, l_s, a0_0, CoreReloKind::kFieldByteOffset, target);
  CHECK(a.target_value == 0);
  absl::Status b = FixError(*l.btf, l_s, a0_1, CoreReloKind::kFieldByteOffset, target);
  CHECK(b.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(b.message()), Catch::Contains("ambiguous") && Catch::Contains("s___old") &&
                                           Catch::Contains("'0:1'"));
  // Type ids always differ between two candidates.
  absl::Status id = FixError(*l.btf, l_s, zero, CoreReloKind::kTypeIdTarget, target);
  CHECK_THAT(std::string(id.message()), Catch::Contains("ambiguous"));
  // Existence agrees.
  CHECK(Fix(*l.btf, l_s, zero, CoreReloKind::kTypeExists, target).target_value == 1);
  // A candidate that does not have the field drops out instead of clashing.
  BtfBuilder t2;
  uint32_t t2_int = t2.Int("int", 4);
  t2.Struct("s", 8, {{"a", t2_int, 0}, {"b", t2_int, 32}});
  t2.Struct("s___old", 4, {{"a", t2_int, 0}});
  Btf target2 = t2.Parse();
  CHECK(Fix(*l.btf, l_s, a0_1, CoreReloKind::kFieldByteOffset, target2).target_value == 4);
}

TEST_CASE("bitfield relocations give the load, the shifts and the signedness", "[core]") {
  // Local: struct bf { int x; unsigned a:4, b:2; }
  Local l;
  uint32_t l_int = l.b.Int("int", 4);
  uint32_t l_uint = l.b.Int("unsigned int", 4, false);
  uint32_t l_bf = l.b.Struct("bf", 8, {{"x", l_int, 0}, {"a", l_uint, 32, 4}, {"b", l_int, 36, 2}});
  uint32_t a_a = l.Access("0:1"), a_b = l.Access("0:2");
  l.Done();
  // Target: struct bf { unsigned short pad; unsigned a:4 at bit 30, b:2 at 60 }
  BtfBuilder t;
  uint32_t t_int = t.Int("int", 4);
  uint32_t t_uint = t.Int("unsigned int", 4, false);
  uint32_t t_ushort = t.Int("unsigned short", 2, false);
  t.Struct("bf", 8, {{"pad", t_ushort, 0}, {"a", t_uint, 30, 4}, {"b", t_int, 60, 2}});
  Btf target = t.Parse();
  const Btf& local = *l.btf;
  // `a` straddles bits 30..33: a 4-byte load at 0 cannot hold it, an
  // 8-byte load at 0 can.
  CHECK(Fix(local, l_bf, a_a, CoreReloKind::kFieldByteOffset, target).target_value == 0);
  CHECK(Fix(local, l_bf, a_a, CoreReloKind::kFieldByteSize, target).target_value == 8);
  CHECK(Fix(local, l_bf, a_a, CoreReloKind::kFieldLShiftU64, target).target_value == 64 - 34);
  CHECK(Fix(local, l_bf, a_a, CoreReloKind::kFieldRShiftU64, target).target_value == 60);
  CHECK(Fix(local, l_bf, a_a, CoreReloKind::kFieldSigned, target).target_value == 0);
  CHECK_FALSE(Fix(local, l_bf, a_a, CoreReloKind::kFieldByteOffset, target).validate);
  // Locally `a` is in the 4 bytes at offset 4.
  CHECK(Fix(local, l_bf, a_a, CoreReloKind::kFieldByteOffset, target).local_value == 4);
  CHECK(Fix(local, l_bf, a_a, CoreReloKind::kFieldLShiftU64, target).local_value == 64 - 4);
  // `b`: bits 60..61 of the 4-byte word at 4.
  CHECK(Fix(local, l_bf, a_b, CoreReloKind::kFieldByteOffset, target).target_value == 4);
  CHECK(Fix(local, l_bf, a_b, CoreReloKind::kFieldByteSize, target).target_value == 4);
  CHECK(Fix(local, l_bf, a_b, CoreReloKind::kFieldLShiftU64, target).target_value == 64 - 30);
  CHECK(Fix(local, l_bf, a_b, CoreReloKind::kFieldRShiftU64, target).target_value == 62);
  CHECK(Fix(local, l_bf, a_b, CoreReloKind::kFieldSigned, target).target_value == 1);
}

TEST_CASE("instructions are patched, resized and poisoned", "[core]") {
  Local l;
  uint32_t l_uint = l.b.Int("unsigned int", 4, false);
  uint32_t l_int = l.b.Int("int", 4);
  uint32_t l_s = l.b.Struct("s", 12, {{"a", l_uint, 0}, {"b", l_int, 32}, {"gone", l_int, 64}});
  uint32_t l_e = l.b.Enum("e", {{"V", 1}, {"W", 2}});
  uint32_t a0_0 = l.Access("0:0"), a0_1 = l.Access("0:1"), a0_2 = l.Access("0:2"),
           e0 = l.Access("0"), e1 = l.Access("1");
  l.Done();
  BtfBuilder t;
  uint32_t t_ushort = t.Int("unsigned short", 2, false);
  uint32_t t_long = t.Int("long", 8);
  t.Struct("s", 24, {{"b", t_long, 0}, {"a", t_ushort, 128}});
  t.Enum64("e", {{"V", int64_t{7} << 33}});
  Btf target = t.Parse();
  CoreTarget ct(target);

  std::vector<bpf_insn> insns = {
      insn::LoadReg32(BPF_REG_0, BPF_REG_1, 0),  // s->a: u32 -> u16 at 16
      insn::MovImm(BPF_REG_2, 4),                // offsetof(b)
      insn::LoadReg32(BPF_REG_0, BPF_REG_1, 4),  // s->b: int -> long: unsafe, poisoned
      insn::LoadReg32(BPF_REG_0, BPF_REG_1, 8),  // s->gone: missing, poisoned
      insn::Make(BPF_LD | BPF_IMM | BPF_DW, BPF_REG_3, 0, 0, 1),  // enum V
      insn::Make(0, 0, 0, 0, 0),
      insn::Make(BPF_LD | BPF_IMM | BPF_DW, BPF_REG_4, 0, 0, 2),  // enum W: missing
      insn::Make(0, 0, 0, 0, 0),
      insn::Exit(),
  };
  std::vector<CoreRelo> relos = {
      {0, l_s, a0_0, CoreReloKind::kFieldByteOffset}, {1, l_s, a0_1, CoreReloKind::kFieldByteOffset},
      {2, l_s, a0_1, CoreReloKind::kFieldByteOffset}, {3, l_s, a0_2, CoreReloKind::kFieldByteOffset},
      {4, l_e, e0, CoreReloKind::kEnumvalValue},      {6, l_e, e1, CoreReloKind::kEnumvalValue},
  };
  std::vector<CorePoison> poisoned;
  absl::Status st = ApplyCoreRelocations("p", *l.btf, relos, absl::MakeSpan(insns), ct, &poisoned);
  INFO(st.ToString());
  REQUIRE(st.ok());
  CHECK(insns[0].off == 16);
  CHECK(BPF_SIZE(insns[0].code) == BPF_H);
  CHECK(BPF_CLASS(insns[0].code) == BPF_LDX);
  CHECK(insns[1].imm == 0);
  auto is_poison = [](const bpf_insn& in) {
    return in.code == (BPF_JMP | BPF_CALL) && in.imm == kCorePoisonHelper;
  };
  CHECK(is_poison(insns[2]));
  CHECK(is_poison(insns[3]));
  CHECK(insns[4].imm == 0);
  CHECK(insns[5].imm == 14);
  CHECK(is_poison(insns[6]));
  CHECK(is_poison(insns[7]));
  REQUIRE(poisoned.size() == 3);
  CHECK(poisoned[0].insn == 2);
  CHECK_THAT(poisoned[0].reason, Catch::Contains("only pointers and unsigned integers"));
  CHECK_THAT(poisoned[1].reason, Catch::Contains("gone") && Catch::Contains("program 'p'"));
  CHECK_THAT(poisoned[2].reason, Catch::Contains("e::W"));

  // The verifier's complaint about a poisoned call is explained.
  absl::Status verifier = absl::InvalidArgumentError(
      "program 'p': verifier log:\n0: (85) call unknown#195896080\n3: (85) call "
      "unknown#195896080\ninvalid func unknown#195896080");
  absl::Status explained = ExplainCorePoison(verifier, poisoned);
  CHECK_THAT(std::string(explained.message()),
             Catch::StartsWith("the verifier reached an instruction poisoned by CO-RE") &&
                 Catch::Contains("gone"));
  absl::Status other = absl::InvalidArgumentError("R0 !read_ok");
  CHECK(ExplainCorePoison(other, poisoned) == other);

  // The compiler's value must be in the instruction.
  std::vector<bpf_insn> wrong = {insn::LoadReg32(BPF_REG_0, BPF_REG_1, 12), insn::Exit()};
  absl::Status mismatch = ApplyCoreRelocations(
      "p", *l.btf, std::vector<CoreRelo>{{0, l_s, a0_0, CoreReloKind::kFieldByteOffset}},
      absl::MakeSpan(wrong), ct);
  CHECK_THAT(std::string(mismatch.message()),
             Catch::Contains("program 'p'") && Catch::Contains("instruction 0") &&
                 Catch::Contains("byte_off") && Catch::Contains("'0:0'") &&
                 Catch::Contains("offset is 12"));
  // A relocation past the end of the program.
  CHECK_FALSE(ApplyCoreRelocations(
                  "p", *l.btf, std::vector<CoreRelo>{{9, l_s, a0_0, CoreReloKind::kFieldByteOffset}},
                  absl::MakeSpan(wrong), ct)
                  .ok());
}

TEST_CASE("malformed relocations are errors, never crashes", "[core]") {
  Local l;
  uint32_t l_int = l.b.Int("int", 4);
  uint32_t l_arr = l.b.Array(l_int, 2);
  uint32_t l_s = l.b.Struct("s", 8, {{"a", l_arr, 0}});
  uint32_t anon = l.b.Struct(nullptr, 4, {{"a", l_int, 0}});
  uint32_t fwd = l.b.Fwd("f");
  std::vector<uint32_t> accesses;
  for (const char* s : {"", ":", "x", "0:", "0:5", "0:0:9", "0:0:1:0", "-1", "0:99999999999",
                        "0::0", "1:2:3:4:5:6:7:8:9:10:11:12:13:14:15:16:17:18:19:20:21:22:23:24:"
                        "25:26:27:28:29:30:31:32:33:34:35:36:37:38:39:40:41:42:43:44:45:46:47:"
                        "48:49:50:51:52:53:54:55:56:57:58:59:60:61:62:63:64:65"}) {
    accesses.push_back(l.Access(s));
  }
  uint32_t ok = l.Access("0:0:1"), anon_ok = l.Access("0:0");
  l.Done();
  BtfBuilder t;
  uint32_t t_int = t.Int("int", 4);
  uint32_t t_arr = t.Array(t_int, 2);
  t.Struct("s", 8, {{"a", t_arr, 0}});
  t.Fwd("f");
  Btf target = t.Parse();
  CoreTarget ct(target);
  for (uint32_t a : accesses) {
    for (uint32_t type : {l_s, anon, fwd, l_int, 0u, 9999u}) {
      for (uint32_t k = 0; k <= 12; ++k) {
        auto fx = ComputeCoreFixup(*l.btf, {0, type, a, static_cast<CoreReloKind>(k)}, ct);
        (void)fx;  // errors or results; must not crash
      }
    }
  }
  CHECK_FALSE(ComputeCoreFixup(*l.btf, {0, l_s, accesses[4], CoreReloKind::kFieldByteOffset}, ct).ok());
  CHECK(ComputeCoreFixup(*l.btf, {0, l_s, ok, CoreReloKind::kFieldByteOffset}, ct)->target_value == 4);
  auto anonymous = ComputeCoreFixup(*l.btf, {0, anon, anon_ok, CoreReloKind::kFieldByteOffset}, ct);
  REQUIRE_FALSE(anonymous.ok());
  CHECK_THAT(std::string(anonymous.status().message()), Catch::Contains("anonymous"));
}

TEST_CASE("split BTF resolves base ids and strings; CO-RE falls back to it", "[core][btf]") {
  BtfBuilder base;
  uint32_t b_int = base.Int("int", 4);
  base.Struct("in_base", 4, {{"a", b_int, 0}});
  Btf vmlinux = base.Parse();
  // The module: ids from 3, names after the base's 24 bytes of strings.
  std::string base_strs(1, '\0');
  base_strs += std::string("int") + '\0' + "in_base" + '\0' + "a" + '\0' + "__index" + '\0';
  uint32_t str_base = 1 + 4 + 8 + 2;  // "", "int", "in_base", "a"
  std::string strs = std::string("mod_s") + '\0' + "x" + '\0' + "y" + '\0';
  std::vector<uint32_t> words = {
      str_base + 0, (4u << 24) | 2, 8,  // [3] struct mod_s
      str_base + 6, 1, 0,               //   x: int (a base type)
      str_base + 8, 4, 32,              //   y: struct mod_s *
      0, (2u << 24), 3,                 // [4] ptr -> mod_s
  };
  std::vector<uint8_t> blob(24);
  uint32_t tl = static_cast<uint32_t>(words.size() * 4);
  uint32_t hdr[6] = {0, 24, 0, tl, tl, static_cast<uint32_t>(strs.size())};
  memcpy(blob.data(), hdr, 24);
  blob[0] = 0x9f;
  blob[1] = 0xeb;
  blob[2] = 1;
  blob[3] = 0;
  blob.resize(24 + tl);
  memcpy(blob.data() + 24, words.data(), tl);
  blob.insert(blob.end(), strs.begin(), strs.end());
  auto mod = Btf::Parse(blob, "module", &vmlinux);
  INFO(mod.status().ToString());
  REQUIRE(mod.ok());
  CHECK(mod->FirstOwnId() == 3);
  CHECK(mod->NumTypes() == 5);
  CHECK(mod->NameOf(3) == "mod_s");
  CHECK(mod->NameOf(1) == "int");
  CHECK(mod->IdsByName("mod_s").size() == 1);
  CHECK(mod->IdsByName("int").empty());  // base types are the base's to index
  auto y = mod->FindMember(3, "y");
  REQUIRE(y.ok());
  CHECK(y->bit_offset == 32);
  CHECK(*mod->SizeOf(4) == 8);
  auto x = mod->FindMember(3, "x");
  REQUIRE(x.ok());
  CHECK(mod->TypeById(x->type)->kind == BtfKind::kInt);
  CHECK(mod->Members(*mod->TypeById(2)).size() == 1);  // a base struct, through the module

  // CO-RE looks in the module only for names the base lacks.
  Local l;
  uint32_t l_int = l.b.Int("int", 4);
  uint32_t l_mod = l.b.Struct("mod_s", 8, {{"pad", l_int, 0}, {"x", l_int, 32}});
  uint32_t l_base = l.b.Struct("in_base", 4, {{"a", l_int, 0}});
  uint32_t a0_1 = l.Access("0:1"), a0_0 = l.Access("0:0"), zero = l.Access("0");
  l.Done();
  const Btf* fallbacks[] = {&*mod};
  CoreTarget with_modules(vmlinux, fallbacks);
  auto x_off = ComputeCoreFixup(*l.btf, {0, l_mod, a0_1, CoreReloKind::kFieldByteOffset}, with_modules);
  REQUIRE(x_off.ok());
  CHECK(x_off->local_value == 4);
  CHECK(x_off->target_value == 0);
  CHECK(x_off->target_btf == &*mod);
  auto mod_id = ComputeCoreFixup(*l.btf, {0, l_mod, zero, CoreReloKind::kTypeIdTarget}, with_modules);
  REQUIRE(mod_id.ok());
  CHECK(mod_id->target_value == 3);
  auto base_a = ComputeCoreFixup(*l.btf, {0, l_base, a0_0, CoreReloKind::kFieldExists}, with_modules);
  REQUIRE(base_a.ok());
  CHECK(base_a->target_value == 1);
  CHECK(base_a->target_btf == &vmlinux);
  // Without the module, mod_s is missing.
  CoreTarget base_only(vmlinux);
  CHECK(ComputeCoreFixup(*l.btf, {0, l_mod, a0_1, CoreReloKind::kFieldByteOffset}, base_only)->poison);
  // A reference past the module's last id is refused.
  words[11] = 9;
  memcpy(blob.data() + 24, words.data(), tl);
  CHECK_FALSE(Btf::Parse(blob, "module", &vmlinux).ok());
}

// --- corpus ---------------------------------------------------------------------------

namespace {

std::string Corpus(const std::string& file) {
  return std::string(TETHER_SOURCE_DIR) + "/test/corpus/" + file;
}

CollectionSpec CorpusSpec(const std::string& file) {
  auto spec = CollectionSpec::FromFile(Corpus(file));
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  return *std::move(spec);
}

absl::StatusOr<Program> LoadOne(const CollectionSpec& spec, const std::string& name,
                                CollectionOptions o = {}) {
  o.default_program_type = BPF_PROG_TYPE_SOCKET_FILTER;
  Program p;
  absl::Status st = LoadAndAssign(spec, {{}, {{name, &p}}}, o);
  if (!st.ok()) return st;
  return p;
}

}  // namespace

TEST_CASE("corpus relocs: every kind against the object's own BTF", "[core][corpus]") {
  CollectionSpec spec = CorpusSpec("relocs-el.elf");
  REQUIRE(spec.btf);
  CollectionOptions o;
  o.core_target = &*spec.btf;
  for (const char* name : {"type_ids", "types", "enums", "fields"}) {
    INFO(name);
    auto p = LoadOne(spec, name, o);
    INFO(p.status().ToString());
    REQUIRE(p.ok());
    // Each program returns the __LINE__ of its first failed check. This
    // build of type_ids asserts that kernel and local ids differ, which
    // holds for cilium/ebpf (it renumbers the BTF it gives the kernel)
    // but not here: tether, like libbpf, keeps the object's ids, so
    // against its own BTF the first id comparison (line 70) returns. Every
    // local-id check before it passed.
    CHECK(testing::RunValue(*p) == (std::string(name) == "type_ids" ? 70u : 0u));
  }
  for (const char* name : {"err_ambiguous", "err_ambiguous_flavour"}) {
    INFO(name);
    auto p = LoadOne(spec, name, o);
    REQUIRE_FALSE(p.ok());
    CHECK_THAT(std::string(p.status().message()),
               Catch::Contains(name) && Catch::Contains("ambiguous") &&
                   Catch::Contains("target_type_id"));
  }
  // Against the kernel, `fields` reads struct s, which vmlinux lacks.
  auto fields = LoadOne(spec, "fields");
  REQUIRE_FALSE(fields.ok());
  CHECK_THAT(std::string(fields.status().message()),
             Catch::Contains("poisoned by CO-RE") && Catch::Contains("not in the target"));
}

TEST_CASE("corpus relocs_read: bitfields against a custom target", "[core][corpus]") {
  CollectionSpec spec = CorpusSpec("relocs_read-el.elf");
  CollectionSpec tgt = CorpusSpec("relocs_read_tgt-el.elf");
  REQUIRE(tgt.btf);
  CollectionOptions o;
  o.core_target = &*tgt.btf;
  auto p = LoadOne(spec, "reads", o);
  INFO(p.status().ToString());
  REQUIRE(p.ok());
  CHECK(testing::RunValue(*p) == 0);
  // vmlinux has neither struct s nor struct bits: the reads are poisoned.
  auto k = LoadOne(spec, "reads");
  REQUIRE_FALSE(k.ok());
  CHECK_THAT(std::string(k.status().message()), Catch::Contains("poisoned by CO-RE"));
}

TEST_CASE("corpus relocs_enum and manyprogs load against the kernel", "[core][corpus]") {
  auto e = LoadOne(CorpusSpec("relocs_enum-el.elf"), "core_ld64imm");
  INFO(e.status().ToString());
  REQUIRE(e.ok());
  CHECK(testing::RunValue(*e) == 0);

  CollectionSpec many = CorpusSpec("manyprogs-el.elf");
  auto coll = Collection::Load(many);
  INFO(coll.status().ToString());
  REQUIRE(coll.ok());
  CHECK(coll->programs().size() == 30);
}

TEST_CASE("corpus errors: poisoned field and enum fail with the relocation named",
          "[core][corpus]") {
  CollectionSpec spec = CorpusSpec("errors-el.elf");
  auto single = LoadOne(spec, "poisoned_single");
  REQUIRE_FALSE(single.ok());
  CHECK_THAT(std::string(single.status().message()),
             Catch::Contains("poisoned_single") && Catch::Contains("poisoned by CO-RE") &&
                 Catch::Contains("nonexist") && Catch::Contains("non_exist"));
  auto dbl = LoadOne(spec, "poisoned_double");
  REQUIRE_FALSE(dbl.ok());
  CHECK_THAT(std::string(dbl.status().message()),
             Catch::Contains("poisoned by CO-RE") && Catch::Contains("NON_EXIST") &&
                 Catch::Contains("enumval_value"));
  CHECK_FALSE(LoadOne(spec, "poisoned_kfunc").ok());
}

// --- the live kernel ----------------------------------------------------------------------

namespace {

struct TaskResult {
  uint64_t pid_tgid;
  uint32_t pid;
  uint32_t tgid;
  char comm[16];
  uint32_t reset_on_fork;
  uint32_t enum_sid;
  uint32_t enum_ringbuf;
  uint32_t enum_sid_exists;
  uint32_t type_missing_exists;
  uint32_t field_missing_exists;
  uint32_t pid_exists;
  uint32_t comm_size;
  uint32_t task_size;
  uint32_t guarded_read;
  uint32_t hits;
};

}  // namespace

TEST_CASE("CO-RE reads the running kernel's task_struct", "[core][kernel]") {
  auto spec = CollectionSpec::FromFile(testing::BpfObjectPath("core_task"));
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  Program prog;
  Map results, bss;
  absl::Status st = LoadAndAssign(*spec, {{{"results", &results}, {".bss", &bss}},
                                          {{"core_task", &prog}}});
  INFO(st.ToString());
  REQUIRE(st.ok());
  auto link = sys::RawTracepointOpen("sys_enter", prog.fd());
  INFO(link.status().ToString());
  REQUIRE(link.ok());

  // A thread of its own, so that its name and scheduling flag can be set
  // without touching the test runner's.
  struct {
    pid_t tid = 0;
    std::string proc_comm;
    bool sched_ok = false;
    std::string error;
  } seen;
  std::thread worker([&] {
    prctl(PR_SET_NAME, "tether-core", 0, 0, 0);
    seen.tid = static_cast<pid_t>(syscall(SYS_gettid));
    struct sched_param param = {};
    seen.sched_ok = sched_setscheduler(0, SCHED_OTHER | SCHED_RESET_ON_FORK, &param) == 0;
    uint32_t zero = 0, tid = static_cast<uint32_t>(seen.tid);
    absl::Status up = bss.Update(zero, tid);
    if (!up.ok()) seen.error = up.ToString();
    for (int i = 0; i < 3; ++i) (void)getppid();
    // Stop recording before anything changes: the thread's last syscalls
    // (and its exit) would overwrite the results.
    absl::Status off = bss.Update(zero, uint32_t{0});
    if (!off.ok()) seen.error = off.ToString();
    std::ifstream in("/proc/self/task/" + std::to_string(seen.tid) + "/comm");
    std::getline(in, seen.proc_comm);
    sched_setscheduler(0, SCHED_OTHER, &param);
  });
  worker.join();
  REQUIRE(seen.error.empty());
  link->Reset();  // detach before reading: later syscalls must not race

  TaskResult r{};
  REQUIRE(results.Lookup(uint32_t{0}, &r).ok());
  REQUIRE(r.hits > 0);
  CHECK(r.pid == static_cast<uint32_t>(seen.tid));
  CHECK(r.tgid == static_cast<uint32_t>(getpid()));
  CHECK(r.pid_tgid == (uint64_t{static_cast<uint32_t>(getpid())} << 32 | r.pid));
  CHECK(std::string(r.comm, strnlen(r.comm, sizeof(r.comm))) == seen.proc_comm);
  CHECK(seen.proc_comm == "tether-core");
  // Root may always set SCHED_RESET_ON_FORK on itself; the bitfield read
  // must see it.
  REQUIRE(seen.sched_ok);
  CHECK(r.reset_on_fork == 1);
  CHECK(r.enum_sid == 3);  // PIDTYPE_SID
  CHECK(r.enum_ringbuf == BPF_MAP_TYPE_RINGBUF);
  CHECK(r.enum_sid_exists == 1);
  CHECK(r.type_missing_exists == 0);
  CHECK(r.field_missing_exists == 0);
  CHECK(r.pid_exists == 1);
  CHECK(r.comm_size == 16);
  CHECK(r.guarded_read == 7);
  auto vmlinux = KernelBtf();
  REQUIRE(vmlinux.ok());
  auto task_id = (*vmlinux)->FindByNameKind("task_struct", BtfKind::kStruct);
  REQUIRE(task_id);
  CHECK(r.task_size == *(*vmlinux)->SizeOf(*task_id));
}

TEST_CASE("CO-RE: an unguarded read of a missing kernel field fails and says why",
          "[core][kernel]") {
  auto spec = CollectionSpec::FromFile(testing::BpfObjectPath("core_task"));
  REQUIRE(spec.ok());
  Program prog;
  absl::Status st = LoadAndAssign(*spec, {{}, {{"core_unguarded", &prog}}});
  REQUIRE_FALSE(st.ok());
  CHECK_THAT(std::string(st.message()),
             Catch::Contains("core_unguarded") && Catch::Contains("poisoned by CO-RE") &&
                 Catch::Contains("tether_no_such_field") && Catch::Contains("byte_off"));
}

TEST_CASE("CO-RE target for the kernel is built once and shared", "[core][kernel]") {
  auto a = CoreTarget::Kernel();
  auto b = CoreTarget::Kernel();
  REQUIRE(a.ok());
  CHECK(*a == *b);
  auto vmlinux = KernelBtf();
  REQUIRE(vmlinux.ok());
  CHECK(&(*a)->primary() == *vmlinux);
  auto cands = (*a)->Candidates("task_struct", BtfKind::kStruct);
  REQUIRE(cands.size() == 1);
  CHECK(cands[0].btf == *vmlinux);
  CHECK((*a)->Candidates("tether_no_such_type", BtfKind::kStruct).empty());
}

TEST_CASE("random relocations over real BTF never crash", "[core]") {
  // Every type id, every string offset of the object as an access string,
  // every kind: against the object itself and against vmlinux.
  CollectionSpec spec = CorpusSpec("relocs-el.elf");
  const Btf& local = *spec.btf;
  CoreTarget own(local);
  auto kernel = CoreTarget::Kernel();
  REQUIRE(kernel.ok());
  std::vector<uint32_t> accesses;
  for (const auto& [name, p] : spec.programs) {
    for (const CoreRelo& r : p.code.core_relos) accesses.push_back(r.access_str_off);
  }
  REQUIRE_FALSE(accesses.empty());
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  auto next = [&] {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
  };
  size_t ok = 0;
  for (int i = 0; i < 20000; ++i) {
    CoreRelo r;
    r.type_id = static_cast<uint32_t>(next() % (local.NumTypes() + 3));
    r.access_str_off = (next() % 4 == 0) ? static_cast<uint32_t>(next() % 5000)
                                         : accesses[next() % accesses.size()];
    r.kind = static_cast<CoreReloKind>(next() % 13);
    ok += ComputeCoreFixup(local, r, own).ok();
    ok += ComputeCoreFixup(local, r, **kernel).ok();
  }
  CHECK(ok > 0);
}

namespace tether {
namespace {

// nf_conntrack is a module on Debian's 6.1 and built in on the host;
// struct nf_conntrack_net is only in the module's BTF there. The module is
// loaded here, after other tests have already used the kernel's CO-RE
// target: relocation must still find a module that came later.
TEST_CASE("CO-RE relocates against a type in a kernel module's BTF, loaded after the first look",
          "[core][kernel][module]") {
  (void)system("modprobe nf_conntrack >/dev/null 2>&1");
  auto vmlinux = KernelBtf();
  REQUIRE(vmlinux.ok());
  // Where the kernel keeps the type, found without tether's CO-RE.
  const char* kType = "nf_conntrack_net";
  const Btf* home = nullptr;
  std::string home_name = "vmlinux";
  if ((*vmlinux)->FindByNameKind(kType, BtfKind::kStruct)) {
    home = *vmlinux;
  } else {
    auto modules = detail::LoadedModuleBtfs();
    REQUIRE(modules.ok());
    for (const detail::ModuleBtf& m : *modules) {
      if (m.btf->FindByNameKind(kType, BtfKind::kStruct)) {
        home = m.btf;
        home_name = m.name;
      }
    }
  }
  if (home == nullptr) {
    TETHER_SKIP_FOR_PROBE("struct nf_conntrack_net in kernel BTF",
                          "neither vmlinux nor a loadable module (nf_conntrack) describes it");
  }
  WARN("struct " << kType << " is in " << home_name << "'s BTF");
  uint32_t id = *home->FindByNameKind(kType, BtfKind::kStruct);
  auto size = home->SizeOf(id);
  auto expect_count = home->FindMember(id, "expect_count");
  REQUIRE(size.ok());
  REQUIRE(expect_count.ok());
  auto expect_count_size = home->SizeOf(expect_count->type);
  REQUIRE(expect_count_size.ok());

  auto spec = CollectionSpec::FromFile(testing::BpfObjectPath("core_module"));
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  auto coll = Collection::Load(*spec);
  INFO(coll.status().ToString());
  REQUIRE(coll.ok());
  std::vector<uint8_t> packet(64, 0);
  RunOptions ro;
  ro.data = packet;
  auto run = coll->program("core_module").Run(ro);
  INFO(run.status().ToString());
  REQUIRE(run.ok());
  REQUIRE(run->return_value == 1);
  struct {
    uint32_t exists, size, expect_count_offset, expect_count_size;
  } r{};
  REQUIRE(coll->map("results").Lookup(uint32_t{0}, &r).ok());
  CHECK(r.exists == 1);
  CHECK(r.size == *size);
  CHECK(r.expect_count_offset == expect_count->bit_offset / 8);
  CHECK(r.expect_count_size == *expect_count_size);
  // The local layout puts expect_count at 1000, past the end of any
  // kernel's struct: only relocation brings it back.
  CHECK(r.expect_count_offset < 1000);
}

}  // namespace
}  // namespace tether
