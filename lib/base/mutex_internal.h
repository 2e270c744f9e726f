// The lock the library uses: absl::Mutex, except under ThreadSanitizer.
//
// Debian ships libabsl built without TSan, so the happens-before edges of
// absl::Mutex (made inside the prebuilt libabsl_synchronization) are
// invisible to TSan, and every access it guards is reported as a race.
// Under TSan the same interface sits on std::mutex, whose pthread calls
// TSan intercepts; the locking discipline under test is identical.
#ifndef TETHER_LIB_MUTEX_INTERNAL_H_
#define TETHER_LIB_MUTEX_INTERNAL_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

#if defined(__SANITIZE_THREAD__)
#define TETHER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TETHER_TSAN 1
#endif
#endif

#ifdef TETHER_TSAN
#include <mutex>
#endif

namespace tether::detail {

#ifdef TETHER_TSAN

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

#else

using Mutex = absl::Mutex;
using MutexLock = absl::MutexLock;

#endif

}  // namespace tether::detail

#endif  // TETHER_LIB_MUTEX_INTERNAL_H_
