#include "load_common.h"

#include <bpf/libbpf.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tether/collection.h"
#include "tether/collection_spec.h"
#include "tether/lifetime.h"

namespace tether::bench {

extern std::atomic<bool> g_count_prog_load;
extern std::atomic<uint64_t> g_prog_load_ns;
extern std::atomic<uint64_t> g_prog_load_calls;
extern std::atomic<uint64_t> g_bpf_ns;
extern std::atomic<uint64_t> g_bpf_calls;

void CountProgLoad(bool on) { g_count_prog_load.store(on); }
uint64_t ProgLoadNanos() { return g_prog_load_ns.load(); }
uint64_t ProgLoadCalls() { return g_prog_load_calls.load(); }
uint64_t BpfNanos() { return g_bpf_ns.load(); }
uint64_t BpfCalls() { return g_bpf_calls.load(); }
void ResetProgLoad() {
  g_prog_load_ns.store(0);
  g_prog_load_calls.store(0);
  g_bpf_ns.store(0);
  g_bpf_calls.store(0);
}

namespace {

// Sized before reading: growing the vector as it reads would leave a heap
// peak of about twice the file before any load, which massif would then
// report as the peak of a no-load run (bench/profile_agent_load.py).
std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  std::streamoff size = in.tellg();
  if (size <= 0) return {};
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), size);
  bytes.resize(static_cast<size_t>(in.gcount()));
  return bytes;
}

// libbpf prints every warning to stderr by default; the benchmarks only
// want its return codes.
int Quiet(enum libbpf_print_level, const char*, va_list) { return 0; }

void Setup() {
  static bool done = [] {
    libbpf_set_print(Quiet);
    // Dropping a loaded collection's array is the point of a load-close
    // loop here, not a mistake to warn about.
    SetDiagnosticSink([](const Diagnostic&) {});
    return true;
  }();
  (void)done;
}

// The conformance corpus: the copy in the tree, else the shared one next
// to the checkout, as test/elf_reader_test.cc looks for it.
const std::string& CorpusDir() {
  static const std::string dir = [] {
    for (std::string d : {std::string(TETHER_SOURCE_DIR) + "/test/corpus",
                          std::string(TETHER_SOURCE_DIR) + "/../shared/corpus"}) {
      struct stat st;
      if (stat((d + "/EXPECTED.tsv").c_str(), &st) == 0) return d;
    }
    return std::string(TETHER_SOURCE_DIR) + "/test/corpus";
  }();
  return dir;
}

std::vector<std::pair<std::string, std::string>> CorpusRows() {
  std::vector<std::pair<std::string, std::string>> rows;  // file, "parse\tload"
  std::ifstream in(CorpusDir() + "/EXPECTED.tsv");
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::vector<std::string> cols = absl::StrSplit(line, '\t');
    if (cols.size() >= 3) rows.emplace_back(cols[0], cols[1] + "\t" + cols[2]);
  }
  return rows;
}

// The load benchmarks use the test objects made to load as a whole; the
// others (verifier_reject, bad_*, kfuncs a kernel may lack) would only be
// left out by LoadSet.
const char* const kLoadTestObjects[] = {"collection", "elf_maps", "elf_code", "skel_types"};

BenchObject TestObject(absl::string_view name) {
  std::string file = absl::StrCat(name, ".bpf.o");
  return {file, ReadFile(absl::StrCat(TETHER_TEST_BPF_DIR, "/", file))};
}

// elf_open/* parses every test object and every corpus object, whatever
// EXPECTED.tsv says of it; ElfOpenSet keeps those both loaders open.
std::vector<BenchObject> OpenCandidates() {
  std::vector<BenchObject> out;
  for (absl::string_view t : absl::StrSplit(TETHER_BENCH_TEST_OBJECTS, ',', absl::SkipEmpty())) {
    out.push_back(TestObject(t));
  }
  std::vector<std::string> files;
  if (DIR* d = opendir(CorpusDir().c_str())) {
    while (dirent* e = readdir(d)) {
      absl::string_view n = e->d_name;
      if (n.size() > 4 && n.substr(n.size() - 4) == ".elf") files.emplace_back(n);
    }
    closedir(d);
  }
  std::sort(files.begin(), files.end());
  for (const std::string& f : files) out.push_back({f, ReadFile(CorpusDir() + "/" + f)});
  return out;
}

std::vector<BenchObject> LoadCandidates() {
  std::vector<BenchObject> out;
  for (const char* t : kLoadTestObjects) out.push_back(TestObject(t));
  for (const auto& [file, expect] : CorpusRows()) {
    if (expect != "ok\tok") continue;
    out.push_back({file, ReadFile(CorpusDir() + "/" + file)});
  }
  return out;
}

}  // namespace

const BenchObject& AgentObject() {
  static const BenchObject agent{"agent.bpf.o", ReadFile(TETHER_BENCH_AGENT_OBJ)};
  return agent;
}

absl::Status TetherOpen(const BenchObject& o) {
  auto spec = CollectionSpec::FromMemory(o.bytes, o.name);
  return spec.status();
}

absl::Status LibbpfOpen(const BenchObject& o) {
  Setup();
  LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = o.name.c_str());
  bpf_object* obj = bpf_object__open_mem(o.bytes.data(), o.bytes.size(), &opts);
  if (!obj) return absl::InternalError(absl::StrCat(o.name, ": libbpf open: ", strerror(errno)));
  bpf_object__close(obj);
  return absl::OkStatus();
}

namespace {

absl::Status TetherLoadWith(const BenchObject& o, const std::string& pin_dir, uint32_t threads) {
  Setup();
  auto spec = CollectionSpec::FromMemory(o.bytes, o.name);
  if (!spec.ok()) return spec.status();
  CollectionOptions opts;
  opts.load_threads = threads;
  opts.pin_dir = pin_dir;
  opts.default_program_type = BPF_PROG_TYPE_SOCKET_FILTER;
  auto coll = Collection::Load(*spec, opts);
  if (!coll.ok()) return coll.status();
  for (const std::string& pin : coll->created_pins()) unlink(pin.c_str());
  return absl::OkStatus();
}

}  // namespace

absl::Status TetherLoad(const BenchObject& o, const std::string& pin_dir) {
  return TetherLoadWith(o, pin_dir, 0);
}

absl::Status TetherLoadSerial(const BenchObject& o, const std::string& pin_dir) {
  return TetherLoadWith(o, pin_dir, 1);
}

bpf_object* LibbpfLoadKeep(const BenchObject& o, const std::string& pin_dir, absl::Status* status) {
  Setup();
  LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = o.name.c_str(), .pin_root_path = pin_dir.c_str());
  bpf_object* obj = bpf_object__open_mem(o.bytes.data(), o.bytes.size(), &opts);
  if (!obj) {
    *status = absl::InternalError(absl::StrCat(o.name, ": libbpf open: ", strerror(errno)));
    return nullptr;
  }
  bpf_program* p;
  bpf_object__for_each_program(p, obj) {
    if (bpf_program__type(p) == BPF_PROG_TYPE_UNSPEC) bpf_program__set_type(p, BPF_PROG_TYPE_SOCKET_FILTER);
  }
  int err = bpf_object__load(obj);
  if (err) {
    *status = absl::InternalError(absl::StrCat(o.name, ": libbpf load: ", strerror(-err)));
    bpf_object__close(obj);
    return nullptr;
  }
  *status = absl::OkStatus();
  return obj;
}

absl::Status LibbpfLoad(const BenchObject& o, const std::string& pin_dir) {
  absl::Status st;
  bpf_object* obj = LibbpfLoadKeep(o, pin_dir, &st);
  if (!obj) return st;
  bpf_map* m;
  bpf_object__for_each_map(m, obj) {
    if (bpf_map__is_pinned(m)) bpf_map__unpin(m, nullptr);
  }
  bpf_object__close(obj);
  return absl::OkStatus();
}

std::string MakePinDir() {
  char tmpl[] = "/sys/fs/bpf/tether-bench-XXXXXX";
  if (!mkdtemp(tmpl)) return "";
  return tmpl;
}

void RemovePinDir(const std::string& dir) {
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') unlink((dir + "/" + e->d_name).c_str());
    }
    closedir(d);
  }
  rmdir(dir.c_str());
}

const std::vector<BenchObject>& ElfOpenSet(std::vector<std::string>* left_out,
                                           ElfOpenRefusals* refusals) {
  static std::vector<std::string> out_names;
  static ElfOpenRefusals counts;
  static const std::vector<BenchObject> set = [] {
    // An object either loader refuses is left out of both sides: a refusal
    // returns early (libbpf at its first bad section, tether at the first
    // precise error), so timing it on one side only would compare unequal
    // work. Said once on stderr, so a shrinking set does not go unseen.
    std::vector<BenchObject> keep;
    std::vector<BenchObject> candidates = OpenCandidates();
    counts.candidates = candidates.size();
    for (BenchObject& o : candidates) {
      absl::Status t = TetherOpen(o), l = LibbpfOpen(o);
      if (t.ok() && l.ok()) {
        keep.push_back(std::move(o));
        continue;
      }
      counts.tether += !t.ok();
      counts.libbpf += !l.ok();
      // Both messages start with the object's name already.
      out_names.push_back(absl::StrCat(o.name, t.ok() ? "" : " (tether refuses)",
                                       l.ok() ? "" : " (libbpf refuses)", ": ",
                                       t.ok() ? l.message() : t.message().substr(0, 160)));
    }
    fprintf(stderr, "elf_open: %zu of %zu objects (test objects and %s/*.elf) open in both loaders",
            keep.size(), counts.candidates, CorpusDir().c_str());
    if (out_names.empty()) {
      fprintf(stderr, "\n");
    } else {
      fprintf(stderr, "; left out of both sides:\n");
      for (const std::string& n : out_names) fprintf(stderr, "  %s\n", n.c_str());
    }
    return keep;
  }();
  if (left_out) *left_out = out_names;
  if (refusals) *refusals = counts;
  return set;
}

const std::vector<BenchObject>& LoadSet(std::vector<std::string>* left_out) {
  static std::vector<std::string> out_names;
  static const std::vector<BenchObject> set = [] {
    std::vector<BenchObject> keep;
    std::string dir = MakePinDir();
    for (BenchObject& o : LoadCandidates()) {
      absl::Status t = TetherLoad(o, dir), l = LibbpfLoad(o, dir);
      if (t.ok() && l.ok()) {
        keep.push_back(std::move(o));
      } else {
        out_names.push_back(absl::StrCat(o.name, t.ok() ? "" : " (tether: " + std::string(t.message().substr(0, 80)) + ")",
                                         l.ok() ? "" : " (libbpf: " + std::string(l.message()) + ")"));
      }
    }
    RemovePinDir(dir);
    return keep;
  }();
  if (left_out) *left_out = out_names;
  return set;
}

}  // namespace tether::bench
