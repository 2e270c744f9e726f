// Names from object files, bpffs and /proc can hold any bytes: escape
// sequences that would drive a terminal, or bytes that are not UTF-8.
// These helpers make such names safe to print and to put in JSON.
// Internal; used by the graph's text output and the CLI.
#ifndef TETHER_LIB_BASE_PRINTABLE_H_
#define TETHER_LIB_BASE_PRINTABLE_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace tether::base {

// Length of the well-formed UTF-8 sequence (RFC 3629: shortest form, no
// surrogates, at most U+10FFFF) that starts `s`, or 0 if none does.
size_t Utf8SequenceLength(absl::string_view s);

// `name` with every control byte (C0, DEL, and the C1 code points U+0080 to
// U+009F), every byte that is not part of well-formed UTF-8, and the
// backslash itself written as \xNN (backslash as \\), so that the result
// is plain, unambiguous text a terminal cannot act on.
std::string Printable(absl::string_view name);

// Like Printable, for whole lines of output that the program composed: keeps
// '\n' and '\t', escapes everything else Printable escapes except the
// backslash (which composed text may legitimately contain).
std::string PrintableText(absl::string_view text);

}  // namespace tether::base

#endif  // TETHER_LIB_BASE_PRINTABLE_H_
