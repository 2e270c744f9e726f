// What the three handles (Map, Program, Link) have in common: one counted
// pointer to the object that owns the fd, and identity by that object.
// Written once here so that the handles differ only in what they do.
#ifndef TETHER_HANDLE_H_
#define TETHER_HANDLE_H_

#include <cstdint>
#include <type_traits>
#include <utility>

#include "tether/ref_counted.h"

namespace tether::detail {

// CRTP base: `Derived` is the handle, `Object` the counted object, which
// has fd() and info() (with id and type).
//
// The empty-handle contract, for every handle type and everything built on
// one (Map, Program, Link, ProgramArray, TypedMap, Queue, ...): a
// default-constructed or moved-from handle is safe to use. Accessors give
// a defined value: fd() -1, id() 0, type() 0, info() a value-initialised
// info (so name() ""), object() nullptr; operations that would need the
// kernel object return FailedPrecondition naming the operation and "the
// handle is empty". Nothing crashes. test/handle_test.cc walks them all.
template <typename Derived, typename Object>
class HandleBase {
 public:
  using Info = std::remove_cvref_t<decltype(std::declval<const Object&>().info())>;

  // False for a default-constructed or moved-from handle.
  explicit operator bool() const { return static_cast<bool>(obj_); }
  // -1 for an empty handle.
  int fd() const { return obj_ ? obj_->fd() : -1; }
  // The info read when the object was made; for an empty handle a
  // value-initialised one (id 0, type 0, empty name).
  const Info& info() const { return obj_ ? obj_->info() : EmptyInfo(); }
  // 0 for an empty handle (the kernel never hands out id 0).
  uint32_t id() const { return info().id; }
  uint32_t type() const { return info().type; }
  // nullptr for an empty handle.
  Object* object() const { return obj_.get(); }

  // Handles are equal when they share the object (not merely the kernel
  // object: a Clone() is another object on a dup'd fd).
  friend bool operator==(const Derived& a, const Derived& b) { return Ptr(a) == Ptr(b); }
  friend bool operator!=(const Derived& a, const Derived& b) { return Ptr(a) != Ptr(b); }
  friend bool operator<(const Derived& a, const Derived& b) { return Ptr(a) < Ptr(b); }
  template <typename H>
  friend H AbslHashValue(H h, const Derived& d) {
    return H::combine(std::move(h), Ptr(d));
  }

 protected:
  HandleBase() = default;
  explicit HandleBase(RefPtr<Object> obj) : obj_(std::move(obj)) {}

  RefPtr<Object> obj_;

 private:
  static const Info& EmptyInfo() {
    static const Info empty{};
    return empty;
  }
  static const Object* Ptr(const Derived& d) {
    return static_cast<const HandleBase&>(d).obj_.get();
  }
};

}  // namespace tether::detail

#endif  // TETHER_HANDLE_H_
