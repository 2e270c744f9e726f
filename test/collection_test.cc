// Collections on the live kernel: load order, static initialisers, global
// data, pins by name, LoadAndAssign's refusal, and all-or-nothing loads
// proven by failing every bpf() call of a load in turn.
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>

#include <fstream>
#include <sstream>

#include "sys/bpf.h"
#include "test_programs.h"
#include "test_support.h"
#include "tether/collection.h"
#include "tether/graph.h"
#include "tether/probe.h"

using namespace tether;
using testing::RunValue;

namespace {

CollectionSpec Spec() {
  auto spec = CollectionSpec::FromFile(testing::BpfObjectPath("collection"));
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  return *std::move(spec);
}

CollectionOptions Options(const testing::TempPinDir& dir) {
  CollectionOptions o;
  o.pin_dir = dir.path();
  return o;
}

size_t EntriesUnder(const std::string& dir) {
  size_t n = 0;
  if (DIR* d = opendir(dir.c_str())) {
    while (struct dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
  }
  return n;
}

}  // namespace

TEST_CASE("a collection loads, initialises its array and runs the chain", "[collection]") {
  testing::TempPinDir dir;
  auto coll = Collection::Load(Spec(), Options(dir));
  INFO(coll.status().ToString());
  REQUIRE(coll.ok());
  CHECK(coll->programs().size() == 3);
  Program entry = coll->program("entry");
  REQUIRE(entry);
  CHECK(RunValue(entry) == 42);  // entry -> stage_one -> stage_two, via .values

  // The graph knows the static entries and what uses the array.
  Map jmp = coll->map("jmp_table");
  REQUIRE(jmp);
  auto breaks = graph().WhatBreaks(jmp);
  REQUIRE_FALSE(breaks.empty());
  CHECK_THAT(breaks[0], Catch::Contains("jmp_table[0..1] will miss"));

  // Global data: .data was written before load, .bss counts runs.
  Map bss = coll->map(".bss");
  REQUIRE(bss);
  std::vector<uint8_t> value(bss.value_size());
  uint32_t zero = 0;
  REQUIRE(bss.Lookup(absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&zero), 4), absl::MakeSpan(value)).ok());
  uint64_t runs = 0;
  memcpy(&runs, value.data(), 8);
  CHECK(runs == 1);
  // .rodata is frozen: user space cannot change it any more.
  Map rodata = coll->map(".rodata");
  REQUIRE(rodata);
  std::vector<uint8_t> ro(rodata.value_size(), 0);
  CHECK_FALSE(rodata.Update(absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&zero), 4), ro).ok());
  // The by-name pin exists, in the directory given.
  CHECK(coll->created_pins() == std::vector<std::string>{dir.Sub("shared_counter")});
  REQUIRE(coll->map("shared_counter").Unpin().ok());
}

TEST_CASE("a constant rewritten in the spec changes what the program returns", "[collection]") {
  testing::TempPinDir dir;
  CollectionSpec spec = Spec();
  REQUIRE(spec.SetVariable("stage_two_result", uint32_t{7}).ok());
  CHECK_FALSE(spec.SetVariable("stage_two_result", uint64_t{7}).ok());  // wrong size
  auto coll = Collection::Load(spec, Options(dir));
  REQUIRE(coll.ok());
  CHECK(RunValue(coll->program("entry")) == 7);
  REQUIRE(coll->map("shared_counter").Unpin().ok());
}

TEST_CASE("pins by name are reused, checked, and refused when incompatible", "[collection][pin]") {
  testing::TempPinDir dir;
  uint32_t first_id;
  {
    auto a = Collection::Load(Spec(), Options(dir));
    REQUIRE(a.ok());
    first_id = a->map("shared_counter").id();
    RunValue(a->program("entry"));
  }
  // Every handle is gone, but the pin keeps the counter, which the next
  // load reuses instead of creating.
  auto b = Collection::Load(Spec(), Options(dir));
  REQUIRE(b.ok());
  CHECK(b->map("shared_counter").id() == first_id);
  CHECK(b->created_pins().empty());
  RunValue(b->program("entry"));
  uint64_t count = 0;
  REQUIRE(b->map("shared_counter").Lookup(uint32_t{0}, &count).ok());
  CHECK(count == 2);

  CollectionSpec bigger = Spec();
  bigger.FindMap("shared_counter")->max_entries = 2;
  auto c = Collection::Load(bigger, Options(dir));
  REQUIRE_FALSE(c.ok());
  std::string field;
  CHECK(IsIncompatiblePin(c.status(), &field));
  CHECK(field == "max_entries");
  CHECK_THAT(std::string(c.status().message()), Catch::Contains("shared_counter") &&
                                                     Catch::Contains("max_entries is 1 there but 2"));
  REQUIRE(b->map("shared_counter").Unpin().ok());

  CollectionOptions tmp;
  tmp.pin_dir = "/tmp";
  auto d = Collection::Load(Spec(), tmp);
  REQUIRE_FALSE(d.ok());
  CHECK_THAT(std::string(d.status().message()), Catch::Contains("not on bpffs"));
}

TEST_CASE("LoadAndAssign refuses to orphan a statically initialised array", "[collection][assign]") {
  testing::TempPinDir dir;
  CollectionSpec spec = Spec();
  Program entry;
  Map jmp;
  size_t fds = testing::CountOpenFds();
  auto refused = LoadAndAssign(spec, {{}, {{"entry", &entry}}}, Options(dir));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(refused.message()),
             Catch::Contains("jmp_table") && Catch::Contains("entry") && Catch::Contains("[0]=stage_one"));
  CHECK_FALSE(entry);
  CHECK(testing::CountOpenFds() == fds);
  CHECK(EntriesUnder(dir.path()) == 0);  // refused before anything was made

  REQUIRE(LoadAndAssign(spec, {{{"jmp_table", &jmp}}, {{"entry", &entry}}}, Options(dir)).ok());
  // stage_one and stage_two were loaded as dependencies and their handles
  // dropped; the array holds them.
  CHECK(RunValue(entry) == 42);
  auto ex = graph().Explain(jmp);
  CHECK_THAT(ex.ToString(), Catch::Contains("used by program 'entry'"));
  REQUIRE(Map::LoadPinned(dir.Sub("shared_counter"))->Unpin().ok());
}

TEST_CASE("LoadAndAssign accepts an array that is pinned or replaced", "[collection][assign]") {
  testing::TempPinDir dir;
  CollectionSpec spec = Spec();
  spec.FindMap("jmp_table")->pinning = PinType::kByName;
  Program entry;
  REQUIRE(LoadAndAssign(spec, {{}, {{"entry", &entry}}}, Options(dir)).ok());
  CHECK(RunValue(entry) == 42);
  {
    auto pinned = Map::LoadPinned(dir.Sub("jmp_table"));
    REQUIRE(pinned.ok());
    // kIgnore: entry lives only on its handle, so under kWarn the graph
    // would hold the array until entry goes (a deferred verdict, see
    // docs/lifecycle.md); this is about the kernel's rule.
    pinned->SetLifetimePolicy(LifetimePolicy::kIgnore);
    REQUIRE(pinned->Unpin().ok());
  }
  REQUIRE(Map::LoadPinned(dir.Sub("shared_counter"))->Unpin().ok());
  // After the unpin, nothing holds the array: the chain breaks.
  CHECK(testing::Eventually([&] { return RunValue(entry) == 100; }));

  CollectionSpec plain = Spec();
  auto mine = ProgramArray::Create("my_jmp", 4, LifetimePolicy::kIgnore);
  REQUIRE(mine.ok());
  CollectionOptions o = Options(dir);
  o.replace_maps.emplace("jmp_table", mine->map());
  Program entry2;
  REQUIRE(LoadAndAssign(plain, {{}, {{"entry", &entry2}}}, o).ok());
  CHECK(RunValue(entry2) == 42);  // the static entries went into my array
  CHECK(mine->Get(0)->has_value());
  REQUIRE(Map::LoadPinned(dir.Sub("shared_counter"))->Unpin().ok());
}

TEST_CASE("a failure at any bpf() call of a load leaves no fd and no pin", "[collection][faults]") {
  testing::TempPinDir dir;
  CollectionSpec spec = Spec();
  // Count the calls of a good load, then fail each one in turn.
  size_t fds_before = testing::CountOpenFds();
  sys::testing::StartCounting();
  {
    auto ok = Collection::Load(spec, Options(dir));
    REQUIRE(ok.ok());
    REQUIRE(ok->map("shared_counter").Unpin().ok());
  }
  uint64_t calls = sys::testing::CallCount();
  sys::testing::ClearFault();
  REQUIRE(calls > 10);
  REQUIRE(testing::CountOpenFds() == fds_before);

  SetDiagnosticSink([](const Diagnostic&) {});
  for (uint64_t n = 1; n <= calls; ++n) {
    for (int err : {ENOMEM, EPERM, EMFILE}) {
      INFO("failing call " << n << " of " << calls << " with errno " << err);
      sys::testing::InjectFault(n, err);
      auto coll = Collection::Load(spec, Options(dir));
      sys::testing::ClearFault();
      if (coll.ok()) {
        // Some calls are allowed to fail (probing BTF, retrying without
        // it); the load must then still be whole.
        CHECK(RunValue(coll->program("entry")) == 42);
        REQUIRE(coll->map("shared_counter").Unpin().ok());
        continue;
      }
      std::string msg(coll.status().message());
      CHECK_THAT(msg, Catch::Contains(std::string(sys::ErrnoName(err))));
      INFO(msg);
      CHECK((msg.find("map '") != std::string::npos || msg.find("program '") != std::string::npos ||
             msg.find("BTF") != std::string::npos));
    }
    CHECK(testing::CountOpenFds() == fds_before);
    CHECK(EntriesUnder(dir.path()) == 0);
  }
  // EINTR and EAGAIN are retried, so the load succeeds.
  for (int err : {EINTR}) {
    for (uint64_t n = 1; n <= calls; n += 3) {
      sys::testing::InjectFault(n, err);
      auto coll = Collection::Load(spec, Options(dir));
      sys::testing::ClearFault();
      INFO("EINTR at call " << n);
      REQUIRE(coll.ok());
      REQUIRE(coll->map("shared_counter").Unpin().ok());
    }
  }
  SetDiagnosticSink(nullptr);
  CHECK(testing::CountOpenFds() == fds_before);
}

namespace {

int HighestOpenFd() {
  int highest = 2;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (struct dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') highest = std::max(highest, atoi(e->d_name));
    }
    closedir(d);
  }
  return highest;
}

}  // namespace

TEST_CASE("EMFILE from a lowered RLIMIT_NOFILE at any point of a load leaves nothing behind",
          "[collection][faults]") {
  testing::TempPinDir dir;
  CollectionSpec spec = Spec();
  SetDiagnosticSink([](const Diagnostic&) {});
  // New fds take the lowest free number, so fill the holes below the
  // highest open fd: then the limit counts exactly the fds the load opens.
  const int highest = HighestOpenFd();
  std::vector<int> fillers;
  for (;;) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) break;
    fillers.push_back(fd);
    if (fd > highest) break;  // every hole is taken
  }
  size_t fds_before = testing::CountOpenFds();
  struct rlimit saved;
  REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0);
  const int base = HighestOpenFd() + 1;
  int failures = 0;
  bool loaded = false;
  for (int room = 0; room <= 40 && !loaded; ++room) {
    INFO("fds allowed above the current ones: " << room);
    struct rlimit low = saved;
    low.rlim_cur = static_cast<rlim_t>(base + room);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
    absl::StatusOr<Collection> coll = Collection::Load(spec, Options(dir));
    REQUIRE(setrlimit(RLIMIT_NOFILE, &saved) == 0);
    if (coll.ok()) {
      // Enough room: the load is whole and works.
      CHECK(RunValue(coll->program("entry")) == 42);
      REQUIRE(coll->map("shared_counter").Unpin().ok());
      loaded = true;
    } else {
      ++failures;
      std::string msg(coll.status().message());
      INFO(msg);
      // The error is the fd table's, and names what could not be made.
      CHECK((msg.find("EMFILE") != std::string::npos || msg.find("ENFILE") != std::string::npos ||
             msg.find("Too many open files") != std::string::npos));
      CHECK((msg.find("map '") != std::string::npos || msg.find("program '") != std::string::npos ||
             msg.find("BTF") != std::string::npos));
    }
    coll = absl::UnknownError("dropped");
    CHECK(testing::CountOpenFds() == fds_before);
    CHECK(EntriesUnder(dir.path()) == 0);
  }
  SetDiagnosticSink(nullptr);
  for (int fd : fillers) close(fd);
  CHECK(loaded);
  CHECK(failures >= 3);  // the limit hit the load at several different steps
}

TEST_CASE("a verifier failure names the program and carries the log", "[collection]") {
  testing::TempPinDir dir;
  CollectionSpec spec = Spec();
  ProgramSpec* p = spec.FindProgram("stage_two");
  REQUIRE(p != nullptr);
  // A body that exits before r0 is set, which the verifier rejects.
  p->code.insns = {insn::Exit()};
  p->code.references.clear();
  p->code.func_info.clear();
  p->code.line_info.clear();
  size_t fds = testing::CountOpenFds();
  auto coll = Collection::Load(spec, Options(dir));
  REQUIRE_FALSE(coll.ok());
  std::string msg(coll.status().message());
  CHECK_THAT(msg, Catch::Contains("program 'stage_two'") && Catch::Contains("verifier log") &&
                      Catch::Contains("R0 !read_ok"));
  CHECK(testing::CountOpenFds() == fds);
  CHECK(EntriesUnder(dir.path()) == 0);  // the pin the load made is gone again
}

namespace {

struct CorpusRow {
  std::string file, parse, load, exercises, note;
};

std::vector<CorpusRow> CorpusRows(const std::string& dir) {
  std::vector<CorpusRow> rows;
  std::ifstream in(dir + "/EXPECTED.tsv");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<std::string> cols;
    std::stringstream ss(line);
    std::string col;
    while (std::getline(ss, col, '\t')) cols.push_back(col);
    cols.resize(5);
    rows.push_back({cols[0], cols[1], cols[2], cols[3], cols[4]});
  }
  return rows;
}

}  // namespace

TEST_CASE("corpus: objects loadable here load", "[collection][corpus]") {
  std::string dir = std::string(TETHER_SOURCE_DIR) + "/test/corpus";
  auto rows = CorpusRows(dir);
  REQUIRE(rows.size() == 36);
  testing::TempPinDir pins;
  int loaded = 0;
  for (const CorpusRow& row : rows) {
    if (row.load != "ok") continue;
    INFO(row.file << ": " << row.exercises);
    auto spec = CollectionSpec::FromFile(dir + "/" + row.file);
    REQUIRE(spec.ok());
    // Objects with CO-RE relocations (manyprogs, relocs_enum) relocate
    // against the running kernel like any other load.
    std::string missing, refused_type;
    for (const auto& [name, m] : spec->maps) {
      absl::Status have = probe::HaveMapType(m.type);
      if (probe::AnswerOf(have) == probe::Answer::kMissing) missing = std::string(have.message());
      if (probe::AnswerOf(have) == probe::Answer::kRefused) refused_type = MapTypeName(m.type);
    }
    if (!missing.empty()) {
      WARN("SKIPPED (probe map_type) " << row.file << ": " << missing);
      continue;
    }
    CollectionOptions o;
    o.pin_dir = pins.path();
    // Sections such as "other" say nothing: those functions are callees, and
    // the load skips them.
    auto coll = Collection::Load(*spec, o);
    INFO(coll.status().ToString());
    if (!refused_type.empty()) {
      // This kernel refuses one of the object's map types: the load says
      // so rather than failing obscurely.
      CHECK(absl::IsPermissionDenied(coll.status()));
      CHECK_THAT(std::string(coll.status().message()),
                 Catch::Contains(row.file) && Catch::Contains("refused by this kernel") &&
                     Catch::Contains("probe map_type:" + refused_type + ": refused here"));
      WARN("SKIPPED (probe map_type:" << refused_type << ") " << row.file << ": refused here");
      continue;
    }
    CHECK(coll.ok());
    if (!coll.ok()) continue;
    ++loaded;
    if (row.file.rfind("loader-", 0) == 0 || row.file == "loader_nobtf-el.elf") {
      Program xdp = coll->program("xdp_prog");
      REQUIRE(xdp);
      std::vector<uint8_t> pkt(64, 0);
      RunOptions ro;
      ro.data = pkt;
      auto r = xdp.Run(ro);
      REQUIRE(r.ok());
      CHECK(r->return_value == 7);
      CHECK(coll->skipped_programs() == std::vector<std::string>{"global_fn3"});
    }
    for (const std::string& pin : coll->created_pins()) unlink(pin.c_str());
  }
  CHECK(loaded >= 10);
}

TEST_CASE("legacy map-in-map definitions get their inner maps, in both old layouts",
          "[collection][elf][legacy]") {
  auto spec = CollectionSpec::FromFile(testing::BpfObjectPath("legacy_inner_maps"));
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  // samples/bpf: inner_map_idx 0 is the template of samples_outer.
  const MapSpec& samples = spec->maps.at("samples_outer");
  REQUIRE(samples.inner != nullptr);
  CHECK(samples.inner->value_size == 8);
  CHECK(samples.inner->max_entries == 2);
  CHECK(samples.init.empty());
  // iproute2: ip_inner names ip_outer (id 7) and slot 3.
  const MapSpec& ip = spec->maps.at("ip_outer");
  REQUIRE(ip.inner != nullptr);
  CHECK(ip.inner->value_size == 8);
  REQUIRE(ip.init.size() == 1);
  CHECK(ip.init[0].key == 3);
  CHECK(ip.init[0].name == "ip_inner");

  testing::TempPinDir dir;
  auto coll = Collection::Load(*spec, Options(dir));
  INFO(coll.status().ToString());
  REQUIRE(coll.ok());
  // The static entry is in place: a program reads ip_outer[3][0].
  uint64_t value = 77;
  REQUIRE(coll->map("ip_inner").Update(uint32_t{0}, value).ok());
  CHECK(RunValue(coll->program("read_through_outer")) == 77);
  uint32_t inner_id = 0;
  REQUIRE(coll->map("ip_outer").Lookup(uint32_t{3}, &inner_id).ok());
  CHECK(inner_id == coll->map("ip_inner").id());
  // samples_outer was created with its template, so the template's twin fits.
  CHECK(RunValue(coll->program("read_samples")) == 1);  // empty slot
  uint32_t inner_fd = static_cast<uint32_t>(coll->map("samples_inner").fd());
  REQUIRE(coll->map("samples_outer").Update(uint32_t{0}, inner_fd).ok());
  value = 5;
  REQUIRE(coll->map("samples_inner").Update(uint32_t{0}, value).ok());
  CHECK(RunValue(coll->program("read_samples")) == 5);
}

TEST_CASE("BPF_F_LOCK updates and lookups on a map whose value holds a spin lock",
          "[collection][map][lock]") {
  // map_spin_lock-el.elf: hash u32 -> struct hash_elem { int cnt; struct bpf_spin_lock lock; }.
  auto spec = CollectionSpec::FromFile(std::string(TETHER_SOURCE_DIR) +
                                       "/test/corpus/map_spin_lock-el.elf");
  REQUIRE(spec.ok());
  testing::TempPinDir dir;
  auto coll = Collection::Load(*spec, Options(dir));
  INFO(coll.status().ToString());
  REQUIRE(coll.ok());
  Map m = coll->map("spin_lock_map");
  REQUIRE(m.value_size() == 8);
  struct LockedValue {
    int32_t cnt;
    uint32_t lock;
  };
  REQUIRE(m.Update(uint32_t{1}, LockedValue{1234, 0}, UpdateFlag::kAny | UpdateFlag::kLock).ok());
  LockedValue got{0, 99};
  REQUIRE(m.Lookup(uint32_t{1}, &got, UpdateFlag::kLock).ok());
  CHECK(got.cnt == 1234);
  CHECK(got.lock == 0);  // the kernel never copies the lock itself out
  // NOEXIST with the lock: the key is there, so the kernel refuses.
  absl::Status again = m.Update(uint32_t{1}, LockedValue{1, 0}, UpdateFlag::kNoExist | UpdateFlag::kLock);
  CHECK_FALSE(again.ok());
  CHECK_THAT(std::string(again.message()), Catch::Contains("EEXIST"));
  // A map without a spin lock refuses BPF_F_LOCK, and says which map.
  auto plain = Map::Create({.type = BPF_MAP_TYPE_HASH, .key_size = 4, .value_size = 8,
                            .max_entries = 2, .name = "no_lock"});
  REQUIRE(plain.ok());
  absl::Status refused = plain->Update(uint32_t{1}, LockedValue{1, 0}, UpdateFlag::kLock);
  CHECK_FALSE(refused.ok());
  CHECK_THAT(std::string(refused.message()), Catch::Contains("no_lock") && Catch::Contains("EINVAL"));
}

namespace {

std::string CorpusPath(const std::string& file) {
  return std::string(TETHER_SOURCE_DIR) + "/test/corpus/" + file;
}

CollectionSpec CorpusSpec(const std::string& file) {
  auto spec = CollectionSpec::FromFile(CorpusPath(file));
  INFO(file << ": " << spec.status().ToString());
  REQUIRE(spec.ok());
  return *std::move(spec);
}

// Loads one program (and what it needs) through LoadAndAssign.
absl::Status LoadOne(const CollectionSpec& spec, const std::string& name, Program* out,
                     const CollectionOptions& o = {}) {
  return LoadAndAssign(spec, {{}, {{name, out}}}, o);
}

}  // namespace

// EXPECTED.tsv says more than "loads": what the programs return, which
// loads are conditional on a change, and which programs of an object load.
TEST_CASE("corpus: what EXPECTED.tsv says beyond 'loads'", "[collection][corpus]") {
  testing::TempPinDir dir;
  SECTION("btf_map_init: the static tail call returns 42; without the array the load is refused") {
    CollectionSpec spec = CorpusSpec("btf_map_init-el.elf");
    auto coll = Collection::Load(spec, Options(dir));
    INFO(coll.status().ToString());
    REQUIRE(coll.ok());
    CHECK(RunValue(coll->program("tail_main")) == 42);
    Program main_only;
    size_t fds = testing::CountOpenFds();
    absl::Status refused = LoadOne(spec, "tail_main", &main_only);
    CHECK_FALSE(refused.ok());
    CHECK_THAT(std::string(refused.message()),
               Catch::Contains("prog_array_init") && Catch::Contains("tail_main"));
    CHECK_FALSE(static_cast<bool>(main_only));
    CHECK(testing::CountOpenFds() == fds);
    Map array;
    REQUIRE(LoadAndAssign(spec, {{{"prog_array_init", &array}}, {{"tail_main", &main_only}}}).ok());
    CHECK(RunValue(main_only) == 42);
  }
  SECTION("subprog_reloc returns 42, kconfig 0, every program of linked 0") {
    CollectionSpec sub = CorpusSpec("subprog_reloc-el.elf");
    Program fp;
    REQUIRE(LoadOne(sub, "fp_relocation", &fp).ok());
    CHECK(RunValue(fp) == 42);
    CollectionSpec kconfig = CorpusSpec("kconfig-el.elf");
    Program k;
    absl::Status st = LoadOne(kconfig, "kconfig", &k);
    INFO(st.ToString());
    REQUIRE(st.ok());
    CHECK(RunValue(k) == 0);
    auto linked = Collection::Load(CorpusSpec("linked-el.elf"), Options(dir));
    REQUIRE(linked.ok());
    REQUIRE(linked->programs().size() == 5);
    for (const auto& [name, p] : linked->programs()) {
      INFO(name);
      CHECK(RunValue(p) == 0);
    }
  }
  SECTION("constants: refused as shipped, loads once the constant is rewritten") {
    CollectionSpec spec = CorpusSpec("constants-el.elf");
    auto shipped = Collection::Load(spec, Options(dir));
    REQUIRE_FALSE(shipped.ok());
    CHECK_THAT(std::string(shipped.status().message()),
               Catch::Contains("freeze_rodata") && Catch::Contains("verifier log"));
    REQUIRE(spec.SetVariable("ret", uint32_t{1}).ok());
    auto fixed = Collection::Load(spec, Options(dir));
    INFO(fixed.status().ToString());
    CHECK(fixed.ok());
  }
  SECTION("iproute2_map_compat: pinning 2 pins by name in the pin directory") {
    auto coll = Collection::Load(CorpusSpec("iproute2_map_compat-el.elf"), Options(dir));
    INFO(coll.status().ToString());
    REQUIRE(coll.ok());
    CHECK(coll->created_pins() == std::vector<std::string>{dir.Sub("hash_map")});
    auto pinned = Map::LoadPinned(dir.Sub("hash_map"));
    REQUIRE(pinned.ok());
    CHECK(pinned->id() == coll->map("hash_map").id());
    REQUIRE(pinned->Unpin().ok());
  }
  SECTION("relocs_read: loads against relocs_read_tgt's BTF and returns 0, not against vmlinux") {
    CollectionSpec target = CorpusSpec("relocs_read_tgt-el.elf");
    REQUIRE(target.btf.has_value());
    CollectionSpec spec = CorpusSpec("relocs_read-el.elf");
    CollectionOptions o = Options(dir);
    o.core_target = &*target.btf;
    Program reads;
    absl::Status st = LoadOne(spec, "reads", &reads, o);
    INFO(st.ToString());
    REQUIRE(st.ok());
    CHECK(RunValue(reads) == 0);
    Program against_vmlinux;
    CHECK_FALSE(LoadOne(spec, "reads", &against_vmlinux).ok());
  }
  SECTION("ksym: the non-weak missing ksyms fail and name themselves; the weak ones load") {
    CollectionSpec spec = CorpusSpec("ksym-el.elf");
    for (const char* name : {"missing_ksym_test", "missing_typed_ksym_test"}) {
      Program p;
      absl::Status st = LoadOne(spec, name, &p);
      INFO(name << ": " << st.ToString());
      CHECK_FALSE(st.ok());
      CHECK_THAT(std::string(st.message()), Catch::Contains(name));
    }
    for (const char* name : {"ksym_test", "missing_weak_ksym_test", "missing_weak_typed_ksym_test"}) {
      Program p;
      absl::Status st = LoadOne(spec, name, &p);
      INFO(name << ": " << st.ToString());
      CHECK(st.ok());
    }
  }
}

// kfunc-el.elf's row is "partial": which of its programs load depends on
// the kernel. The conntrack kfuncs of call_kfunc live in nf_conntrack,
// a module on Debian's 6.1 (module BTF, an fd_array slot) and built in on
// the host; benchmark is an fentry program calling a kfunc, which needs
// trampolines and a kernel that allows the call.
TEST_CASE("corpus kfunc: the programs that load, and the fentry one refused where it cannot be",
          "[collection][corpus][kfunc]") {
  (void)system("modprobe nf_conntrack >/dev/null 2>&1");
  CollectionSpec spec = CorpusSpec("kfunc-el.elf");
  for (const char* name : {"call_kfunc", "call_weak_kfunc", "weak_kfunc_missing"}) {
    Program p;
    absl::Status st = LoadOne(spec, name, &p);
    INFO(name << ": " << st.ToString());
    CHECK(st.ok());
  }
  Program bench;
  absl::Status st = LoadOne(spec, "benchmark", &bench);
  INFO(st.ToString());
  // Where trampolines work it may still be refused: 6.1 lets no fentry
  // program call bpf_fentry_test1 as a kfunc ("calling kernel function ...
  // is not allowed"). Refused, the error names the program and the reason.
  if (!probe::HaveTrampolines().ok()) CHECK_FALSE(st.ok());
  if (!st.ok()) {
    CHECK_THAT(std::string(st.message()), Catch::Contains("benchmark") && Catch::Contains("BPF_PROG_LOAD"));
  }
}

TEST_CASE("collection options: per-map and default lifetime policies, program type overrides",
          "[collection][options]") {
  testing::TempPinDir dir;
  SetDiagnosticSink([](const Diagnostic&) {});
  SECTION("map_policies: the array outlives the collection under KeepAlive") {
    CollectionOptions o = Options(dir);
    o.map_policies.emplace("jmp_table", LifetimePolicy::kKeepAlive);
    Program entry;
    uint32_t array_id = 0;
    {
      auto coll = Collection::Load(Spec(), o);
      REQUIRE(coll.ok());
      entry = coll->program("entry");
      array_id = coll->map("jmp_table").id();
      REQUIRE(coll->map("shared_counter").Unpin().ok());
    }
    // Every handle of the array is gone with the collection; the policy
    // kept its fd, so the chain still runs.
    CHECK(RunValue(entry) == 42);
    auto node = graph().Node(NodeRef{NodeKind::kMap, array_id});
    REQUIRE(node.has_value());
    CHECK(node->kept_alive);
    CHECK(graph().ReleaseKept() >= 1);
    CHECK(testing::Eventually([&] { return RunValue(entry) == 100; }));
  }
  SECTION("default_map_policy applies where no entry names the map; a named entry wins") {
    for (bool named_ignore : {false, true}) {
      INFO("jmp_table named Ignore: " << named_ignore);
      CollectionOptions o = Options(dir);
      o.default_map_policy = LifetimePolicy::kKeepAlive;
      if (named_ignore) o.map_policies.emplace("jmp_table", LifetimePolicy::kIgnore);
      Program entry;
      {
        auto coll = Collection::Load(Spec(), o);
        REQUIRE(coll.ok());
        entry = coll->program("entry");
        REQUIRE(coll->map("shared_counter").Unpin().ok());
      }
      if (named_ignore) {
        CHECK(testing::Eventually([&] { return RunValue(entry) == 100; }));
        CHECK(graph().ReleaseKept() == 0);
      } else {
        CHECK(RunValue(entry) == 42);
        CHECK(graph().ReleaseKept() >= 1);
        CHECK(testing::Eventually([&] { return RunValue(entry) == 100; }));
      }
    }
  }
  SECTION("program_types: an override wins over the section") {
    CollectionOptions o = Options(dir);
    // stage_two is a socket filter; as a tc classifier the verifier takes
    // the same body, and the kernel reports the new type.
    o.program_types.emplace("stage_two", BPF_PROG_TYPE_SCHED_CLS);
    CollectionSpec spec = Spec();
    Program stage_two;
    REQUIRE(LoadAndAssign(spec, {{}, {{"stage_two", &stage_two}}}, o).ok());
    CHECK(stage_two.type() == BPF_PROG_TYPE_SCHED_CLS);
  }
  SetDiagnosticSink(nullptr);
}

TEST_CASE("a pinned devmap is reused although the kernel adds BPF_F_RDONLY_PROG to it",
          "[collection][pin]") {
  testing::TempPinDir dir;
  CollectionSpec spec = Spec();
  MapSpec devmap;
  devmap.name = "pinned_devmap";
  devmap.type = BPF_MAP_TYPE_DEVMAP;
  devmap.key_size = 4;
  devmap.value_size = 4;
  devmap.max_entries = 2;
  devmap.pinning = PinType::kByName;
  spec.maps.emplace(devmap.name, std::move(devmap));
  uint32_t first_id = 0;
  {
    auto a = Collection::Load(spec, Options(dir));
    INFO(a.status().ToString());
    REQUIRE(a.ok());
    first_id = a->map("pinned_devmap").id();
    // What the spec did not ask for: the normalisation exists for this.
    CHECK((a->map("pinned_devmap").flags() & BPF_F_RDONLY_PROG) != 0);
  }
  auto b = Collection::Load(spec, Options(dir));
  INFO(b.status().ToString());
  REQUIRE(b.ok());
  CHECK(b->map("pinned_devmap").id() == first_id);
  REQUIRE(b->map("pinned_devmap").Unpin().ok());
  REQUIRE(b->map("shared_counter").Unpin().ok());
}

TEST_CASE("a ring buffer of a size the kernel refuses is rounded up, and its pin is reused",
          "[collection][pin]") {
  testing::TempPinDir dir;
  const uint32_t page = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
  CollectionSpec spec = Spec();
  MapSpec ring;
  ring.name = "odd_ring";
  ring.type = BPF_MAP_TYPE_RINGBUF;
  ring.max_entries = 2 * page + 1;  // neither a page multiple nor a power of 2
  ring.pinning = PinType::kByName;
  spec.maps.emplace(ring.name, std::move(ring));
  uint32_t first_id = 0;
  {
    auto a = Collection::Load(spec, Options(dir));
    INFO(a.status().ToString());
    REQUIRE(a.ok());
    CHECK(a->map("odd_ring").max_entries() == 4 * page);
    first_id = a->map("odd_ring").id();
  }
  CHECK(spec.FindMap("odd_ring")->max_entries == 2 * page + 1);  // the spec says what was asked
  auto b = Collection::Load(spec, Options(dir));
  INFO(b.status().ToString());
  REQUIRE(b.ok());
  CHECK(b->map("odd_ring").id() == first_id);
  // A spec that rounds to another size is not the pinned map.
  spec.FindMap("odd_ring")->max_entries = 4 * page + 1;
  auto c = Collection::Load(spec, Options(dir));
  REQUIRE_FALSE(c.ok());
  CHECK_THAT(std::string(c.status().message()), Catch::Contains("max_entries"));
  REQUIRE(b->map("odd_ring").Unpin().ok());
  REQUIRE(b->map("shared_counter").Unpin().ok());
}

TEST_CASE("log_level keeps each program's verifier log, with source lines from line_info",
          "[collection][options]") {
  testing::TempPinDir dir;
  CollectionOptions o = Options(dir);
  auto quiet = Collection::Load(Spec(), o);
  REQUIRE(quiet.ok());
  CHECK(quiet->verifier_log("entry").empty());
  REQUIRE(quiet->map("shared_counter").Unpin().ok());
  o.log_level = 2;
  auto coll = Collection::Load(Spec(), o);
  INFO(coll.status().ToString());
  REQUIRE(coll.ok());
  const std::string& log = coll->verifier_log("entry");
  INFO(log.substr(0, 2000));
  // The verifier prints the C line before the instructions it made: proof
  // that line_info (and the BTF behind it) reached the kernel.
  CHECK_THAT(log, Catch::Contains("; ") && Catch::Contains("bpf_tail_call"));
  CHECK_THAT(log, Catch::Contains("processed"));
  CHECK(coll->verifier_log("no_such_program").empty());
  REQUIRE(coll->map("shared_counter").Unpin().ok());
}
