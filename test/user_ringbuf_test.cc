// The user ring buffer producer against a BPF program that drains it
// (test/bpf/user_ringbuf.bpf.c, run by BPF_PROG_TEST_RUN): what user space
// writes is what the program sees, in order; discarded and still-reserved
// records behave as the kernel's protocol says; a full ring refuses, and a
// blocked reserve wakes when the program drains.
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "link_fixtures.h"
#include "test_programs.h"
#include "test_support.h"
#include "tether/collection.h"
#include "tether/probe.h"
#include "tether/user_ringbuf.h"

using namespace tether;
using namespace tether::testing;
using namespace std::chrono_literals;

namespace {

struct Record {
  uint64_t seq;
  uint64_t value;
  uint32_t len;
  uint32_t pad;
};

struct Totals {
  uint64_t records;
  uint64_t value_sum;
  uint64_t out_of_order;
  uint64_t short_reads;
  uint64_t bad_len;
  uint64_t last_seq;
  int64_t last_drain;
  uint64_t drains;
};

struct Drainer {
  Map ring, totals, echo;
  Program drain;

  Totals Read() const {
    Totals t{};
    REQUIRE_OK(totals.Lookup(uint32_t{0}, &t));
    return t;
  }
  // One BPF_PROG_TEST_RUN: one bpf_user_ringbuf_drain call.
  void Run() const { REQUIRE(RunValue(drain) == 0); }
  uint64_t Echo(uint64_t seq) const {
    uint64_t v = 0;
    REQUIRE_OK(echo.Lookup(static_cast<uint32_t>(seq % 64), &v));
    return v;
  }
};


Drainer LoadDrainer() {
  auto spec = CollectionSpec::FromFile(BpfObjectPath("user_ringbuf"));
  REQUIRE_OK(spec);
  Drainer d;
  REQUIRE_OK(LoadAndAssign(*spec, {{{"user_rb", &d.ring}, {"totals", &d.totals}, {"echo", &d.echo}},
                                   {{"drain", &d.drain}}}));
  return d;
}

std::unique_ptr<UserRingBuffer> MustProducer(const Map& ring) {
  auto p = UserRingBuffer::Create(ring);
  REQUIRE_OK(p);
  return std::move(*p);
}

// A record of `len` bytes (at least sizeof(Record)): the header fields,
// then bytes derived from seq.
void Fill(absl::Span<uint8_t> rec, uint64_t seq, uint64_t value) {
  Record r{seq, value, static_cast<uint32_t>(rec.size()), 0};
  memcpy(rec.data(), &r, sizeof(r));
  for (size_t i = sizeof(r); i < rec.size(); ++i) rec[i] = static_cast<uint8_t>(seq + i);
}

}  // namespace

TEST_CASE("user ring buffer: what user space writes, a program drains, in order", "[user_ringbuf]") {
  TETHER_REQUIRE_FEATURE("map_type:user_ringbuf", probe::HaveMapType(BPF_MAP_TYPE_USER_RINGBUF));
  Drainer d = LoadDrainer();
  auto rb = MustProducer(d.ring);
  CHECK(rb->capacity() == 4096);
  CHECK(rb->UsedBytes() == 0);

  // Sizes from 24 to 133 bytes: most need padding to the 8-byte stride.
  uint64_t sum = 0, used = 0;
  for (uint64_t seq = 1; seq <= 40; ++seq) {
    uint32_t len = static_cast<uint32_t>(sizeof(Record) + (seq * 37) % 110);
    auto rec = rb->Reserve(len);
    REQUIRE_OK(rec);
    CHECK(rec->size() == len);
    CHECK(reinterpret_cast<uintptr_t>(rec->data()) % 8 == 0);
    Fill(*rec, seq, seq * 1000 + 7);
    rb->Submit(*rec);
    sum += seq * 1000 + 7;
    used += (len + 8 + 7) / 8 * 8;
  }
  CHECK(rb->UsedBytes() == used);
  d.Run();
  Totals t = d.Read();
  CHECK(t.records == 40);
  CHECK(t.last_drain == 40);
  CHECK(t.value_sum == sum);
  CHECK(t.out_of_order == 0);
  CHECK(t.short_reads == 0);
  CHECK(t.bad_len == 0);
  CHECK(t.last_seq == 40);
  for (uint64_t seq = 1; seq <= 40; ++seq) CHECK(d.Echo(seq) == seq * 1000 + 7);
  // The kernel moved its consumer position past everything.
  CHECK(rb->UsedBytes() == 0);

  // Write copies a whole record; an empty ring drains to nothing.
  std::vector<uint8_t> bytes(sizeof(Record));
  Fill(absl::MakeSpan(bytes), 41, 5);
  REQUIRE_OK(rb->Write(bytes));
  d.Run();
  d.Run();
  t = d.Read();
  CHECK(t.records == 41);
  CHECK(t.last_drain == 0);
  CHECK(t.drains == 3);
  CHECK(d.Echo(41) == 5);
}

TEST_CASE("user ring buffer: discarded records are skipped, wrapping records arrive whole",
          "[user_ringbuf]") {
  TETHER_REQUIRE_FEATURE("map_type:user_ringbuf", probe::HaveMapType(BPF_MAP_TYPE_USER_RINGBUF));
  Drainer d = LoadDrainer();
  auto rb = MustProducer(d.ring);
  // 200-byte records (208 with the header) wrap the 4 KiB ring at a new
  // offset every lap, and the record that straddles the end must still be
  // one span on both sides.
  constexpr uint32_t kLen = 200;
  uint64_t seq = 0, submitted = 0, sum = 0;
  for (int lap = 0; lap < 25; ++lap) {
    for (int i = 0; i < 12; ++i) {
      auto rec = rb->Reserve(kLen);
      REQUIRE_OK(rec);
      if (i % 3 == 1) {
        // Garbage the program would count as out of order or bad.
        memset(rec->data(), 0xee, rec->size());
        rb->Discard(*rec);
        continue;
      }
      ++seq;
      Fill(*rec, seq, seq * 3);
      rb->Submit(*rec);
      ++submitted;
      sum += seq * 3;
    }
    d.Run();
    Totals t = d.Read();
    INFO("lap " << lap);
    REQUIRE(t.records == submitted);
    CHECK(t.last_drain == 8);  // discarded records are not counted
    CHECK(rb->UsedBytes() == 0);
  }
  Totals t = d.Read();
  CHECK(t.value_sum == sum);
  CHECK(t.out_of_order == 0);
  CHECK(t.bad_len == 0);
  CHECK(t.short_reads == 0);
  for (uint64_t s = seq - 63; s <= seq; ++s) CHECK(d.Echo(s) == s * 3);
}

TEST_CASE("user ring buffer: a record still reserved holds back the ones after it",
          "[user_ringbuf]") {
  TETHER_REQUIRE_FEATURE("map_type:user_ringbuf", probe::HaveMapType(BPF_MAP_TYPE_USER_RINGBUF));
  Drainer d = LoadDrainer();
  auto rb = MustProducer(d.ring);
  auto first = rb->Reserve(sizeof(Record));
  auto second = rb->Reserve(sizeof(Record));
  REQUIRE_OK(first);
  REQUIRE_OK(second);
  Fill(*second, 2, 20);
  rb->Submit(*second);
  d.Run();
  CHECK(d.Read().records == 0);
  CHECK(d.Read().last_drain == 0);
  Fill(*first, 1, 10);
  rb->Submit(*first);
  d.Run();
  Totals t = d.Read();
  CHECK(t.records == 2);
  CHECK(t.last_seq == 2);
  CHECK(t.out_of_order == 0);
  CHECK(t.value_sum == 30);
}

TEST_CASE("user ring buffer: a full ring refuses, impossible sizes are explained",
          "[user_ringbuf][errors]") {
  TETHER_REQUIRE_FEATURE("map_type:user_ringbuf", probe::HaveMapType(BPF_MAP_TYPE_USER_RINGBUF));
  Drainer d = LoadDrainer();
  auto rb = MustProducer(d.ring);
  // 64 bytes and the header: 72 a record, 56 of them in 4096 bytes.
  int accepted = 0;
  absl::Status refused;
  for (int i = 0; i < 100; ++i) {
    std::vector<uint8_t> bytes(64);
    Fill(absl::MakeSpan(bytes), static_cast<uint64_t>(i + 1), 1);
    absl::Status st = rb->Write(bytes);
    if (!st.ok()) {
      refused = st;
      break;
    }
    ++accepted;
  }
  CHECK(accepted == 4096 / 72);
  CHECK(refused.code() == absl::StatusCode::kResourceExhausted);
  CHECK_THAT(std::string(refused.message()),
             Catch::Contains("user_rb") && Catch::Contains("ENOSPC") && Catch::Contains("4032 of 4096"));
  // What the program never saw is still there; draining makes room.
  d.Run();
  CHECK(d.Read().records == static_cast<uint64_t>(accepted));
  CHECK(rb->UsedBytes() == 0);

  // The largest record is the ring less its header; one byte more never fits.
  auto whole = rb->Reserve(4096 - 8);
  REQUIRE_OK(whole);
  Fill(*whole, static_cast<uint64_t>(accepted + 1), 99);
  rb->Submit(*whole);
  d.Run();
  CHECK(d.Read().records == static_cast<uint64_t>(accepted + 1));
  auto too_big = rb->Reserve(4096 - 7);
  CHECK(too_big.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(too_big.status().message()), Catch::Contains("E2BIG") && Catch::Contains("4096-byte ring"));
  CHECK(rb->Reserve(1u << 31).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(rb->UsedBytes() == 0);  // refusals reserve nothing

  // Not a user ring buffer.
  auto wrong = UserRingBuffer::Create(d.totals);
  CHECK(wrong.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(wrong.status().message()), Catch::Contains("totals") && Catch::Contains("not a user_ringbuf"));
  CHECK(UserRingBuffer::Create(Map()).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("user ring buffer: a blocked reserve times out, or wakes when the program drains",
          "[user_ringbuf][concurrency]") {
  TETHER_REQUIRE_FEATURE("map_type:user_ringbuf", probe::HaveMapType(BPF_MAP_TYPE_USER_RINGBUF));
  Drainer d = LoadDrainer();
  auto rb = MustProducer(d.ring);
  std::vector<uint8_t> bytes(64);
  uint64_t seq = 0;
  for (;;) {
    Fill(absl::MakeSpan(bytes), seq + 1, 1);
    if (!rb->Write(bytes).ok()) break;
    ++seq;
  }
  auto t0 = std::chrono::steady_clock::now();
  auto late = rb->ReserveBlocking(64, 60ms);
  auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(late.status().code() == absl::StatusCode::kDeadlineExceeded);
  CHECK_THAT(std::string(late.status().message()), Catch::Contains("user_rb") && Catch::Contains("60 ms"));
  CHECK(waited >= 55ms);
  CHECK(waited < 2s);

  // Another thread drains after a while; the waiting reserve gets its room
  // from the kernel's wakeup, well before its own limit.
  std::atomic<bool> drained{false};
  absl::Status run_status;
  std::thread drainer([&] {
    std::this_thread::sleep_for(50ms);
    std::vector<uint8_t> pkt = Packet();
    RunOptions o;
    o.data = pkt;
    auto r = d.drain.Run(o);
    run_status = r.status();
    drained.store(true);
  });
  t0 = std::chrono::steady_clock::now();
  auto rec = rb->ReserveBlocking(64, 10s);
  waited = std::chrono::steady_clock::now() - t0;
  drainer.join();
  REQUIRE(run_status.ok());
  REQUIRE_OK(rec);
  CHECK(drained.load());
  CHECK(waited >= 40ms);
  CHECK(waited < 5s);
  Fill(*rec, seq + 1, 1);
  rb->Submit(*rec);
  d.Run();
  Totals t = d.Read();
  CHECK(t.records == seq + 1);
  CHECK(t.out_of_order == 0);

  // With room, a blocking reserve does not wait at all.
  t0 = std::chrono::steady_clock::now();
  auto quick = rb->ReserveBlocking(64, 10s);
  REQUIRE_OK(quick);
  CHECK(std::chrono::steady_clock::now() - t0 < 1s);
  rb->Discard(*quick);
}

TEST_CASE("user ring buffer: producer threads share the ring while a program drains it",
          "[user_ringbuf][concurrency]") {
  TETHER_REQUIRE_FEATURE("map_type:user_ringbuf", probe::HaveMapType(BPF_MAP_TYPE_USER_RINGBUF));
  Drainer d = LoadDrainer();
  auto rb = MustProducer(d.ring);
  constexpr int kThreads = 4, kEach = 300;
  std::atomic<int> failures{0};
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        // Sizes differ per thread, so records of all sizes interleave.
        auto rec = rb->ReserveBlocking(static_cast<uint32_t>(sizeof(Record) + 8 * t), std::chrono::seconds(10));
        if (!rec.ok()) {
          failures.fetch_add(1);
          return;
        }
        Fill(*rec, 1, static_cast<uint64_t>(t * 1000 + i));
        rb->Submit(*rec);
      }
    });
  }
  uint64_t want_sum = 0;
  for (int t = 0; t < kThreads; ++t)
    for (int i = 0; i < kEach; ++i) want_sum += static_cast<uint64_t>(t * 1000 + i);
  // A 4 KiB ring holds about 100 of these: the producers block on it
  // until the program drains.
  std::vector<uint8_t> pkt = Packet();
  RunOptions o;
  o.data = pkt;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  Totals t{};
  while (std::chrono::steady_clock::now() < deadline) {
    REQUIRE_OK(d.drain.Run(o));
    t = d.Read();
    if (t.records == kThreads * kEach || failures.load() > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (auto& p : producers) p.join();
  CHECK(failures.load() == 0);
  CHECK(t.records == kThreads * kEach);
  CHECK(t.value_sum == want_sum);
  CHECK(t.bad_len == 0);
  CHECK(t.short_reads == 0);
  CHECK(rb->UsedBytes() == 0);
}
