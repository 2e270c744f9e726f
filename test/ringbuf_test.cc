// The ring buffer reader against records written by BPF programs under
// BPF_PROG_TEST_RUN: contents, order, discards, wrap-around, several rings
// in one poller, timeouts and a wakeup from another thread.
#include <fcntl.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "map_test_programs.h"
#include "map_test_support.h"
#include "test_support.h"
#include "tether/probe.h"
#include "tether/ringbuf.h"

using namespace tether;
using namespace tether::testing;
using namespace std::chrono_literals;

namespace {

// The kernel pulls the Ethernet header off a socket filter's test skb, so
// skb_load_bytes(skb, 0) reads from packet offset 14.
constexpr size_t kEth = 14;

struct Rec {
  uint64_t seq;
  uint64_t tag;
};

std::vector<uint8_t> PacketWith(const void* payload, size_t len, size_t total = 0) {
  std::vector<uint8_t> pkt(std::max(total, kEth + len + 16), 0);
  memcpy(pkt.data() + kEth, payload, len);
  return pkt;
}

Map MakeRing(const std::string& name, uint32_t size) {
  MapOptions o;
  o.type = BPF_MAP_TYPE_RINGBUF;
  o.max_entries = size;
  o.name = name;
  auto m = Map::Create(o);
  INFO(m.status().ToString());
  REQUIRE(m.ok());
  return *m;
}


}  // namespace

TEST_CASE("ring buffer: records written by a program come back in order", "[ringbuf]") {
  TETHER_REQUIRE_FEATURE("map_type:ringbuf", probe::HaveMapType(BPF_MAP_TYPE_RINGBUF));
  Map rb = MakeRing("rb_order", 1 << 16);
  Program prog = LoadRingbufOutput(rb, sizeof(Rec));
  auto reader = RingBufferReader::Create();
  REQUIRE(reader.ok());
  std::vector<Rec> got;
  std::vector<size_t> sizes;
  REQUIRE(reader->Add(rb, [&](absl::Span<const uint8_t> r) {
    sizes.push_back(r.size());
    Rec rec{};
    memcpy(&rec, r.data(), std::min(r.size(), sizeof(rec)));
    got.push_back(rec);
  }).ok());

  std::vector<std::vector<uint8_t>> packets;
  for (uint64_t i = 0; i < 100; ++i) {
    Rec r{i, 0xfeedface00000000ull | i};
    packets.push_back(PacketWith(&r, sizeof(r)));
  }
  RunEach(prog, packets);
  CHECK(reader->AvailableBytes(0) == 100 * (sizeof(Rec) + 8));
  auto n = reader->Consume();
  REQUIRE(n.ok());
  CHECK(*n == 100);
  REQUIRE(got.size() == 100);
  for (uint64_t i = 0; i < 100; ++i) {
    CHECK(sizes[i] == sizeof(Rec));
    CHECK(got[i].seq == i);
    CHECK(got[i].tag == (0xfeedface00000000ull | i));
  }
  CHECK(reader->AvailableBytes(0) == 0);
  CHECK(*reader->Consume() == 0);
}

TEST_CASE("ring buffer: discarded records are skipped, wrap-around is contiguous", "[ringbuf]") {
  TETHER_REQUIRE_FEATURE("map_type:ringbuf", probe::HaveMapType(BPF_MAP_TYPE_RINGBUF));
  // 200-byte records (208 with the header) in a 4 KiB ring wrap at a
  // different offset every lap.
  constexpr int32_t kLen = 200;
  Map rb = MakeRing("rb_wrap", 4096);
  Program prog = LoadRingbufReserve(rb, kLen);
  auto reader = RingBufferReader::Create();
  REQUIRE(reader.ok());
  std::vector<std::vector<uint8_t>> got;
  REQUIRE(reader->Add(rb, [&](absl::Span<const uint8_t> r) { got.emplace_back(r.begin(), r.end()); }).ok());

  std::vector<std::vector<uint8_t>> expected;
  uint32_t seq = 0;
  for (int lap = 0; lap < 30; ++lap) {
    std::vector<std::vector<uint8_t>> packets;
    for (int i = 0; i < 12; ++i, ++seq) {
      std::vector<uint8_t> payload(kLen);
      for (int j = 0; j < kLen; ++j) payload[j] = static_cast<uint8_t>(seq * 31 + j * 7);
      payload[0] = static_cast<uint8_t>(seq * 2 + (i % 3 == 0 ? 1 : 0));  // odd: discarded
      if (!(payload[0] & 1)) expected.push_back(payload);
      packets.push_back(PacketWith(payload.data(), payload.size()));
    }
    RunEach(prog, packets);
    REQUIRE(reader->Consume().ok());
  }
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("record " << i);
    CHECK(got[i] == expected[i]);
  }
}

TEST_CASE("ring buffer: a full ring refuses, and consuming frees the space", "[ringbuf]") {
  TETHER_REQUIRE_FEATURE("map_type:ringbuf", probe::HaveMapType(BPF_MAP_TYPE_RINGBUF));
  Map rb = MakeRing("rb_full", 4096);
  Program prog = LoadRingbufOutput(rb, 64);
  auto reader = RingBufferReader::Create();
  REQUIRE(reader.ok());
  int delivered = 0;
  REQUIRE(reader->Add(rb, [&](absl::Span<const uint8_t>) { ++delivered; }).ok());
  std::vector<uint8_t> pkt(kEth + 64 + 16, 1);
  RunOptions o;
  o.data = pkt;
  int accepted = 0, refused = 0;
  for (int i = 0; i < 100; ++i) {
    auto r = prog.Run(o);
    REQUIRE(r.ok());
    (r->return_value == 0 ? accepted : refused)++;
  }
  CHECK(accepted == 4096 / 72);  // 64 bytes + 8 of header per record
  CHECK(refused == 100 - accepted);
  REQUIRE(reader->Consume().ok());
  CHECK(delivered == accepted);
  auto r = prog.Run(o);
  REQUIRE(r.ok());
  CHECK(r->return_value == 0);
}

TEST_CASE("ring buffer: several rings in one poller, with a timeout", "[ringbuf]") {
  TETHER_REQUIRE_FEATURE("map_type:ringbuf", probe::HaveMapType(BPF_MAP_TYPE_RINGBUF));
  Map a = MakeRing("rb_a", 4096);
  Map b = MakeRing("rb_b", 8192);
  Program pa = LoadRingbufOutput(a, 16);
  Program pb = LoadRingbufOutput(b, 16);
  auto reader = RingBufferReader::Create();
  REQUIRE(reader.ok());
  std::vector<uint64_t> from_a, from_b;
  REQUIRE(reader->Add(a, [&](absl::Span<const uint8_t> r) {
    uint64_t v;
    memcpy(&v, r.data(), 8);
    from_a.push_back(v);
  }).ok());
  REQUIRE(reader->Add(b, [&](absl::Span<const uint8_t> r) {
    uint64_t v;
    memcpy(&v, r.data(), 8);
    from_b.push_back(v);
  }).ok());
  CHECK(reader->ring_count() == 2);

  auto t0 = std::chrono::steady_clock::now();
  auto n = reader->Poll(50ms);
  auto waited = std::chrono::steady_clock::now() - t0;
  REQUIRE(n.ok());
  CHECK(*n == 0);
  CHECK(waited >= 40ms);
  CHECK_FALSE(reader->woken());

  Rec r{7, 0};
  RunEach(pb, {PacketWith(&r, sizeof(r))});
  n = reader->Poll(5000ms);
  REQUIRE(n.ok());
  CHECK(*n == 1);
  CHECK(from_b == std::vector<uint64_t>{7});
  CHECK(from_a.empty());

  r.seq = 8;
  RunEach(pa, {PacketWith(&r, sizeof(r))});
  r.seq = 9;
  RunEach(pb, {PacketWith(&r, sizeof(r))});
  int total = 0;
  for (int i = 0; i < 4 && total < 2; ++i) {
    n = reader->Poll(1000ms);
    REQUIRE(n.ok());
    total += *n;
  }
  CHECK(total == 2);
  CHECK(from_a == std::vector<uint64_t>{8});
  CHECK(from_b == std::vector<uint64_t>{7, 9});
}

TEST_CASE("ring buffer: a poller thread, a producer, and a cross-thread wakeup", "[ringbuf][concurrency]") {
  TETHER_REQUIRE_FEATURE("map_type:ringbuf", probe::HaveMapType(BPF_MAP_TYPE_RINGBUF));
  Map rb = MakeRing("rb_thread", 1 << 14);
  Program prog = LoadRingbufOutput(rb, sizeof(Rec));
  auto created = RingBufferReader::Create();
  REQUIRE(created.ok());
  // Moved out of the StatusOr before any ring is added: a plain value.
  RingBufferReader owned = std::move(*created);
  RingBufferReader* reader = &owned;
  std::vector<uint64_t> seqs;  // touched by the poller thread only until join
  REQUIRE(reader->Add(rb, [&](absl::Span<const uint8_t> r) {
    Rec rec;
    memcpy(&rec, r.data(), sizeof(rec));
    seqs.push_back(rec.seq);
  }).ok());

  // First: a wakeup interrupts a wait with no limit.
  {
    std::atomic<bool> returned{false};
    bool woken = false;
    absl::Status st;
    std::thread poller([&] {
      auto n = reader->Poll(std::chrono::milliseconds(-1));
      st = n.status();
      woken = reader->woken();
      returned.store(true);
    });
    std::this_thread::sleep_for(20ms);
    CHECK_FALSE(returned.load());
    reader->Wakeup();
    poller.join();
    CHECK(st.ok());
    CHECK(woken);
  }

  // Then: records produced while another thread polls all arrive, in order,
  // and a final wakeup stops the poller.
  constexpr uint64_t kRecords = 2000;
  std::atomic<bool> stop{false};
  absl::Status poll_status;
  std::thread poller([&] {
    while (!stop.load(std::memory_order_acquire)) {
      auto n = reader->Poll(1000ms);
      if (!n.ok()) {
        poll_status = n.status();
        return;
      }
    }
    auto n = reader->Consume();  // whatever arrived between the last poll and stop
    if (!n.ok()) poll_status = n.status();
  });
  std::vector<uint8_t> pkt(kEth + sizeof(Rec) + 16, 0);
  RunOptions o;
  o.data = pkt;
  uint64_t produced = 0;
  for (uint64_t i = 0; i < kRecords; ++i) {
    Rec r{i, 0};
    memcpy(pkt.data() + kEth, &r, sizeof(r));
    for (;;) {
      auto res = prog.Run(o);
      REQUIRE(res.ok());
      if (res->return_value == 0) break;
      std::this_thread::yield();  // full: the poller is behind
    }
    ++produced;
  }
  stop.store(true, std::memory_order_release);
  reader->Wakeup();
  poller.join();
  INFO(poll_status.ToString());
  REQUIRE(poll_status.ok());
  REQUIRE(seqs.size() == kRecords);
  for (uint64_t i = 0; i < kRecords; ++i) {
    if (seqs[i] != i) FAIL("record " << i << " has seq " << seqs[i]);
  }
}

TEST_CASE("ring buffer reader: bad input is explained", "[ringbuf][errors]") {
  auto reader = RingBufferReader::Create();
  REQUIRE(reader.ok());
  MapOptions o;
  o.type = BPF_MAP_TYPE_ARRAY;
  o.key_size = 4;
  o.value_size = 4;
  o.max_entries = 1;
  o.name = "not_a_ring";
  auto m = Map::Create(o);
  REQUIRE(m.ok());
  auto st = reader->Add(*m, [](absl::Span<const uint8_t>) {});
  CHECK(st.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(st.status().message()), Catch::Contains("not_a_ring") && Catch::Contains("ringbuf"));
}

TEST_CASE("ring buffer reader: a movable value; its rings move with it", "[ringbuf]") {
  TETHER_REQUIRE_FEATURE("map_type:ringbuf", probe::HaveMapType(BPF_MAP_TYPE_RINGBUF));
  Map rb = MakeRing("rb_move", 1 << 14);
  Program prog = LoadRingbufOutput(rb, sizeof(Rec));
  RingBufferReader first = MustOk(RingBufferReader::Create());
  std::vector<uint64_t> seqs;
  REQUIRE(first.Add(rb, [&](absl::Span<const uint8_t> r) {
    Rec rec;
    memcpy(&rec, r.data(), sizeof(rec));
    seqs.push_back(rec.seq);
  }).ok());
  int epoll_fd = first.epoll_fd();

  RingBufferReader moved = std::move(first);
  CHECK(moved.epoll_fd() == epoll_fd);
  CHECK(moved.ring_count() == 1);
  CHECK(first.epoll_fd() == -1);
  CHECK(first.ring_count() == 0);
  // The moved-from reader refuses work instead of touching a closed fd.
  CHECK(absl::IsFailedPrecondition(first.Poll(0ms).status()));
  CHECK(absl::IsFailedPrecondition(first.Add(rb, [](absl::Span<const uint8_t>) {}).status()));

  std::vector<std::vector<uint8_t>> packets;
  for (uint64_t i = 0; i < 5; ++i) {
    Rec r{i, 0};
    packets.push_back(PacketWith(&r, sizeof(r)));
  }
  RunEach(prog, packets);
  // The epoll registration moved too: Poll wakes for the ring's records.
  auto n = moved.Poll(1000ms);
  REQUIRE(n.ok());
  CHECK(*n == 5);
  CHECK(seqs == std::vector<uint64_t>{0, 1, 2, 3, 4});

  // Move-assigning over a reader closes what it had.
  RingBufferReader other = MustOk(RingBufferReader::Create());
  int other_epoll = other.epoll_fd();
  other = std::move(moved);
  CHECK(other.epoll_fd() == epoll_fd);
  CHECK(fcntl(other_epoll, F_GETFD) == -1);
}
