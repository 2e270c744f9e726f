// UserRingBuffer: produces records into a BPF_MAP_TYPE_USER_RINGBUF map
// (6.1), which BPF programs drain with bpf_user_ringbuf_drain().
//
// The roles of a ring buffer are swapped here: user space writes, the
// kernel consumes. The consumer page is mapped read-only (the kernel owns
// that position); the producer page and the data are mapped read-write,
// the data twice in a row, so a record that wraps past the end of the ring
// is still one contiguous span for the caller.
//
// A record is reserved (the kernel sees its header's BUSY bit and stops
// there), filled in place, then submitted or discarded (the kernel skips
// discarded records). Reserve allocates nothing and returns a span into the
// ring itself. Records are drained in the order they were reserved, so a
// record held back stalls the ones reserved after it.
//
// Threads: Reserve and ReserveBlocking may be called from several threads;
// they serialise on an internal lock, because the ring has one producer
// position. Submit and Discard touch only their record and may be called
// from any thread, in any order. Keep one UserRingBuffer per map: two
// would each think they own the producer position.
//
// A record reserved and never submitted or discarded blocks the ring for
// good: the kernel never moves past it.
#ifndef TETHER_USER_RINGBUF_H_
#define TETHER_USER_RINGBUF_H_

#include <chrono>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "tether/map.h"

namespace tether {

class UserRingBuffer {
 public:
  // Maps `map` (a BPF_MAP_TYPE_USER_RINGBUF). The producer keeps the map
  // alive.
  static absl::StatusOr<std::unique_ptr<UserRingBuffer>> Create(const Map& map);
  ~UserRingBuffer();
  UserRingBuffer(const UserRingBuffer&) = delete;
  UserRingBuffer& operator=(const UserRingBuffer&) = delete;

  // Reserves `size` bytes for one record and returns them, uninitialised.
  // ResourceExhausted when the ring has no room now (the BPF side has not
  // drained enough yet); InvalidArgument when the record can never fit:
  // larger than the ring with its 8-byte header, or than the kernel's
  // record size limit.
  absl::StatusOr<absl::Span<uint8_t>> Reserve(uint32_t size);
  // Like Reserve, but while the ring is full waits, up to `timeout`
  // (negative: no limit), for the kernel to drain records and say so.
  // DeadlineExceeded when the time runs out first.
  absl::StatusOr<absl::Span<uint8_t>> ReserveBlocking(uint32_t size,
                                                      std::chrono::milliseconds timeout);
  // Hands a reserved record to the kernel. `record` is the span that
  // Reserve returned; the caller must not touch it afterwards.
  void Submit(absl::Span<uint8_t> record);
  // Gives a reserved record up: the kernel skips it.
  void Discard(absl::Span<uint8_t> record);
  // Reserve, copy `data`, Submit.
  absl::Status Write(absl::Span<const uint8_t> data);

  // Bytes of the ring (the map's max_entries).
  uint64_t capacity() const { return size_; }
  // Bytes reserved or submitted and not yet drained, headers included.
  uint64_t UsedBytes() const;
  // The epoll fd that Reserve waits on: EPOLLOUT on the map fd, which the
  // kernel signals after a drain. For callers with their own event loop.
  int epoll_fd() const { return epoll_fd_; }
  const Map& map() const { return map_; }

 private:
  struct Locked;
  UserRingBuffer(Map map, int epoll_fd);
  // 0 and *record, or ENOSPC (no room now) or E2BIG (never fits).
  int TryReserve(uint32_t size, absl::Span<uint8_t>* record);
  absl::Status ReserveError(int err, uint32_t size) const;

  Map map_;
  int epoll_fd_;
  uint64_t size_ = 0;
  uint64_t mask_ = 0;
  size_t page_ = 0;
  const uint64_t* consumer_pos_ = nullptr;  // read-only: the kernel's
  uint64_t* producer_pos_ = nullptr;        // ours, with the data after it
  uint8_t* data_ = nullptr;
  size_t producer_len_ = 0;
  std::unique_ptr<Locked> lock_;
};

}  // namespace tether

#endif  // TETHER_USER_RINGBUF_H_
