// libFuzzer entry point; the work is in fuzz_bodies.cc.
#include "fuzz_bodies.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tether::fuzz::FuzzBtf(absl::MakeConstSpan(data, size)).IgnoreError();
  return 0;
}
