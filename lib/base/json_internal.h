// JSON string escaping shared by the graph exports and the CLI. Internal.
#ifndef TETHER_LIB_JSON_INTERNAL_H_
#define TETHER_LIB_JSON_INTERNAL_H_

#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "base/printable.h"

namespace tether::detail {

// The body of a JSON string (no quotes). The output is valid UTF-8 that
// cannot drive a terminal: control characters (C0, DEL, C1) become \uXXXX,
// and a byte that is not part of well-formed UTF-8 (names from object files
// and bpffs may hold any bytes) becomes the six characters \\xNN, which read
// back as the text "\xNN" (a real backslash in a name reads back as "\\").
inline std::string JsonEscape(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t n = base::Utf8SequenceLength(s.substr(i));
      if (n == 0) {
        out += absl::StrFormat("\\\\x%02x", c);
        ++i;
      } else if (n == 2 && c == 0xc2 && static_cast<unsigned char>(s[i + 1]) <= 0x9f) {
        out += absl::StrFormat("\\u%04x", static_cast<unsigned char>(s[i + 1]));
        i += 2;
      } else {
        out.append(s.data() + i, n);
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  return out;
}

// A quoted JSON string.
inline std::string JsonString(absl::string_view s) { return "\"" + JsonEscape(s) + "\""; }

}  // namespace tether::detail

#endif  // TETHER_LIB_JSON_INTERNAL_H_
