#include "load_common.h"

#include <bpf/libbpf.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

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

void CountProgLoad(bool on) { g_count_prog_load.store(on); }
uint64_t ProgLoadNanos() { return g_prog_load_ns.load(); }
uint64_t ProgLoadCalls() { return g_prog_load_calls.load(); }
void ResetProgLoad() {
  g_prog_load_ns.store(0);
  g_prog_load_calls.store(0);
}

namespace {

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
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

std::vector<std::pair<std::string, std::string>> CorpusRows() {
  std::vector<std::pair<std::string, std::string>> rows;  // file, "parse\tload"
  std::ifstream in(std::string(TETHER_SOURCE_DIR) + "/test/corpus/EXPECTED.tsv");
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::vector<std::string> cols = absl::StrSplit(line, '\t');
    if (cols.size() >= 3) rows.emplace_back(cols[0], cols[1] + "\t" + cols[2]);
  }
  return rows;
}

const char* const kTestObjects[] = {"collection", "elf_maps", "elf_code", "skel_types"};

std::vector<BenchObject> Candidates(bool for_load) {
  std::vector<BenchObject> out;
  for (const char* t : kTestObjects) {
    std::string path = absl::StrCat(TETHER_TEST_BPF_DIR, "/", t, ".bpf.o");
    out.push_back({absl::StrCat(t, ".bpf.o"), ReadFile(path)});
  }
  for (const auto& [file, expect] : CorpusRows()) {
    if (for_load ? expect != "ok\tok" : expect.rfind("ok\t", 0) != 0) continue;
    out.push_back({file, ReadFile(std::string(TETHER_SOURCE_DIR) + "/test/corpus/" + file)});
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

absl::Status TetherLoad(const BenchObject& o, const std::string& pin_dir) {
  Setup();
  auto spec = CollectionSpec::FromMemory(o.bytes, o.name);
  if (!spec.ok()) return spec.status();
  CollectionOptions opts;
  opts.pin_dir = pin_dir;
  opts.default_program_type = BPF_PROG_TYPE_SOCKET_FILTER;
  auto coll = Collection::Load(*spec, opts);
  if (!coll.ok()) return coll.status();
  for (const std::string& pin : coll->created_pins()) unlink(pin.c_str());
  return absl::OkStatus();
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

const std::vector<BenchObject>& ElfOpenSet(std::vector<std::string>* left_out) {
  static std::vector<std::string> out_names;
  static const std::vector<BenchObject> set = [] {
    std::vector<BenchObject> keep;
    for (BenchObject& o : Candidates(false)) {
      absl::Status t = TetherOpen(o), l = LibbpfOpen(o);
      if (t.ok() && l.ok()) {
        keep.push_back(std::move(o));
      } else {
        out_names.push_back(absl::StrCat(o.name, t.ok() ? "" : " (tether refuses)", l.ok() ? "" : " (libbpf refuses)"));
      }
    }
    return keep;
  }();
  if (left_out) *left_out = out_names;
  return set;
}

const std::vector<BenchObject>& LoadSet(std::vector<std::string>* left_out) {
  static std::vector<std::string> out_names;
  static const std::vector<BenchObject> set = [] {
    std::vector<BenchObject> keep;
    std::string dir = MakePinDir();
    for (BenchObject& o : Candidates(true)) {
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
