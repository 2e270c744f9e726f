#include "tether/btf.h"

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "test_support.h"

namespace tether {
namespace {

// Builds raw BTF: words of the type section and the string section.
struct RawBtf {
  std::vector<uint32_t> words;
  std::string strs = std::string(1, '\0');
  uint32_t Str(const char* s) {
    uint32_t off = static_cast<uint32_t>(strs.size());
    strs += s;
    strs.push_back('\0');
    return off;
  }
  std::vector<uint8_t> Build() const {
    std::vector<uint8_t> out(24);
    uint32_t hdr[6] = {0, 24, 0, static_cast<uint32_t>(words.size() * 4),
                       static_cast<uint32_t>(words.size() * 4), static_cast<uint32_t>(strs.size())};
    memcpy(out.data(), hdr, 24);
    out[0] = 0x9f;
    out[1] = 0xeb;
    out[2] = 1;
    out[3] = 0;
    size_t at = out.size();
    out.resize(at + words.size() * 4);
    memcpy(out.data() + at, words.data(), words.size() * 4);
    out.insert(out.end(), strs.begin(), strs.end());
    return out;
  }
};
uint32_t Info(uint32_t kind, uint32_t vlen = 0, bool kflag = false) {
  return kind << 24 | vlen | (kflag ? 1u << 31 : 0);
}

TEST_CASE("BTF parses every kind and answers lookups", "[btf]") {
  RawBtf r;
  uint32_t n_int = r.Str("int");
  r.words.insert(r.words.end(), {n_int, Info(1), 4, (1u << 24) | 32});          // [1] int
  r.words.insert(r.words.end(), {0, Info(2), 1});                               // [2] int *
  r.words.insert(r.words.end(), {0, Info(3), 0, 1, 1, 3});                      // [3] int[3]
  uint32_t n_s = r.Str("s"), n_a = r.Str("a"), n_b = r.Str("b"), n_c = r.Str("c");
  r.words.insert(r.words.end(), {n_s, Info(4, 3, true), 8, n_a, 1, 0, n_b, 1, (3u << 24) | 32,
                                 n_c, 1, (5u << 24) | 35});  // [4] struct s {int a; int b:3; int c:5;}
  r.words.insert(r.words.end(), {r.Str("u"), Info(5, 1), 4, n_a, 1, 0});  // [5] union
  r.words.insert(r.words.end(), {r.Str("e"), Info(6, 1, true), 4, r.Str("E1"), 0xffffffffu});  // [6]
  r.words.insert(r.words.end(), {r.Str("fwd"), Info(7), 0});                    // [7]
  r.words.insert(r.words.end(), {r.Str("td"), Info(8), 10});                   // [8] typedef -> const
  r.words.insert(r.words.end(), {0, Info(9), 4});                               // [9] volatile s
  r.words.insert(r.words.end(), {0, Info(10), 9});                              // [10] const volatile s
  r.words.insert(r.words.end(), {0, Info(11), 2});                              // [11] restrict
  r.words.insert(r.words.end(), {0, Info(13, 1), 1, n_a, 1});                   // [12] proto
  r.words.insert(r.words.end(), {r.Str("f"), Info(12, 0, false) | 1, 12});      // [13] global func
  r.words.insert(r.words.end(), {r.Str("v"), Info(14), 1, 1});                  // [14] var
  r.words.insert(r.words.end(), {r.Str(".data"), Info(15, 1), 4, 14, 0, 4});    // [15] datasec
  r.words.insert(r.words.end(), {r.Str("double"), Info(16), 8});               // [16] float
  r.words.insert(r.words.end(), {r.Str("tag"), Info(17), 4, 0xffffffffu});     // [17] decl tag
  r.words.insert(r.words.end(), {r.Str("user"), Info(18), 1});                 // [18] type tag
  r.words.insert(r.words.end(), {r.Str("e64"), Info(19, 1), 8, r.Str("BIG"), 0, 1});  // [19]
  auto blob = r.Build();
  auto btf = Btf::Parse(blob);
  REQUIRE(btf.ok());
  CHECK(btf->NumTypes() == 20);
  CHECK(btf->TypeById(1)->kind == BtfKind::kInt);
  CHECK(btf->TypeById(1)->int_bits() == 32);
  CHECK(btf->TypeById(19)->kind == BtfKind::kEnum64);
  CHECK(btf->EnumValues(*btf->TypeById(19))[0].value == (uint64_t{1} << 32));
  CHECK(static_cast<int64_t>(btf->EnumValues(*btf->TypeById(6))[0].value) == -1);
  CHECK(btf->TypeById(20) == nullptr);
  CHECK(btf->NameOf(4) == "s");
  REQUIRE(btf->IdsByName("s").size() == 1);
  CHECK(btf->IdsByName("s")[0] == 4);
  CHECK(btf->FindByNameKind(".data", BtfKind::kDatasec) == 15u);
  CHECK_FALSE(btf->FindByNameKind("s", BtfKind::kUnion).has_value());
  CHECK(btf->SkipQualifiers(8) == 4);
  CHECK(btf->SkipModifiers(8, false) == 8);
  CHECK(*btf->SizeOf(3) == 12);
  CHECK(*btf->SizeOf(8) == 8);
  CHECK(*btf->SizeOf(2) == 8);
  CHECK(*btf->SizeOf(19) == 8);
  CHECK_FALSE(btf->SizeOf(12).ok());
  CHECK(*btf->AlignOf(4) == 4);
  auto c = btf->FindMember(8, "c");
  REQUIRE(c.ok());
  CHECK(c->bit_offset == 35);
  CHECK(c->bitfield_size == 5);
  CHECK(btf->FindMember(4, "b")->bitfield_size == 3);
  CHECK_FALSE(btf->FindMember(4, "zz").ok());
  CHECK(btf->TypeById(13)->func_linkage() == BtfLinkage::kGlobal);
  CHECK(btf->Secinfos(*btf->TypeById(15))[0].size == 4);
  // Marshal round-trips byte for byte.
  CHECK(btf->Marshal() == blob);

  SECTION("the sanitiser rewrites what an old kernel refuses") {
    BtfFeatures none{};
    none.func = true;
    none.func_global = false;
    none.datasec = true;
    none.float_kind = false;
    none.decl_tag = false;
    none.type_tag = false;
    none.enum64 = false;
    auto out = SanitizeBtfForKernel(*btf, none);
    auto s = Btf::Parse(out);
    REQUIRE(s.ok());
    CHECK(s->NumTypes() == 21);  // the ENUM64 placeholder was appended
    CHECK(s->TypeById(13)->func_linkage() == BtfLinkage::kStatic);
    CHECK(s->TypeById(16)->kind == BtfKind::kStruct);
    CHECK(s->TypeById(17)->kind == BtfKind::kInt);
    CHECK(s->TypeById(18)->kind == BtfKind::kConst);
    CHECK(s->TypeById(19)->kind == BtfKind::kUnion);
    CHECK(s->NameOf(20) == "enum64_placeholder");
    CHECK_FALSE(s->TypeById(6)->kind_flag);
    // With everything supported, the blob is unchanged.
    CHECK(SanitizeBtfForKernel(*btf, BtfFeatures{}) == blob);
  }
}

TEST_CASE("BTF errors are precise", "[btf]") {
  SECTION("unknown kind") {
    RawBtf r;
    r.words.insert(r.words.end(), {0, Info(25), 0});
    auto b = Btf::Parse(r.Build());
    REQUIRE_FALSE(b.ok());
    CHECK_THAT(std::string(b.status().message()), Catch::Contains("type [1] at type offset 0: unknown kind 25"));
  }
  SECTION("type cycle through typedef and const") {
    RawBtf r;
    r.words.insert(r.words.end(), {r.Str("loop"), Info(8), 2});  // [1] typedef -> [2]
    r.words.insert(r.words.end(), {0, Info(10), 1});             // [2] const -> [1]
    auto b = Btf::Parse(r.Build());
    REQUIRE_FALSE(b.ok());
    CHECK_THAT(std::string(b.status().message()), Catch::Contains("reference cycle"));
  }
  SECTION("pointer cycles are legal") {
    RawBtf r;
    uint32_t n = r.Str("node"), next = r.Str("next");
    r.words.insert(r.words.end(), {n, Info(4, 1), 8, next, 2, 0});  // struct node { node *next; }
    r.words.insert(r.words.end(), {0, Info(2), 1});
    CHECK(Btf::Parse(r.Build()).ok());
  }
  SECTION("dangling reference") {
    RawBtf r;
    r.words.insert(r.words.end(), {0, Info(2), 7});
    auto b = Btf::Parse(r.Build());
    REQUIRE_FALSE(b.ok());
    CHECK_THAT(std::string(b.status().message()), Catch::Contains("refers to type 7"));
  }
  SECTION("truncated members") {
    RawBtf r;
    r.words.insert(r.words.end(), {0, Info(4, 2), 8, 0, 0});
    auto b = Btf::Parse(r.Build());
    REQUIRE_FALSE(b.ok());
    CHECK_THAT(std::string(b.status().message()), Catch::Contains("truncated member list"));
  }
  SECTION("string section without terminator") {
    RawBtf r;
    r.words.insert(r.words.end(), {0, Info(2), 0});
    auto blob = r.Build();
    blob.push_back('x');
    uint32_t len = 2;
    memcpy(&blob[20], &len, 4);
    auto b = Btf::Parse(blob);
    REQUIRE_FALSE(b.ok());
    CHECK_THAT(std::string(b.status().message()), Catch::Contains("not NUL-terminated"));
  }
  SECTION("header") {
    CHECK_THAT(std::string(Btf::Parse(std::vector<uint8_t>(10)).status().message()),
               Catch::Contains("header truncated"));
    std::vector<uint8_t> bad(24, 0);
    CHECK_THAT(std::string(Btf::Parse(bad).status().message()), Catch::Contains("bad magic"));
  }
}

TEST_CASE("vmlinux BTF parses quickly and is indexed by name", "[btf][kernel]") {
  auto t0 = std::chrono::steady_clock::now();
  auto btf = Btf::LoadKernel();
  auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (!btf.ok() && btf.status().code() == absl::StatusCode::kNotFound) {
    TETHER_SKIP_OR_FAIL("no /sys/kernel/btf/vmlinux");
  }
  REQUIRE(btf.ok());
  WARN("vmlinux: " << btf->NumTypes() << " types parsed in " << ms << " ms");
  auto sk_buff = btf->FindByNameKind("sk_buff", BtfKind::kStruct);
  REQUIRE(sk_buff.has_value());
  auto len = btf->FindMember(*sk_buff, "len");
  REQUIRE(len.ok());
  CHECK(len->bit_offset % 8 == 0);
  auto blob = btf->Marshal();
  auto again = Btf::Parse(blob);
  REQUIRE(again.ok());
  CHECK(again->NumTypes() == btf->NumTypes());
}

namespace {
std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), {});
}
}  // namespace

TEST_CASE("lazily decoded kernel BTF matches an eager parse, from many threads at once", "[btf][kernel]") {
  std::vector<uint8_t> bytes = ReadFile("/sys/kernel/btf/vmlinux");
  if (bytes.empty()) TETHER_SKIP_OR_FAIL("no /sys/kernel/btf/vmlinux");
  auto eager = Btf::Parse(bytes, "vmlinux copy");
  REQUIRE(eager.ok());
  auto lazy = Btf::LoadKernel();
  REQUIRE(lazy.ok());
  REQUIRE(lazy->NumTypes() == eager->NumTypes());
  // Threads start on different blocks and race for the same ones; each
  // compares everything it reads against the eager tables.
  constexpr int kThreads = 4;
  std::vector<uint32_t> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  const uint32_t n = eager->NumTypes();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (uint32_t k = 0; k < n; ++k) {
        uint32_t id = 1 + (k + uint32_t(t) * (n / kThreads)) % (n - 1);
        const BtfType* a = lazy->TypeById(id);
        const BtfType* b = eager->TypeById(id);
        if (a == nullptr || b == nullptr || a->kind != b->kind || a->name_off != b->name_off ||
            a->vlen != b->vlen || a->size_or_type != b->size_or_type || a->extra != b->extra ||
            a->array_nelems != b->array_nelems) {
          ++mismatches[t];
          continue;
        }
        auto ma = lazy->Members(*a), mb = eager->Members(*b);
        for (size_t i = 0; i < ma.size() && i < mb.size(); ++i) {
          if (ma[i].name_off != mb[i].name_off || ma[i].type != mb[i].type ||
              ma[i].bit_offset != mb[i].bit_offset || ma[i].bitfield_size != mb[i].bitfield_size) {
            ++mismatches[t];
          }
        }
        auto ea = lazy->EnumValues(*a), eb = eager->EnumValues(*b);
        for (size_t i = 0; i < ea.size() && i < eb.size(); ++i) {
          if (ea[i].value != eb[i].value || ea[i].name_off != eb[i].name_off) ++mismatches[t];
        }
        if (k % 4096 == 0 && lazy->IdsByName(lazy->NameOf(id)).size() !=
                                 eager->IdsByName(eager->NameOf(id)).size()) {
          ++mismatches[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) CHECK(mismatches[t] == 0);
  // A copy of a lazy Btf is complete on its own, and re-encodes to the
  // same bytes as the eager parse.
  Btf copy = *lazy;
  lazy = absl::InternalError("dropped");
  CHECK(copy.Marshal() == eager->Marshal());
  CHECK(copy.FindByNameKind("task_struct", BtfKind::kStruct) ==
        eager->FindByNameKind("task_struct", BtfKind::kStruct));
}

TEST_CASE("kernel BTF copied off sysfs is validated like any blob", "[btf][kernel]") {
  std::vector<uint8_t> bytes = ReadFile("/sys/kernel/btf/vmlinux");
  if (bytes.empty()) TETHER_SKIP_OR_FAIL("no /sys/kernel/btf/vmlinux");
  // Point the first type at an id past the end: the kernel's own file is
  // trusted, but this one is not the kernel's.
  uint32_t hdr_len, type_off;
  memcpy(&hdr_len, &bytes[4], 4);
  memcpy(&type_off, &bytes[8], 4);
  uint32_t info;
  memcpy(&info, &bytes[hdr_len + type_off + 4], 4);
  REQUIRE(((info >> 24) & 0x1f) != 0);
  // Find a PTR near the start and break its target.
  size_t at = hdr_len + type_off;
  uint32_t id = 1;
  bool broken = false;
  for (int i = 0; i < 64 && !broken; ++i, ++id) {
    memcpy(&info, &bytes[at + 4], 4);
    uint32_t kind = (info >> 24) & 0x1f, vlen = info & 0xffff;
    if (kind == 2) {  // PTR
      uint32_t bad = 0x7fffffff;
      memcpy(&bytes[at + 8], &bad, 4);
      broken = true;
      break;
    }
    size_t tail = kind == 1 || kind == 14 || kind == 17 ? 4 : kind == 3 ? 12
                  : kind == 4 || kind == 5 ? 12u * vlen : kind == 6 ? 8u * vlen
                  : kind == 13 ? 8u * vlen : kind == 19 || kind == 15 ? 12u * vlen : 0;
    at += 12 + tail;
  }
  REQUIRE(broken);
  char path[] = "/tmp/tether-btf-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  close(fd);
  auto btf = Btf::LoadKernel(path);
  unlink(path);
  REQUIRE_FALSE(btf.ok());
  CHECK_THAT(std::string(btf.status().message()),
             Catch::Contains(absl::StrCat("type [", id, "] PTR")) && Catch::Contains("past the last id"));
}

TEST_CASE("kernel BTF feature probes run once and agree with a load", "[btf][kernel]") {
  const BtfFeatures& f = KernelBtfFeatures();
  CHECK(&f == &KernelBtfFeatures());
  // Kernels tether targets have had all of these for years.
  CHECK(f.func);
  CHECK(f.datasec);
}

}  // namespace
}  // namespace tether
