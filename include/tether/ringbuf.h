// RingBufferReader: consumes BPF_MAP_TYPE_RINGBUF maps in user space.
//
// Each ring is mapped once, straight from the kernel: the consumer page
// read-write (our position), the producer page and the data read-only, the
// data mapped twice in a row so that a record that wraps past the end of
// the ring is still one contiguous span. Records reach the callback as a
// span into the ring itself (no copy); the span is valid only during the
// callback, because the consumer position, advanced with release
// semantics after it returns, hands the space back to the producers.
// Records the producer still holds (BUSY) stop the walk until committed;
// discarded records are skipped.
//
// One reader serves any number of rings through one epoll set, plus an
// eventfd so that another thread can interrupt a wait.
//
// Threads: Add, Poll and Consume belong to one thread at a time; Wakeup
// may be called from any thread at any time.
#ifndef TETHER_RINGBUF_H_
#define TETHER_RINGBUF_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "tether/map.h"

struct epoll_event;

namespace tether {

class RingBufferReader {
 public:
  // Gets each record's payload (the 8-byte header excluded).
  using Callback = std::function<void(absl::Span<const uint8_t> record)>;

  // A reader with no rings: `auto reader = RingBufferReader::Create();`
  // then `reader->Add(map, callback)`. The reader is a movable value like
  // the handles: its epoll fd, eventfd and ring mappings move with it (epoll
  // knows the rings by index, and each ring's mapping sits behind a pointer
  // that does not move). A moved-from reader has no fds and no rings. Do not
  // move a reader while another thread may call Wakeup() on it.
  static absl::StatusOr<RingBufferReader> Create();
  ~RingBufferReader();
  RingBufferReader(RingBufferReader&& other) noexcept;
  RingBufferReader& operator=(RingBufferReader&& other) noexcept;
  RingBufferReader(const RingBufferReader&) = delete;
  RingBufferReader& operator=(const RingBufferReader&) = delete;

  // Maps `ringbuf` (a BPF_MAP_TYPE_RINGBUF) and delivers its records to
  // `callback`. The reader keeps the map alive. Returns the ring's index.
  absl::StatusOr<size_t> Add(const Map& ringbuf, Callback callback);

  // Waits until a ring has records, `timeout` passes (negative: no limit)
  // or Wakeup() is called, then delivers what the ready rings hold.
  // Returns the number of records delivered (0 after a timeout or wakeup).
  // Allocates nothing.
  absl::StatusOr<int> Poll(std::chrono::milliseconds timeout);
  // Delivers everything every ring holds now, without waiting.
  absl::StatusOr<int> Consume();
  // Delivers what ring `index` holds now.
  int ConsumeRing(size_t index);

  // Makes the current (or else the next) Poll return. Any thread.
  void Wakeup() const;
  // True if the last Poll returned because of Wakeup().
  bool woken() const { return woken_; }

  // Bytes committed or reserved but not yet consumed in ring `index`.
  uint64_t AvailableBytes(size_t index) const;
  size_t ring_count() const { return rings_.size(); }
  // The epoll fd, readable when any ring has data; for callers that nest
  // the reader in their own event loop (then call Consume).
  int epoll_fd() const { return epoll_fd_; }

 private:
  struct Ring;
  RingBufferReader(int epoll_fd, int event_fd);
  void CloseAll();

  int epoll_fd_ = -1;
  int event_fd_ = -1;
  bool woken_ = false;
  std::vector<std::unique_ptr<Ring>> rings_;
  std::unique_ptr<epoll_event[]> events_;
  size_t events_capacity_ = 0;
};

}  // namespace tether

#endif  // TETHER_RINGBUF_H_
