// Map API costs on the live kernel (run as root):
//   - element lookup / update / delete on array and hash maps: tether's
//     TypedMap vs a raw syscall(__NR_bpf) vs libbpf's bpf_map_*_elem,
//   - iterating a 10k-entry hash in batches vs key by key,
//   - an mmapable array read from memory vs a lookup syscall,
//   - ring buffer records/s: tether's reader vs libbpf's ring_buffer__poll
//     on the same producer.
// bench/report.py turns the paired figures into ratios.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "tether/insn.h"
#include "tether/map.h"
#include "tether/map_batch.h"
#include "tether/map_dump.h"
#include "absl/strings/str_cat.h"
#include "tether/mmap_array.h"
#include "tether/program.h"
#include "tether/ringbuf.h"
#include "alloc_counter.h"
#include "tether/typed_map.h"

using namespace tether;

namespace {

[[noreturn]] void Die(const absl::Status& st) {
  fprintf(stderr, "map_bench: %s\n", st.ToString().c_str());
  exit(1);
}

template <typename T>
T Must(absl::StatusOr<T> v) {
  if (!v.ok()) Die(v.status());
  return std::move(*v);
}

Map MakeMap(uint32_t type, uint32_t key, uint32_t value, uint32_t max, uint32_t flags,
            const char* name) {
  MapOptions o;
  o.type = type;
  o.key_size = key;
  o.value_size = value;
  o.max_entries = max;
  o.flags = flags;
  o.name = name;
  return Must(Map::Create(o));
}

constexpr uint32_t kEntries = 10000;

// One set of maps for the whole run, filled with keys 0..kEntries-1.
struct Fixture {
  Map array = MakeMap(BPF_MAP_TYPE_ARRAY, 4, 8, kEntries, 0, "b_array");
  Map hash = MakeMap(BPF_MAP_TYPE_HASH, 4, 8, kEntries, 0, "b_hash");
  Map mmap_array = MakeMap(BPF_MAP_TYPE_ARRAY, 4, 8, kEntries, BPF_F_MMAPABLE, "b_mmap");
  TypedMap<uint32_t, uint64_t> t_array = Must(TypedMap<uint32_t, uint64_t>::Bind(array));
  TypedMap<uint32_t, uint64_t> t_hash = Must(TypedMap<uint32_t, uint64_t>::Bind(hash));
  TypedMap<uint32_t, uint64_t> t_mmap = Must(TypedMap<uint32_t, uint64_t>::Bind(mmap_array));

  Fixture() {
    for (uint32_t k = 0; k < kEntries; ++k) {
      if (!t_array.Update(k, k).ok() || !t_hash.Update(k, k).ok() || !t_mmap.Update(k, k).ok())
        Die(absl::InternalError("fill"));
    }
  }
};

Fixture& F() {
  static Fixture* f = new Fixture();
  return *f;
}

// --- the raw baseline: what a hand-written caller of bpf(2) does ------------

int RawLookup(int fd, const void* key, void* value) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.map_fd = fd;
  attr.key = reinterpret_cast<uint64_t>(key);
  attr.value = reinterpret_cast<uint64_t>(value);
  return static_cast<int>(syscall(__NR_bpf, BPF_MAP_LOOKUP_ELEM, &attr, sizeof(attr)));
}
int RawUpdate(int fd, const void* key, const void* value, uint64_t flags) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.map_fd = fd;
  attr.key = reinterpret_cast<uint64_t>(key);
  attr.value = reinterpret_cast<uint64_t>(value);
  attr.flags = flags;
  return static_cast<int>(syscall(__NR_bpf, BPF_MAP_UPDATE_ELEM, &attr, sizeof(attr)));
}
int RawDelete(int fd, const void* key) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.map_fd = fd;
  attr.key = reinterpret_cast<uint64_t>(key);
  return static_cast<int>(syscall(__NR_bpf, BPF_MAP_DELETE_ELEM, &attr, sizeof(attr)));
}

enum Impl { kTether, kRaw, kLibbpf };

// Heap allocations per operation (operator new calls on this thread, see
// alloc_counter.h), from the count before the loop.
void ReportAllocations(benchmark::State& state, uint64_t before, double ops) {
  double n = static_cast<double>(bench_alloc::ThreadAllocations() - before);
  state.counters["allocs_per_op"] = ops > 0 ? n / ops : 0;
}

const TypedMap<uint32_t, uint64_t>& Typed(bool hash) { return hash ? F().t_hash : F().t_array; }
int FdOf(bool hash) { return hash ? F().hash.fd() : F().array.fd(); }

template <Impl impl, bool hash>
void BM_Lookup(benchmark::State& state) {
  const auto& t = Typed(hash);
  const int fd = FdOf(hash);
  uint32_t k = 0;
  uint64_t v = 0;
  const uint64_t allocs_before = bench_alloc::ThreadAllocations();
  for (auto _ : state) {
    if constexpr (impl == kTether) {
      if (!t.Lookup(k, &v).ok()) state.SkipWithError("lookup");
    } else if constexpr (impl == kRaw) {
      if (RawLookup(fd, &k, &v) != 0) state.SkipWithError("lookup");
    } else {
      if (bpf_map_lookup_elem(fd, &k, &v) != 0) state.SkipWithError("lookup");
    }
    benchmark::DoNotOptimize(v);
    k = (k + 1) % kEntries;
  }
  ReportAllocations(state, allocs_before, static_cast<double>(state.iterations()));
}

template <Impl impl, bool hash>
void BM_Update(benchmark::State& state) {
  const auto& t = Typed(hash);
  const int fd = FdOf(hash);
  uint32_t k = 0;
  uint64_t v = 0;
  const uint64_t allocs_before = bench_alloc::ThreadAllocations();
  for (auto _ : state) {
    ++v;
    if constexpr (impl == kTether) {
      if (!t.Update(k, v).ok()) state.SkipWithError("update");
    } else if constexpr (impl == kRaw) {
      if (RawUpdate(fd, &k, &v, BPF_ANY) != 0) state.SkipWithError("update");
    } else {
      if (bpf_map_update_elem(fd, &k, &v, BPF_ANY) != 0) state.SkipWithError("update");
    }
    k = (k + 1) % kEntries;
  }
  ReportAllocations(state, allocs_before, static_cast<double>(state.iterations()));
}

// Arrays cannot delete, so delete is measured on the hash, as delete + a
// re-insert to keep the map full (the same pair for every implementation).
template <Impl impl>
void BM_DeleteReinsert(benchmark::State& state) {
  const auto& t = F().t_hash;
  const int fd = F().hash.fd();
  uint32_t k = 0;
  uint64_t v = 1;
  const uint64_t allocs_before = bench_alloc::ThreadAllocations();
  for (auto _ : state) {
    if constexpr (impl == kTether) {
      if (!t.Delete(k).ok() || !t.Insert(k, v).ok()) state.SkipWithError("delete");
    } else if constexpr (impl == kRaw) {
      if (RawDelete(fd, &k) != 0 || RawUpdate(fd, &k, &v, BPF_NOEXIST) != 0) state.SkipWithError("delete");
    } else {
      if (bpf_map_delete_elem(fd, &k) != 0 || bpf_map_update_elem(fd, &k, &v, BPF_NOEXIST) != 0)
        state.SkipWithError("delete");
    }
    k = (k + 1) % kEntries;
  }
  ReportAllocations(state, allocs_before, static_cast<double>(state.iterations()));
}

#define REGISTER_ELEM(op, impl, hash, label)                                              \
  BENCHMARK(BM_##op<impl, hash>)->Name(label)

REGISTER_ELEM(Lookup, kTether, false, "map_lookup_array/tether");
REGISTER_ELEM(Lookup, kRaw, false, "map_lookup_array/raw_syscall");
REGISTER_ELEM(Lookup, kLibbpf, false, "map_lookup_array/libbpf");
REGISTER_ELEM(Lookup, kTether, true, "map_lookup_hash/tether");
REGISTER_ELEM(Lookup, kRaw, true, "map_lookup_hash/raw_syscall");
REGISTER_ELEM(Lookup, kLibbpf, true, "map_lookup_hash/libbpf");
REGISTER_ELEM(Update, kTether, false, "map_update_array/tether");
REGISTER_ELEM(Update, kRaw, false, "map_update_array/raw_syscall");
REGISTER_ELEM(Update, kLibbpf, false, "map_update_array/libbpf");
REGISTER_ELEM(Update, kTether, true, "map_update_hash/tether");
REGISTER_ELEM(Update, kRaw, true, "map_update_hash/raw_syscall");
REGISTER_ELEM(Update, kLibbpf, true, "map_update_hash/libbpf");
BENCHMARK(BM_DeleteReinsert<kTether>)->Name("map_delete_reinsert_hash/tether");
BENCHMARK(BM_DeleteReinsert<kRaw>)->Name("map_delete_reinsert_hash/raw_syscall");
BENCHMARK(BM_DeleteReinsert<kLibbpf>)->Name("map_delete_reinsert_hash/libbpf");

// --- iterating the 10k hash --------------------------------------------------------

void BM_IterateBatch(benchmark::State& state) {
  const Map& m = F().hash;
  const uint32_t batch = static_cast<uint32_t>(state.range(0));
  size_t seen = 0;
  for (auto _ : state) {
    seen = 0;
    absl::Status st = ForEachBatch<uint32_t, uint64_t>(
        m, batch, [&](absl::Span<const uint32_t> k, absl::Span<const uint64_t>) { seen += k.size(); });
    if (!st.ok() || seen != kEntries) state.SkipWithError("batch walk");
  }
  state.SetItemsProcessed(state.iterations() * kEntries);
}
BENCHMARK(BM_IterateBatch)->Name("batch_iterate_10k/tether_batch")->Arg(64)->Arg(256)->Arg(1024)->Unit(benchmark::kMicrosecond);

// The same walk as a hand-written BPF_MAP_LOOKUP_BATCH loop: what the
// kernel itself costs, so that the batch figure can be told apart from
// tether's share of it.
void RawBatchWalk(benchmark::State& state, uint32_t batch) {
  const int fd = F().hash.fd();
  std::vector<uint32_t> keys(batch);
  std::vector<uint64_t> values(batch);
  size_t seen = 0;
  for (auto _ : state) {
    seen = 0;
    uint64_t in = 0, out = 0;
    bool first = true;
    for (;;) {
      union bpf_attr attr;
      memset(&attr, 0, sizeof(attr));
      attr.batch.in_batch = first ? 0 : reinterpret_cast<uint64_t>(&in);
      attr.batch.out_batch = reinterpret_cast<uint64_t>(&out);
      attr.batch.keys = reinterpret_cast<uint64_t>(keys.data());
      attr.batch.values = reinterpret_cast<uint64_t>(values.data());
      attr.batch.count = batch;
      attr.batch.map_fd = static_cast<uint32_t>(fd);
      long ret = syscall(__NR_bpf, BPF_MAP_LOOKUP_BATCH, &attr, sizeof(attr));
      seen += attr.batch.count;
      if (ret < 0) break;  // ENOENT: the end
      in = out;
      first = false;
    }
    if (seen != kEntries) state.SkipWithError("raw batch walk");
  }
  state.SetItemsProcessed(state.iterations() * kEntries);
}
void BM_IterateRawBatch(benchmark::State& state) { RawBatchWalk(state, static_cast<uint32_t>(state.range(0))); }
BENCHMARK(BM_IterateRawBatch)->Name("batch_iterate_10k/raw_batch_syscall")->Arg(1024)->Unit(benchmark::kMicrosecond);

// Key by key: get_next_key then lookup, as a program without batches does.
void BM_IteratePerKey(benchmark::State& state) {
  const auto& t = F().t_hash;
  size_t seen = 0;
  for (auto _ : state) {
    seen = 0;
    absl::Status st = t.ForEach([&](const uint32_t&, const uint64_t&) { ++seen; });
    if (!st.ok() || seen != kEntries) state.SkipWithError("per-key walk");
  }
  state.SetItemsProcessed(state.iterations() * kEntries);
}
BENCHMARK(BM_IteratePerKey)->Name("batch_iterate_10k/tether_per_key")->Unit(benchmark::kMicrosecond);

// --- whole-map dump ----------------------------------------------------------------
//
// DumpMap on the same 10k hash: the fastest path the probe allows (the
// map-element iterator, or batch where the kernel refuses it) against
// BPF_MAP_LOOKUP_BATCH in chunks of 1024. The label says which path the
// fastest variant took, so a host that refuses iterators reports batch
// against batch rather than a made-up speed-up.
void BM_Dump(benchmark::State& state, DumpOptions::Prefer prefer) {
  const Map& m = F().hash;
  DumpOptions o;
  o.prefer = prefer;
  o.batch_size = 1024;
  std::string label;
  for (auto _ : state) {
    auto d = DumpMap(m, o);
    if (!d.ok() || d->count != kEntries) {
      state.SkipWithError(d.ok() ? "dump: wrong count" : std::string(d.status().message()).c_str());
      return;
    }
    if (label.empty()) {
      // "batch (iterator refused by probe)": the why up to its details.
      absl::string_view why = d->why;
      why = why.substr(0, why.find(':'));
      label = absl::StrCat("path=", DumpPathName(d->path), d->path == DumpPath::kIterator ? "" : absl::StrCat(" (", why, ")"));
    }
    benchmark::DoNotOptimize(d->values.data());
  }
  state.SetLabel(label);
  state.SetItemsProcessed(state.iterations() * kEntries);
}
BENCHMARK_CAPTURE(BM_Dump, fastest, DumpOptions::Prefer::kFastest)->Name("map_dump_10k/tether_fastest")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Dump, batch, DumpOptions::Prefer::kBatch)->Name("map_dump_10k/tether_batch")->Unit(benchmark::kMicrosecond);
// The kernel's bound for the batch path: the same walk as a bare syscall
// loop, so the report shows how much of a dump is tether's own.
void BM_DumpRawBatch(benchmark::State& state) { RawBatchWalk(state, 1024); }
BENCHMARK(BM_DumpRawBatch)->Name("map_dump_10k/raw_batch_syscall")->Unit(benchmark::kMicrosecond);

// --- mmapable array vs lookup ---------------------------------------------------------

void BM_MmapRead(benchmark::State& state) {
  static auto* arr = new MmapArray<uint64_t>(Must(MmapArray<uint64_t>::Create(F().mmap_array)));
  uint32_t k = 0;
  for (auto _ : state) {
    uint64_t v = (*arr)[k];
    benchmark::DoNotOptimize(v);
    k = (k + 1) % kEntries;
  }
}
BENCHMARK(BM_MmapRead)->Name("mmap_array_read/tether_mmap");

void BM_MmapLookup(benchmark::State& state) {
  const auto& t = F().t_mmap;
  uint32_t k = 0;
  uint64_t v = 0;
  for (auto _ : state) {
    if (!t.Lookup(k, &v).ok()) state.SkipWithError("lookup");
    benchmark::DoNotOptimize(v);
    k = (k + 1) % kEntries;
  }
}
BENCHMARK(BM_MmapLookup)->Name("mmap_array_read/tether_lookup");

// --- ring buffer -----------------------------------------------------------------

constexpr uint32_t kRecordsPerRound = 20000;
constexpr int32_t kRecordLen = 16;

struct RingFixture {
  Map rb = MakeMap(BPF_MAP_TYPE_RINGBUF, 0, 0, 1u << 22, 0, "b_ring");
  Program producer;
  std::vector<uint8_t> packet = std::vector<uint8_t>(64, 0x11);

  RingFixture() {
    // bpf_ringbuf_output(rb, packet[0:16], 16, 0) from a socket filter.
    std::vector<bpf_insn> p;
    p.push_back(insn::MovReg(BPF_REG_6, BPF_REG_1));
    p.push_back(insn::MovReg(BPF_REG_1, BPF_REG_6));
    p.push_back(insn::MovImm(BPF_REG_2, 0));
    p.push_back(insn::MovReg(BPF_REG_3, BPF_REG_10));
    p.push_back(insn::AddImm(BPF_REG_3, -kRecordLen));
    p.push_back(insn::MovImm(BPF_REG_4, kRecordLen));
    p.push_back(insn::Call(BPF_FUNC_skb_load_bytes));
    bpf_insn ld[2];
    insn::LdMapFd(BPF_REG_1, rb.fd(), ld);
    p.push_back(ld[0]);
    p.push_back(ld[1]);
    p.push_back(insn::MovReg(BPF_REG_2, BPF_REG_10));
    p.push_back(insn::AddImm(BPF_REG_2, -kRecordLen));
    p.push_back(insn::MovImm(BPF_REG_3, kRecordLen));
    p.push_back(insn::MovImm(BPF_REG_4, 0));
    p.push_back(insn::Call(BPF_FUNC_ringbuf_output));
    p.push_back(insn::MovImm(BPF_REG_0, 0));
    p.push_back(insn::Exit());
    ProgramLoadOptions o;
    o.type = BPF_PROG_TYPE_SOCKET_FILTER;
    o.instructions = p;
    o.name = "b_ring_prod";
    producer = Must(Program::Load(o));
  }
  // kRecordsPerRound records in one BPF_PROG_TEST_RUN (repeat).
  void Produce() {
    RunOptions o;
    o.data = packet;
    o.repeat = kRecordsPerRound;
    if (!producer.Run(o).ok()) Die(absl::InternalError("produce"));
  }
};

RingFixture& R() {
  static RingFixture* r = new RingFixture();
  return *r;
}

void BM_RingTether(benchmark::State& state) {
  RingBufferReader reader = Must(RingBufferReader::Create());
  uint64_t sum = 0;
  Must(reader.Add(R().rb, [&](absl::Span<const uint8_t> rec) { sum += rec[0]; }));
  (void)reader.Consume();
  uint64_t consume_allocs = 0;
  for (auto _ : state) {
    R().Produce();
    auto t0 = std::chrono::steady_clock::now();
    // Only the consumption is counted: Produce runs the program through
    // the library too.
    uint64_t before = bench_alloc::ThreadAllocations();
    int got = 0;
    while (got < static_cast<int>(kRecordsPerRound)) {
      auto n = reader.Poll(std::chrono::milliseconds(0));
      if (!n.ok()) break;
      got += *n;
    }
    consume_allocs += bench_alloc::ThreadAllocations() - before;
    auto t1 = std::chrono::steady_clock::now();
    if (got != static_cast<int>(kRecordsPerRound)) state.SkipWithError("lost records");
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations() * kRecordsPerRound);
  state.counters["allocs_per_record"] =
      static_cast<double>(consume_allocs) / static_cast<double>(state.iterations() * kRecordsPerRound);
}
BENCHMARK(BM_RingTether)->Name("ringbuf_consume/tether")->UseManualTime()->Unit(benchmark::kMicrosecond);

struct LibbpfCtx {
  uint64_t sum = 0;
  int got = 0;
};
int LibbpfSample(void* ctx, void* data, size_t) {
  auto* c = static_cast<LibbpfCtx*>(ctx);
  c->sum += static_cast<uint8_t*>(data)[0];
  c->got++;
  return 0;
}

void BM_RingLibbpf(benchmark::State& state) {
  LibbpfCtx ctx;
  ring_buffer* rb = ring_buffer__new(R().rb.fd(), LibbpfSample, &ctx, nullptr);
  if (!rb) {
    state.SkipWithError("ring_buffer__new");
    return;
  }
  ring_buffer__consume(rb);
  for (auto _ : state) {
    R().Produce();
    ctx.got = 0;
    auto t0 = std::chrono::steady_clock::now();
    while (ctx.got < static_cast<int>(kRecordsPerRound)) {
      if (ring_buffer__poll(rb, 0) < 0) break;
    }
    auto t1 = std::chrono::steady_clock::now();
    if (ctx.got != static_cast<int>(kRecordsPerRound)) state.SkipWithError("lost records");
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
  }
  ring_buffer__free(rb);
  benchmark::DoNotOptimize(ctx.sum);
  state.SetItemsProcessed(state.iterations() * kRecordsPerRound);
}
BENCHMARK(BM_RingLibbpf)->Name("ringbuf_consume/libbpf")->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace

// bench/report.py pairs the variants and computes the ratios from the
// JSON (--benchmark_format=json), so the stock reporters are enough.
BENCHMARK_MAIN();
