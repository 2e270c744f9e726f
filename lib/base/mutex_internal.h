// The lock the library uses: std::mutex behind absl::Mutex's interface and
// thread-safety annotations.
//
// Not absl::Mutex itself, for two reasons. Debian's libabsl runs deadlock
// detection on every Lock (a GraphCycles lookup per lock and unlock): 165 K
// user instructions of an agent-scale load, 3.6% of it, were that (callgrind,
// issue 21). And it is built without TSan, so the happens-before edges of
// absl::Mutex (made inside the prebuilt libabsl_synchronization) are
// invisible to TSan, which then reports every access it guards as a race;
// TSan intercepts std::mutex's pthread calls. The library never waits on a
// condition under these locks, so nothing of absl::Mutex beyond a lock is
// lost.
#ifndef TETHER_LIB_MUTEX_INTERNAL_H_
#define TETHER_LIB_MUTEX_INTERNAL_H_

#include <mutex>

#include "absl/base/const_init.h"
#include "absl/base/thread_annotations.h"

// Set under ThreadSanitizer, for code that must give TSan an ordering the
// kernel makes (lib/maps/user_ringbuf.cc).
#if defined(__SANITIZE_THREAD__)
#define TETHER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TETHER_TSAN 1
#endif
#endif

namespace tether::detail {

class ABSL_LOCKABLE Mutex {
 public:
  constexpr Mutex() = default;
  explicit constexpr Mutex(absl::ConstInitType) {}
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

}  // namespace tether::detail

#endif  // TETHER_LIB_MUTEX_INTERNAL_H_
