#include "tether/ringbuf.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "sys/bpf.h"

namespace tether {

namespace {

constexpr uint64_t kWakeTag = ~uint64_t{0};

std::string Describe(const Map& map) {
  return absl::StrFormat("ring buffer '%s' (id %u)", map.name(), map.id());
}

// The positions live in memory the kernel writes from other CPUs; atomic_ref
// gives the loads and stores the ordering the ring protocol needs.
inline uint64_t LoadAcquire(const uint64_t* p) {
  return std::atomic_ref<uint64_t>(*const_cast<uint64_t*>(p)).load(std::memory_order_acquire);
}
inline uint32_t LoadAcquire(const uint32_t* p) {
  return std::atomic_ref<uint32_t>(*const_cast<uint32_t*>(p)).load(std::memory_order_acquire);
}
inline void StoreRelease(uint64_t* p, uint64_t v) {
  std::atomic_ref<uint64_t>(*p).store(v, std::memory_order_release);
}

}  // namespace

struct RingBufferReader::Ring {
  Map map;
  Callback callback;
  uint64_t* consumer_pos = nullptr;        // the rw consumer page
  const uint64_t* producer_pos = nullptr;  // the ro producer page
  const uint8_t* data = nullptr;           // the ring, mapped twice in a row
  uint64_t mask = 0;
  size_t page = 0;
  size_t producer_len = 0;

  ~Ring() {
    if (consumer_pos) munmap(consumer_pos, page);
    if (producer_pos) munmap(const_cast<uint64_t*>(producer_pos), producer_len);
  }
};

RingBufferReader::RingBufferReader(int epoll_fd, int event_fd)
    : epoll_fd_(epoll_fd), event_fd_(event_fd) {}

void RingBufferReader::CloseAll() {
  rings_.clear();
  if (event_fd_ >= 0) close(event_fd_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
  event_fd_ = epoll_fd_ = -1;
}

RingBufferReader::~RingBufferReader() { CloseAll(); }

RingBufferReader::RingBufferReader(RingBufferReader&& other) noexcept
    : epoll_fd_(std::exchange(other.epoll_fd_, -1)),
      event_fd_(std::exchange(other.event_fd_, -1)),
      woken_(other.woken_),
      rings_(std::move(other.rings_)),
      events_(std::move(other.events_)),
      events_capacity_(std::exchange(other.events_capacity_, 0)) {
  other.rings_.clear();
}

RingBufferReader& RingBufferReader::operator=(RingBufferReader&& other) noexcept {
  if (this == &other) return *this;
  CloseAll();
  epoll_fd_ = std::exchange(other.epoll_fd_, -1);
  event_fd_ = std::exchange(other.event_fd_, -1);
  woken_ = other.woken_;
  rings_ = std::move(other.rings_);
  other.rings_.clear();
  events_ = std::move(other.events_);
  events_capacity_ = std::exchange(other.events_capacity_, 0);
  return *this;
}

absl::StatusOr<RingBufferReader> RingBufferReader::Create() {
  sys::Fd ep(epoll_create1(EPOLL_CLOEXEC));
  if (!ep.valid()) return sys::ErrnoStatus(errno, "ring buffer reader", "epoll_create1");
  sys::Fd ev(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!ev.valid()) return sys::ErrnoStatus(errno, "ring buffer reader", "eventfd");
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.u64 = kWakeTag;
  if (epoll_ctl(ep.get(), EPOLL_CTL_ADD, ev.get(), &e) < 0)
    return sys::ErrnoStatus(errno, "ring buffer reader", "epoll_ctl (eventfd)");
  RingBufferReader r(ep.Release(), ev.Release());
  r.events_capacity_ = 1;
  r.events_.reset(new epoll_event[1]);
  return r;
}

namespace {
absl::Status MovedFromError(absl::string_view op) {
  return absl::FailedPreconditionError(
      absl::StrCat("ring buffer reader: ", op, ": the reader was moved from (it has no epoll fd)"));
}
}  // namespace

absl::StatusOr<size_t> RingBufferReader::Add(const Map& map, Callback callback) {
  if (epoll_fd_ < 0) return MovedFromError("add");
  if (!map) return absl::InvalidArgumentError("ring buffer reader: add: the map handle is empty");
  if (map.type() != BPF_MAP_TYPE_RINGBUF) {
    return absl::InvalidArgumentError(absl::StrFormat("map '%s' (id %u): add: a %s, not a ringbuf",
                                                      map.name(), map.id(), MapTypeName(map.type())));
  }
  if (!callback) return absl::InvalidArgumentError(absl::StrCat(Describe(map), ": add: no callback"));
  auto ring = std::make_unique<Ring>();
  ring->map = map;
  ring->callback = std::move(callback);
  ring->page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const uint64_t size = map.max_entries();
  ring->mask = size - 1;

  void* cons = mmap(nullptr, ring->page, PROT_READ | PROT_WRITE, MAP_SHARED, map.fd(), 0);
  if (cons == MAP_FAILED) return sys::ErrnoStatus(errno, Describe(map), "mmap (consumer page)");
  ring->consumer_pos = static_cast<uint64_t*>(cons);
  // The producer page, then the data twice: the kernel maps it so.
  ring->producer_len = ring->page + 2 * size;
  void* prod = mmap(nullptr, ring->producer_len, PROT_READ, MAP_SHARED, map.fd(),
                    static_cast<off_t>(ring->page));
  if (prod == MAP_FAILED) return sys::ErrnoStatus(errno, Describe(map), "mmap (producer pages)");
  ring->producer_pos = static_cast<const uint64_t*>(prod);
  ring->data = static_cast<const uint8_t*>(prod) + ring->page;

  epoll_event e{};
  e.events = EPOLLIN;
  e.data.u64 = rings_.size();
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, map.fd(), &e) < 0)
    return sys::ErrnoStatus(errno, Describe(map), "epoll_ctl");

  // Room for every ring and the eventfd, so Poll never allocates.
  size_t want = rings_.size() + 2;
  if (events_capacity_ < want) {
    events_.reset(new epoll_event[want]);
    events_capacity_ = want;
  }
  rings_.push_back(std::move(ring));
  return rings_.size() - 1;
}

int RingBufferReader::ConsumeRing(size_t index) {
  Ring& r = *rings_[index];
  int delivered = 0;
  uint64_t cons = LoadAcquire(r.consumer_pos);
  for (;;) {
    const uint64_t prod = LoadAcquire(r.producer_pos);
    if (cons >= prod) break;
    while (cons < prod) {
      const uint32_t* hdr = reinterpret_cast<const uint32_t*>(r.data + (cons & r.mask));
      // Acquire pairs with the producer's commit, which clears BUSY after
      // writing the payload.
      const uint32_t len = LoadAcquire(hdr);
      if (len & BPF_RINGBUF_BUSY_BIT) return delivered;
      const uint32_t payload = len & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
      const uint64_t total = (uint64_t{payload} + BPF_RINGBUF_HDR_SZ + 7) & ~uint64_t{7};
      if (!(len & BPF_RINGBUF_DISCARD_BIT)) {
        r.callback(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(hdr) + BPF_RINGBUF_HDR_SZ,
                                       payload));
        ++delivered;
      }
      cons += total;
      // Per record, so producers get space back as early as possible.
      StoreRelease(r.consumer_pos, cons);
    }
  }
  return delivered;
}

absl::StatusOr<int> RingBufferReader::Consume() {
  int total = 0;
  for (size_t i = 0; i < rings_.size(); ++i) total += ConsumeRing(i);
  return total;
}

absl::StatusOr<int> RingBufferReader::Poll(std::chrono::milliseconds timeout) {
  if (epoll_fd_ < 0) return MovedFromError("poll");
  woken_ = false;
  int ms = timeout.count() < 0 ? -1
           : timeout.count() > INT32_MAX ? INT32_MAX
                                        : static_cast<int>(timeout.count());
  int n = epoll_wait(epoll_fd_, events_.get(), static_cast<int>(events_capacity_), ms);
  if (n < 0) {
    if (errno == EINTR) return 0;
    return sys::ErrnoStatus(errno, "ring buffer reader", "epoll_wait");
  }
  int total = 0;
  for (int i = 0; i < n; ++i) {
    uint64_t tag = events_[i].data.u64;
    if (tag == kWakeTag) {
      uint64_t count;
      // Resets the eventfd; EAGAIN means another Poll already drained it.
      (void)!read(event_fd_, &count, sizeof(count));
      woken_ = true;
      continue;
    }
    total += ConsumeRing(static_cast<size_t>(tag));
  }
  return total;
}

void RingBufferReader::Wakeup() const {
  uint64_t one = 1;
  // Only EAGAIN (counter saturated: a wakeup is pending anyway) can fail.
  (void)!write(event_fd_, &one, sizeof(one));
}

uint64_t RingBufferReader::AvailableBytes(size_t index) const {
  const Ring& r = *rings_[index];
  return LoadAcquire(r.producer_pos) - LoadAcquire(r.consumer_pos);
}

}  // namespace tether
