// Early return on error, for the Abseil of Debian bookworm (20220623),
// which has no status macros of its own.
#ifndef TETHER_LIB_BASE_STATUS_MACROS_H_
#define TETHER_LIB_BASE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

#define TETHER_STATUS_CONCAT_INNER_(a, b) a##b
#define TETHER_STATUS_CONCAT_(a, b) TETHER_STATUS_CONCAT_INNER_(a, b)

// Returns the status of `expr` (an absl::Status, or the status() of an
// absl::StatusOr) from the enclosing function when it is not OK.
#define TETHER_RETURN_IF_ERROR(expr)                                              \
  do {                                                                          \
    const ::absl::Status TETHER_STATUS_CONCAT_(tether_st_, __LINE__) =          \
        ::tether::base::AsStatus(expr);                                         \
    if (!TETHER_STATUS_CONCAT_(tether_st_, __LINE__).ok())                      \
      return TETHER_STATUS_CONCAT_(tether_st_, __LINE__);                       \
  } while (0)

// `TETHER_ASSIGN_OR_RETURN(auto x, MakeX());`: declares or assigns `lhs`
// from an absl::StatusOr's value, or returns its status.
#define TETHER_ASSIGN_OR_RETURN(lhs, expr) \
  TETHER_ASSIGN_OR_RETURN_IMPL_(TETHER_STATUS_CONCAT_(tether_or_, __LINE__), lhs, expr)
#define TETHER_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(*tmp)

namespace tether::base {
// `prefix: message`, same code, payloads (the errno) kept.
inline absl::Status Annotate(const absl::Status& st, absl::string_view prefix) {
  absl::Status out(st.code(), absl::StrCat(prefix, ": ", st.message()));
  st.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, payload);
  });
  return out;
}

inline const absl::Status& AsStatus(const absl::Status& st) { return st; }
template <typename T>
const absl::Status& AsStatus(const T& status_or) {
  return status_or.status();
}
}  // namespace tether::base

#endif  // TETHER_LIB_BASE_STATUS_MACROS_H_
