// CO-RE costs on the live kernel (run as root):
//   - parsing vmlinux BTF from scratch: tether's Btf::LoadKernel vs
//     libbpf's btf__load_vmlinux_btf; the same plus a first lookup by name
//     (tether decodes lazily, so parsing alone hides work); and tether's
//     per-process cache,
//   - relocating without loading: the 30 programs of manyprogs,
//   - loading a CO-RE object end to end (open + relocate + load + close):
//     the corpus manyprogs (legacy maps, which libbpf 1.x refuses, so
//     tether only) and the same programs with a BTF map, under both.
// libbpf resolves vmlinux BTF on every bpf_object__load; tether parses it
// once per process, which the load figures include.
#include <benchmark/benchmark.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "btf/kernel_btf.h"
#include "tether/btf.h"
#include "tether/collection.h"
#include "tether/collection_spec.h"
#include "tether/core.h"

#ifdef TETHER_BENCH_HAVE_LIBBPF
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#endif

namespace {

using namespace tether;

std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    fprintf(stderr, "core_bench: cannot read %s\n", path.c_str());
    exit(1);
  }
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), {});
}

const std::vector<uint8_t>& CorpusManyprogs() {
  static const auto* bytes =
      new std::vector<uint8_t>(ReadAll(TETHER_BENCH_SOURCE_DIR "/test/corpus/manyprogs-el.elf"));
  return *bytes;
}

const std::vector<uint8_t>& BtfManyprogs() {
  static const auto* bytes =
      new std::vector<uint8_t>(ReadAll(TETHER_BENCH_BUILD_DIR "/core_manyprogs.bpf.o"));
  return *bytes;
}

// "Cold" is a process's first parse: each iteration forks a child that
// parses once and reports how long that took. Repeating the parse inside
// one process instead measures the allocator as much as the parser: how
// much of the last parse's memory glibc kept decides how many pages fault
// again, and libbpf swung between 2 and 10 ms on that alone. The
// "repeated" pair keeps that in-process figure for comparison.
void InFreshChild(benchmark::State& state, bool (*work)()) {
  for (auto _ : state) {
    int fds[2];
    if (pipe(fds) != 0) {
      state.SkipWithError("pipe failed");
      return;
    }
    pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      auto t0 = std::chrono::steady_clock::now();
      bool ok = work();
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (!ok) secs = -1;
      (void)!write(fds[1], &secs, sizeof(secs));
      _exit(0);
    }
    close(fds[1]);
    double secs = -1;
    ssize_t got = pid > 0 ? read(fds[0], &secs, sizeof(secs)) : -1;
    close(fds[0]);
    if (pid > 0) waitpid(pid, nullptr, 0);
    if (got != sizeof(secs) || secs < 0) {
      state.SkipWithError("the child failed to parse vmlinux BTF");
      return;
    }
    state.SetIterationTime(secs);
  }
}

void InProcess(benchmark::State& state, bool (*work)()) {
  for (auto _ : state) {
    if (!work()) {
      state.SkipWithError("parsing vmlinux BTF failed");
      return;
    }
  }
}

bool TetherParse() {
  auto btf = Btf::LoadKernel();
  if (!btf.ok()) return false;
  benchmark::DoNotOptimize(btf->NumTypes());
  return true;
}

// Parsing alone leaves tether's name index and most decoding for later;
// this measures a process's first CO-RE-style question, from nothing:
// parse, find task_struct by name, find its member pid.
bool TetherFirstLookup() {
  auto btf = Btf::LoadKernel();
  if (!btf.ok()) return false;
  auto task = btf->FindByNameKind("task_struct", BtfKind::kStruct);
  if (!task) return false;
  auto pid = btf->FindMember(*task, "pid");
  if (!pid.ok()) return false;
  benchmark::DoNotOptimize(pid->bit_offset);
  return true;
}

BENCHMARK_CAPTURE(InFreshChild, tether, TetherParse)->Name("vmlinux_parse_cold/tether")->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(InFreshChild, tether, TetherFirstLookup)->Name("vmlinux_first_lookup_cold/tether")->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(InProcess, tether, TetherParse)->Name("vmlinux_parse_repeated/tether")->Unit(benchmark::kMillisecond);

void vmlinux_parse_cached_tether(benchmark::State& state) {
  (void)KernelBtf();
  for (auto _ : state) {
    auto btf = KernelBtf();
    benchmark::DoNotOptimize(btf);
  }
}
BENCHMARK(vmlinux_parse_cached_tether)->Name("vmlinux_parse_cached/tether");

void core_relocate_manyprogs_tether(benchmark::State& state) {
  auto spec = CollectionSpec::FromMemory(CorpusManyprogs(), "manyprogs");
  auto target = CoreTarget::Kernel();
  if (!spec.ok() || !target.ok()) {
    state.SkipWithError("cannot read manyprogs or the kernel's BTF");
    return;
  }
  std::vector<LinkedProgram> linked;
  for (const auto& [name, p] : spec->programs) linked.push_back(*LinkProgram(*spec, name));
  size_t relos = 0;
  for (auto _ : state) {
    relos = 0;
    for (const LinkedProgram& lp : linked) {
      std::vector<bpf_insn> insns = lp.insns;
      absl::Status st = ApplyCoreRelocations(lp.name, *spec->btf, lp.core_relos,
                                             absl::MakeSpan(insns), **target);
      if (!st.ok()) {
        state.SkipWithError(std::string(st.message()).c_str());
        return;
      }
      relos += lp.core_relos.size();
    }
  }
  state.counters["relocations"] = static_cast<double>(relos);
}
BENCHMARK(core_relocate_manyprogs_tether)->Name("core_relocate_manyprogs/tether")->Unit(benchmark::kMicrosecond);

void LoadTether(benchmark::State& state, const std::vector<uint8_t>& elf) {
  (void)KernelBtf();
  for (auto _ : state) {
    auto spec = CollectionSpec::FromMemory(elf, "manyprogs");
    if (!spec.ok()) {
      state.SkipWithError(std::string(spec.status().message()).c_str());
      return;
    }
    auto coll = Collection::Load(*spec);
    if (!coll.ok()) {
      state.SkipWithError(std::string(coll.status().message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(coll->programs().size());
  }
}

void core_load_manyprogs_tether(benchmark::State& state) { LoadTether(state, CorpusManyprogs()); }
BENCHMARK(core_load_manyprogs_tether)->Name("core_load_manyprogs/tether")->Unit(benchmark::kMillisecond);

void core_load_manyprogs_btf_tether(benchmark::State& state) { LoadTether(state, BtfManyprogs()); }

bool TetherCoreLoadOnce() {
  auto spec = CollectionSpec::FromMemory(BtfManyprogs(), "manyprogs");
  if (!spec.ok()) return false;
  auto coll = Collection::Load(*spec);
  return coll.ok();
}
void core_load_first_tether(benchmark::State& state) {
  (void)BtfManyprogs();  // read before forking, outside the timing
  InFreshChild(state, TetherCoreLoadOnce);
}
BENCHMARK(core_load_first_tether)->Name("core_load_first_in_process/tether")->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(core_load_manyprogs_btf_tether)->Name("core_load_manyprogs_btf/tether")->Unit(benchmark::kMillisecond);

#ifdef TETHER_BENCH_HAVE_LIBBPF

int Quiet(enum libbpf_print_level, const char*, va_list) { return 0; }

bool LibbpfParse() {
  libbpf_set_print(Quiet);
  struct btf* btf = btf__load_vmlinux_btf();
  if (btf == nullptr) return false;
  benchmark::DoNotOptimize(btf__type_cnt(btf));
  btf__free(btf);
  return true;
}

bool LibbpfFirstLookup() {
  libbpf_set_print(Quiet);
  struct btf* btf = btf__load_vmlinux_btf();
  if (btf == nullptr) return false;
  int task = btf__find_by_name_kind(btf, "task_struct", BTF_KIND_STRUCT);
  const struct btf_type* t = task > 0 ? btf__type_by_id(btf, task) : nullptr;
  uint32_t bit_offset = UINT32_MAX;
  if (t != nullptr) {
    const struct btf_member* m = btf_members(t);
    for (int i = 0; i < btf_vlen(t); ++i, ++m) {
      const char* name = btf__name_by_offset(btf, m->name_off);
      if (name != nullptr && strcmp(name, "pid") == 0) {
        bit_offset = btf_member_bit_offset(t, i);
        break;
      }
    }
  }
  btf__free(btf);
  benchmark::DoNotOptimize(bit_offset);
  return bit_offset != UINT32_MAX;
}

BENCHMARK_CAPTURE(InFreshChild, libbpf, LibbpfParse)->Name("vmlinux_parse_cold/libbpf")->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(InFreshChild, libbpf, LibbpfFirstLookup)->Name("vmlinux_first_lookup_cold/libbpf")->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(InProcess, libbpf, LibbpfParse)->Name("vmlinux_parse_repeated/libbpf")->Unit(benchmark::kMillisecond);

// A process's first CO-RE load: libbpf parses vmlinux BTF on every load
// anyway; tether pays its parse and index once here, in the child.
bool LibbpfCoreLoadOnce() {
  libbpf_set_print(Quiet);
  const auto& elf = BtfManyprogs();
  struct bpf_object* obj = bpf_object__open_mem(elf.data(), elf.size(), nullptr);
  if (obj == nullptr) return false;
  int err = bpf_object__load(obj);
  bpf_object__close(obj);
  return err == 0;
}
void core_load_first_libbpf(benchmark::State& state) {
  (void)BtfManyprogs();  // read before forking, outside the timing
  InFreshChild(state, LibbpfCoreLoadOnce);
}
BENCHMARK(core_load_first_libbpf)->Name("core_load_first_in_process/libbpf")->UseManualTime()->Unit(benchmark::kMillisecond);

void LoadLibbpf(benchmark::State& state, const std::vector<uint8_t>& elf) {
  libbpf_set_print(Quiet);
  for (auto _ : state) {
    struct bpf_object* obj = bpf_object__open_mem(elf.data(), elf.size(), nullptr);
    if (obj == nullptr) {
      // libbpf 1.x refuses the legacy "maps" section of the corpus object.
      state.SkipWithError("bpf_object__open_mem failed (legacy maps section?)");
      return;
    }
    int err = bpf_object__load(obj);
    bpf_object__close(obj);
    if (err != 0) {
      state.SkipWithError("bpf_object__load failed");
      return;
    }
  }
}

void core_load_manyprogs_libbpf(benchmark::State& state) { LoadLibbpf(state, CorpusManyprogs()); }
BENCHMARK(core_load_manyprogs_libbpf)->Name("core_load_manyprogs/libbpf")->Unit(benchmark::kMillisecond);

void core_load_manyprogs_btf_libbpf(benchmark::State& state) { LoadLibbpf(state, BtfManyprogs()); }
BENCHMARK(core_load_manyprogs_btf_libbpf)->Name("core_load_manyprogs_btf/libbpf")->Unit(benchmark::kMillisecond);

#endif  // TETHER_BENCH_HAVE_LIBBPF

}  // namespace
