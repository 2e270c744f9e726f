// A small intrusive reference count, in the manner of LLVM's
// IntrusiveRefCntPtr and Chromium's scoped_refptr.
//
// The count lives in the object, so a handle is one pointer wide and
// copying it is one atomic increment: no control block, no second
// allocation, no type-erased deleter.
#ifndef TETHER_REF_COUNTED_H_
#define TETHER_REF_COUNTED_H_

#include <atomic>
#include <cstdint>
#include <utility>

namespace tether {

template <typename Derived>
class RefCounted {
 public:
  RefCounted(const RefCounted&) = delete;
  RefCounted& operator=(const RefCounted&) = delete;

  void AddRef() const { refs_.fetch_add(1, std::memory_order_relaxed); }

  void Release() const {
    // acq_rel: the thread that deletes must see every write made through
    // the other handles before they were dropped.
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      delete static_cast<const Derived*>(this);
    }
  }

  // True when the caller's handle is the only one. A hint only: another
  // thread holding a handle may copy it at any time.
  bool HasOneRef() const { return refs_.load(std::memory_order_acquire) == 1; }
  uint32_t RefCountForTesting() const { return refs_.load(std::memory_order_acquire); }

 protected:
  RefCounted() = default;
  ~RefCounted() = default;

 private:
  mutable std::atomic<uint32_t> refs_{0};
};

// Owning pointer to a RefCounted object.
template <typename T>
class RefPtr {
 public:
  constexpr RefPtr() noexcept = default;
  constexpr RefPtr(std::nullptr_t) noexcept {}
  explicit RefPtr(T* ptr) noexcept : ptr_(ptr) {
    if (ptr_) ptr_->AddRef();
  }
  RefPtr(const RefPtr& other) noexcept : ptr_(other.ptr_) {
    if (ptr_) ptr_->AddRef();
  }
  RefPtr(RefPtr&& other) noexcept : ptr_(std::exchange(other.ptr_, nullptr)) {}
  ~RefPtr() {
    if (ptr_) ptr_->Release();
  }

  RefPtr& operator=(const RefPtr& other) noexcept {
    RefPtr(other).swap(*this);
    return *this;
  }
  RefPtr& operator=(RefPtr&& other) noexcept {
    RefPtr(std::move(other)).swap(*this);
    return *this;
  }

  void swap(RefPtr& other) noexcept { std::swap(ptr_, other.ptr_); }
  void reset() noexcept { RefPtr().swap(*this); }

  T* get() const noexcept { return ptr_; }
  T* operator->() const noexcept { return ptr_; }
  T& operator*() const noexcept { return *ptr_; }
  explicit operator bool() const noexcept { return ptr_ != nullptr; }

  friend bool operator==(const RefPtr& a, const RefPtr& b) { return a.ptr_ == b.ptr_; }

 private:
  T* ptr_ = nullptr;
};

}  // namespace tether

#endif  // TETHER_REF_COUNTED_H_
