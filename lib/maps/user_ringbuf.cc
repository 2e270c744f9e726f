#include "tether/user_ringbuf.h"

#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/mutex_internal.h"
#include "sys/bpf.h"

namespace tether {

namespace {

// The kernel hands each record to the program as a dynptr, whose size
// field has 24 bits; a larger record fails every drain (E2BIG) and stalls
// the ring behind it.
constexpr uint32_t kMaxRecord = (1u << 24) - 1;

constexpr int kMaxWaitSliceMs = 100;

std::string Describe(const Map& map) {
  return absl::StrFormat("user ring buffer '%s' (id %u)", map.name(), map.id());
}

// Acquire on the consumer position pairs with the kernel's release after
// it drains, so the space it frees is really free before we reuse it.
inline uint64_t LoadAcquire(const uint64_t* p) {
  return std::atomic_ref<uint64_t>(*const_cast<uint64_t*>(p)).load(std::memory_order_acquire);
}
inline void StoreRelease(uint64_t* p, uint64_t v) {
  std::atomic_ref<uint64_t>(*p).store(v, std::memory_order_release);
}

uint32_t* HeaderOf(absl::Span<uint8_t> record) {
  return reinterpret_cast<uint32_t*>(record.data() - BPF_RINGBUF_HDR_SZ);
}

// Clears BUSY (and sets DISCARD) with release ordering, so the kernel,
// which loads the header with acquire, sees the payload written before it.
void Commit(absl::Span<uint8_t> record, bool discard) {
  std::atomic_ref<uint32_t> len(*HeaderOf(record));
  uint32_t v = len.load(std::memory_order_relaxed) & ~BPF_RINGBUF_BUSY_BIT;
  if (discard) v |= BPF_RINGBUF_DISCARD_BIT;
  len.exchange(v, std::memory_order_acq_rel);
}

}  // namespace

struct UserRingBuffer::Locked {
  detail::Mutex mu;
};

UserRingBuffer::UserRingBuffer(Map map, int epoll_fd)
    : map_(std::move(map)), epoll_fd_(epoll_fd), lock_(std::make_unique<Locked>()) {}

UserRingBuffer::~UserRingBuffer() {
  if (consumer_pos_) munmap(const_cast<uint64_t*>(consumer_pos_), page_);
  if (producer_pos_) munmap(producer_pos_, producer_len_);
  close(epoll_fd_);
}

absl::StatusOr<std::unique_ptr<UserRingBuffer>> UserRingBuffer::Create(const Map& map) {
  if (!map) return absl::InvalidArgumentError("user ring buffer: create: the map handle is empty");
  if (map.type() != BPF_MAP_TYPE_USER_RINGBUF) {
    return absl::InvalidArgumentError(
        absl::StrFormat("map '%s' (id %u): user ring buffer: a %s, not a user_ringbuf", map.name(),
                        map.id(), MapTypeName(map.type())));
  }
  sys::Fd ep(epoll_create1(EPOLL_CLOEXEC));
  if (!ep.valid()) return sys::ErrnoStatus(errno, Describe(map), "epoll_create1");
  // Edge-triggered: the map polls writable whenever any byte is free, so a
  // level-triggered wait for a record larger than the free space would
  // spin. Each drain wakes the map's wait queue once, which is the edge.
  epoll_event e{};
  e.events = EPOLLOUT | EPOLLET;
  if (epoll_ctl(ep.get(), EPOLL_CTL_ADD, map.fd(), &e) < 0)
    return sys::ErrnoStatus(errno, Describe(map), "epoll_ctl");

  std::unique_ptr<UserRingBuffer> rb(new UserRingBuffer(map, ep.Release()));
  rb->page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  rb->size_ = map.max_entries();
  rb->mask_ = rb->size_ - 1;
  // The kernel refuses a writable mapping of the consumer page.
  void* cons = mmap(nullptr, rb->page_, PROT_READ, MAP_SHARED, map.fd(), 0);
  if (cons == MAP_FAILED) return sys::ErrnoStatus(errno, Describe(map), "mmap (consumer page)");
  rb->consumer_pos_ = static_cast<const uint64_t*>(cons);
  rb->producer_len_ = rb->page_ + 2 * rb->size_;
  void* prod = mmap(nullptr, rb->producer_len_, PROT_READ | PROT_WRITE, MAP_SHARED, map.fd(),
                    static_cast<off_t>(rb->page_));
  if (prod == MAP_FAILED) return sys::ErrnoStatus(errno, Describe(map), "mmap (producer pages)");
  rb->producer_pos_ = static_cast<uint64_t*>(prod);
  rb->data_ = static_cast<uint8_t*>(prod) + rb->page_;
  return rb;
}

int UserRingBuffer::TryReserve(uint32_t size, absl::Span<uint8_t>* record) {
  if (size > kMaxRecord) return E2BIG;
  const uint64_t total = (uint64_t{size} + BPF_RINGBUF_HDR_SZ + 7) & ~uint64_t{7};
  if (total > size_) return E2BIG;
  detail::MutexLock l(&lock_->mu);
  const uint64_t cons = LoadAcquire(consumer_pos_);
  // Only producers (serialised here) move it; relaxed would do, but the
  // kernel's view is what matters and it loads with acquire.
  const uint64_t prod = LoadAcquire(producer_pos_);
  if (size_ - (prod - cons) < total) return ENOSPC;
  uint32_t* hdr = reinterpret_cast<uint32_t*>(data_ + (prod & mask_));
  // BUSY is in place before the producer position moves past it, so the
  // kernel never reads a header we are still writing.
  std::atomic_ref<uint32_t>(hdr[0]).store(size | BPF_RINGBUF_BUSY_BIT, std::memory_order_relaxed);
  hdr[1] = 0;
  StoreRelease(producer_pos_, prod + total);
  *record = absl::MakeSpan(reinterpret_cast<uint8_t*>(hdr) + BPF_RINGBUF_HDR_SZ, size);
  return 0;
}

absl::Status UserRingBuffer::ReserveError(int err, uint32_t size) const {
  if (err == ENOSPC) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%s: reserve %u bytes: ENOSPC (the ring is full: %u of %u bytes not yet drained)",
        Describe(map_), size, UsedBytes(), size_));
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "%s: reserve %u bytes: E2BIG (a record takes its size plus an 8-byte header, rounded to "
      "8, and must fit in the %u-byte ring and under %u bytes)",
      Describe(map_), size, size_, kMaxRecord + 1));
}

absl::StatusOr<absl::Span<uint8_t>> UserRingBuffer::Reserve(uint32_t size) {
  absl::Span<uint8_t> record;
  int err = TryReserve(size, &record);
  if (err != 0) return ReserveError(err, size);
  return record;
}

absl::StatusOr<absl::Span<uint8_t>> UserRingBuffer::ReserveBlocking(
    uint32_t size, std::chrono::milliseconds timeout) {
  // Beyond a few centuries a timeout means "forever", and adding it to
  // now() would overflow.
  constexpr auto kForever = std::chrono::hours(24 * 365 * 100);
  if (timeout > kForever) timeout = std::chrono::milliseconds(-1);
  const auto deadline = std::chrono::steady_clock::now() +
                        (timeout.count() >= 0 ? timeout : std::chrono::milliseconds(0));
  absl::Span<uint8_t> record;
  for (;;) {
    int err = TryReserve(size, &record);
    if (err == 0) return record;
    if (err != ENOSPC) return ReserveError(err, size);
    int ms = -1;
    if (timeout.count() >= 0) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return absl::DeadlineExceededError(absl::StrFormat(
            "%s: reserve %u bytes: still full after %d ms (%u of %u bytes not yet drained)",
            Describe(map_), size, static_cast<int>(timeout.count()), UsedBytes(), size_));
      }
      ms = left.count() > INT32_MAX ? INT32_MAX : static_cast<int>(left.count());
    }
    // epoll wakes one waiter per edge, so with several threads blocked
    // here one may miss the drain that made room for it: each wait is
    // short, and the loop checks the ring again.
    if (ms < 0 || ms > kMaxWaitSliceMs) ms = kMaxWaitSliceMs;
    epoll_event e;
    if (epoll_wait(epoll_fd_, &e, 1, ms) < 0 && errno != EINTR)
      return sys::ErrnoStatus(errno, Describe(map_), "epoll_wait");
  }
}

// ThreadSanitizer cannot see the kernel: a record committed by one thread,
// drained by the kernel, whose space another thread then reserves, looks
// like two unordered writes to the same bytes. The kernel orders them (it
// drains only committed records, and releases the consumer position that
// Reserve acquires), but TSan needs an edge it can see: under TSan only,
// committing takes the reservation lock. A record's space can be reserved
// again only after its commit, so the lock orders the two.
void UserRingBuffer::Submit(absl::Span<uint8_t> record) {
#ifdef TETHER_TSAN
  detail::MutexLock l(&lock_->mu);
#endif
  Commit(record, false);
}

void UserRingBuffer::Discard(absl::Span<uint8_t> record) {
#ifdef TETHER_TSAN
  detail::MutexLock l(&lock_->mu);
#endif
  Commit(record, true);
}

absl::Status UserRingBuffer::Write(absl::Span<const uint8_t> data) {
  if (data.size() > kMaxRecord) return ReserveError(E2BIG, static_cast<uint32_t>(std::min<size_t>(data.size(), UINT32_MAX)));
  absl::Span<uint8_t> record;
  int err = TryReserve(static_cast<uint32_t>(data.size()), &record);
  if (err != 0) return ReserveError(err, static_cast<uint32_t>(data.size()));
  if (!data.empty()) memcpy(record.data(), data.data(), data.size());
  Submit(record);
  return absl::OkStatus();
}

uint64_t UserRingBuffer::UsedBytes() const {
  return LoadAcquire(producer_pos_) - LoadAcquire(consumer_pos_);
}

}  // namespace tether
