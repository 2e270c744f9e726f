// The perf event array reader against samples written by a BPF program
// with bpf_perf_event_output(BPF_F_CURRENT_CPU) under BPF_PROG_TEST_RUN,
// the program run pinned to each CPU in turn.
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <thread>

#include "map_test_programs.h"
#include "test_support.h"
#include "tether/perf_reader.h"

using namespace tether;
using namespace tether::testing;
using namespace std::chrono_literals;

namespace {

constexpr size_t kEth = 14;  // see ringbuf_test.cc

Map MakePerfArray(const std::string& name) {
  MapOptions o;
  o.type = BPF_MAP_TYPE_PERF_EVENT_ARRAY;
  o.key_size = 4;
  o.value_size = 4;
  o.max_entries = PossibleCpus();
  o.name = name;
  auto m = Map::Create(o);
  INFO(m.status().ToString());
  REQUIRE(m.ok());
  return *m;
}

struct Sample {
  uint32_t cpu;
  uint64_t seq;
  size_t size;
};

std::vector<uint8_t> SeqPacket(uint64_t seq, uint32_t cpu, size_t len) {
  std::vector<uint8_t> pkt(kEth + len + 16, 0);
  for (size_t j = 16; j < len; ++j) pkt[kEth + j] = static_cast<uint8_t>(seq + j);
  memcpy(pkt.data() + kEth, &seq, 8);
  memcpy(pkt.data() + kEth + 8, &cpu, 4);
  return pkt;
}

}  // namespace

TEST_CASE("perf reader: each CPU's samples arrive in order and complete", "[perf]") {
  Map arr = MakePerfArray("perf_order");
  constexpr int32_t kLen = 20;  // 4 + 20 is 8-aligned: no padding
  Program prog = LoadPerfOutput(arr, kLen);
  std::vector<Sample> samples;
  std::vector<std::vector<uint8_t>> payloads;
  PerfReaderOptions opts;
  opts.on_sample = [&](uint32_t cpu, absl::Span<const uint8_t> s) {
    uint64_t seq = 0;
    memcpy(&seq, s.data(), 8);
    samples.push_back({cpu, seq, s.size()});
    payloads.emplace_back(s.begin(), s.end());
  };
  auto reader = PerfReader::Create(arr, opts);
  INFO(reader.status().ToString());
  REQUIRE(reader.ok());
  CHECK((*reader)->cpus() == OnlineCpus());

  std::map<uint32_t, uint64_t> sent;  // cpu -> samples
  std::map<uint64_t, std::vector<uint8_t>> expected;
  uint64_t seq = 0;
  for (uint32_t cpu : OnlineCpus()) {
    PinToCpu pin(cpu);
    if (!pin.ok()) continue;
    for (int i = 0; i < 25; ++i, ++seq) {
      auto pkt = SeqPacket(seq, cpu, kLen);
      expected[seq] = std::vector<uint8_t>(pkt.begin() + kEth, pkt.begin() + kEth + kLen);
      RunEach(prog, {pkt});
      sent[cpu]++;
    }
  }
  REQUIRE_FALSE(sent.empty());
  int got = 0;
  for (int i = 0; i < 20 && got < static_cast<int>(seq); ++i) {
    auto n = (*reader)->Poll(200ms);
    REQUIRE(n.ok());
    got += *n;
  }
  CHECK(got == static_cast<int>(seq));
  REQUIRE(samples.size() == seq);
  CHECK((*reader)->lost() == 0);
  std::map<uint32_t, uint64_t> last;  // per CPU, sequence numbers only grow
  std::map<uint32_t, uint64_t> count;
  for (size_t i = 0; i < samples.size(); ++i) {
    const Sample& s = samples[i];
    uint32_t cpu_in_payload;
    memcpy(&cpu_in_payload, payloads[i].data() + 8, 4);
    CHECK(cpu_in_payload == s.cpu);  // the sample landed on the CPU that ran it
    CHECK(s.size == static_cast<size_t>(kLen));
    CHECK(payloads[i] == expected[s.seq]);
    if (count[s.cpu]++ > 0) CHECK(s.seq > last[s.cpu]);
    last[s.cpu] = s.seq;
  }
  CHECK(count == sent);
}

TEST_CASE("perf reader: samples that wrap the ring, and lost counts", "[perf]") {
  Map arr = MakePerfArray("perf_wrap");
  constexpr int32_t kLen = 60;  // 8 + 4 + 60 = 72 bytes a record: wraps 4 KiB unevenly
  Program prog = LoadPerfOutput(arr, kLen);
  std::vector<std::vector<uint8_t>> got;
  uint64_t lost_cb = 0;
  PerfReaderOptions opts;
  opts.pages_per_cpu = 1;
  opts.on_sample = [&](uint32_t, absl::Span<const uint8_t> s) { got.emplace_back(s.begin(), s.end()); };
  opts.on_lost = [&](uint32_t, uint64_t lost) { lost_cb += lost; };
  auto reader = PerfReader::Create(arr, opts);
  REQUIRE(reader.ok());

  const uint32_t cpu = OnlineCpus().front();
  PinToCpu pin(cpu);
  if (!pin.ok()) TETHER_SKIP_OR_FAIL("cannot pin to CPU " << cpu);
  std::vector<std::vector<uint8_t>> expected;
  uint64_t seq = 0;
  for (int lap = 0; lap < 12; ++lap) {
    for (int i = 0; i < 40; ++i, ++seq) {
      auto pkt = SeqPacket(seq, cpu, kLen);
      expected.emplace_back(pkt.begin() + kEth, pkt.begin() + kEth + kLen);
      RunEach(prog, {pkt});
    }
    (*reader)->Consume();
  }
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("sample " << i);
    CHECK(got[i].size() >= static_cast<size_t>(kLen));
    CHECK(std::equal(expected[i].begin(), expected[i].end(), got[i].begin()));
  }
  CHECK((*reader)->lost() == 0);

  // Overfill the ring without reading: the kernel drops and counts.
  got.clear();
  std::vector<uint8_t> pkt = SeqPacket(0, cpu, kLen);
  RunOptions o;
  o.data = pkt;
  o.repeat = 200;  // 200 * 72 bytes into a 4 KiB ring
  REQUIRE(prog.Run(o).ok());
  (*reader)->Consume();
  // The LOST record itself needs room; it is written once space frees up.
  RunEach(prog, {pkt});
  (*reader)->Consume();
  CHECK(lost_cb > 0);
  CHECK((*reader)->lost() == lost_cb);
  CHECK(got.size() + lost_cb == 201);
}

TEST_CASE("perf reader: timeout, and a wakeup from another thread", "[perf][concurrency]") {
  Map arr = MakePerfArray("perf_wake");
  PerfReaderOptions opts;
  opts.on_sample = [](uint32_t, absl::Span<const uint8_t>) {};
  auto reader = PerfReader::Create(arr, opts);
  REQUIRE(reader.ok());
  auto t0 = std::chrono::steady_clock::now();
  auto n = (*reader)->Poll(30ms);
  REQUIRE(n.ok());
  CHECK(*n == 0);
  CHECK(std::chrono::steady_clock::now() - t0 >= 25ms);

  std::atomic<bool> returned{false};
  bool woken = false;
  std::thread poller([&] {
    auto r = (*reader)->Poll(std::chrono::milliseconds(-1));
    woken = r.ok() && (*reader)->woken();
    returned.store(true);
  });
  std::this_thread::sleep_for(20ms);
  CHECK_FALSE(returned.load());
  (*reader)->Wakeup();
  poller.join();
  CHECK(woken);

  // Closing the reader empties the array's slots.
  uint32_t cpu0 = (*reader)->cpus().front();
  reader->reset();
  // Perf event arrays have no user-space lookup; deleting an empty slot
  // is the observable: ENOENT.
  CHECK(arr.Delete(cpu0).code() == absl::StatusCode::kNotFound);
}

TEST_CASE("perf reader: bad input is explained", "[perf][errors]") {
  MapOptions o;
  o.type = BPF_MAP_TYPE_HASH;
  o.key_size = 4;
  o.value_size = 4;
  o.max_entries = 1;
  o.name = "not_perf";
  auto m = Map::Create(o);
  REQUIRE(m.ok());
  PerfReaderOptions opts;
  opts.on_sample = [](uint32_t, absl::Span<const uint8_t>) {};
  auto r = PerfReader::Create(*m, opts);
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(r.status().message()), Catch::Contains("not_perf"));
  Map arr = MakePerfArray("perf_badpages");
  opts.pages_per_cpu = 3;
  r = PerfReader::Create(arr, opts);
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(r.status().message()), Catch::Contains("perf_badpages") && Catch::Contains("power of two"));
}
