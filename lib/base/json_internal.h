// JSON string escaping shared by the graph exports and the CLI. Internal.
#ifndef TETHER_LIB_JSON_INTERNAL_H_
#define TETHER_LIB_JSON_INTERNAL_H_

#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace tether::detail {

// The body of a JSON string (no quotes).
inline std::string JsonEscape(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  return out;
}

// A quoted JSON string.
inline std::string JsonString(absl::string_view s) { return "\"" + JsonEscape(s) + "\""; }

}  // namespace tether::detail

#endif  // TETHER_LIB_JSON_INTERNAL_H_
