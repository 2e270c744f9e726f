#include "base/printable.h"

#include <cstdint>

#include "absl/strings/str_format.h"

namespace tether::base {
namespace {

bool IsContinuation(unsigned char c) { return (c & 0xc0) == 0x80; }

// U+0080..U+009F (C1 controls, e.g. U+009B, the single-character CSI)
// encode as C2 80..C2 9F.
bool IsC1Control(absl::string_view seq) {
  return seq.size() == 2 && static_cast<unsigned char>(seq[0]) == 0xc2 &&
         static_cast<unsigned char>(seq[1]) <= 0x9f;
}

void AppendEscapedBytes(absl::string_view bytes, std::string* out) {
  for (char c : bytes) absl::StrAppendFormat(out, "\\x%02x", static_cast<unsigned char>(c));
}

std::string Escape(absl::string_view in, bool keep_layout, bool escape_backslash) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    unsigned char c = static_cast<unsigned char>(in[i]);
    if (c < 0x80) {
      bool layout = keep_layout && (c == '\n' || c == '\t');
      if ((c < 0x20 || c == 0x7f) && !layout) {
        AppendEscapedBytes(in.substr(i, 1), &out);
      } else if (c == '\\' && escape_backslash) {
        out += "\\\\";
      } else {
        out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    size_t n = Utf8SequenceLength(in.substr(i));
    if (n == 0) {
      AppendEscapedBytes(in.substr(i, 1), &out);
      ++i;
      continue;
    }
    absl::string_view seq = in.substr(i, n);
    if (IsC1Control(seq)) {
      AppendEscapedBytes(seq, &out);
    } else {
      out.append(seq.data(), seq.size());
    }
    i += n;
  }
  return out;
}

}  // namespace

size_t Utf8SequenceLength(absl::string_view s) {
  if (s.empty()) return 0;
  auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char lead = at(0);
  if (lead < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if (lead >= 0xc2 && lead <= 0xdf) {
    n = 2;
    cp = lead & 0x1f;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    n = 3;
    cp = lead & 0x0f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    n = 4;
    cp = lead & 0x07;
  } else {
    return 0;  // a continuation byte, an overlong C0/C1 lead, or F5..FF
  }
  if (s.size() < n) return 0;
  for (size_t k = 1; k < n; ++k) {
    if (!IsContinuation(at(k))) return 0;
    cp = (cp << 6) | (at(k) & 0x3f);
  }
  if (n == 3 && cp < 0x800) return 0;                    // overlong
  if (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) return 0;  // overlong or too large
  if (cp >= 0xd800 && cp <= 0xdfff) return 0;             // surrogate
  return n;
}

std::string Printable(absl::string_view name) {
  return Escape(name, /*keep_layout=*/false, /*escape_backslash=*/true);
}

std::string PrintableText(absl::string_view text) {
  return Escape(text, /*keep_layout=*/true, /*escape_backslash=*/false);
}

}  // namespace tether::base
