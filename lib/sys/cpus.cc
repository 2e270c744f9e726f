#include "sys/cpus.h"

#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace tether::detail {

std::vector<uint32_t> ParseCpuList(absl::string_view text) {
  std::vector<uint32_t> cpus;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::vector<absl::string_view> range = absl::StrSplit(part, '-');
    uint32_t lo = 0, hi = 0;
    if (!absl::SimpleAtoi(range[0], &lo)) continue;
    hi = lo;
    if (range.size() == 2 && !absl::SimpleAtoi(range[1], &hi)) continue;
    for (uint32_t c = lo; c <= hi && c < 65536; ++c) cpus.push_back(c);
  }
  return cpus;
}

std::vector<uint32_t> ReadCpuList(const char* path) {
  std::ifstream in(path);
  std::string text;
  std::getline(in, text);
  return ParseCpuList(text);
}

}  // namespace tether::detail
