// libFuzzer entry point; the work is in fuzz_bodies.cc. The input is a
// target BTF; the local side is the corpus objects that carry CO-RE
// records, or the colon-separated list in TETHER_FUZZ_CORE_OBJECTS.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "fuzz_bodies.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::vector<std::string> paths;
  if (const char* env = getenv("TETHER_FUZZ_CORE_OBJECTS")) {
    paths = absl::StrSplit(env, ':', absl::SkipEmpty());
  } else {
    paths = tether::fuzz::DefaultCoreLocalObjects(TETHER_SOURCE_DIR);
  }
  absl::Status st = tether::fuzz::SetCoreLocalObjects(paths);
  if (!st.ok()) {
    fprintf(stderr, "fuzz_core: %s\n", std::string(st.message()).c_str());
    abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tether::fuzz::FuzzCore(absl::MakeConstSpan(data, size)).IgnoreError();
  return 0;
}
