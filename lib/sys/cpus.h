// CPU sets from sysfs ("0-3,5,7-8"). Internal.
#ifndef TETHER_LIB_CPUS_H_
#define TETHER_LIB_CPUS_H_

#include <cstdint>
#include <vector>

#include "absl/strings/string_view.h"

namespace tether::detail {

// Parses a kernel CPU list; malformed parts are skipped.
std::vector<uint32_t> ParseCpuList(absl::string_view text);
// Reads and parses a file such as /sys/devices/system/cpu/possible.
std::vector<uint32_t> ReadCpuList(const char* path);

}  // namespace tether::detail

#endif  // TETHER_LIB_CPUS_H_
