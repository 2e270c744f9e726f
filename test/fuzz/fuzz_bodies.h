// What each fuzz target does with one input. The libFuzzer entry points
// (fuzz_*.cc) and the regression replay in the normal test suite
// (fuzz_replay_test.cc) call the same functions, so an input that once
// crashed a fuzzer is checked by every build, sanitized or not.
//
// Each body returns the Status of the step that refused the input (OK if
// it was accepted all the way), and aborts on a broken invariant, which
// the fuzzer reports as a crash.
#ifndef TETHER_TEST_FUZZ_FUZZ_BODIES_H_
#define TETHER_TEST_FUZZ_FUZZ_BODIES_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace tether::fuzz {

// CollectionSpec::FromMemory, then what `tether inspect` does: link every
// program with its sub-programs, read every variable, deep-copy the spec.
absl::Status FuzzElf(absl::Span<const uint8_t> data);

// Btf::Parse, a walk over every type (sizes, alignment, members by name),
// then two invariants: Marshal() re-parses to the same types, and the
// kernel-sanitized blob for the oldest feature set parses too.
absl::Status FuzzBtf(absl::Span<const uint8_t> data);

// The input is a target BTF. Every CO-RE relocation of the local objects
// (real clang output, see SetCoreLocalObjects) is applied against it.
absl::Status FuzzCore(absl::Span<const uint8_t> data);

// The objects whose programs and CO-RE records FuzzCore relocates. Must
// be called before the first FuzzCore; files that do not parse are an
// error.
absl::Status SetCoreLocalObjects(const std::vector<std::string>& paths);

// The corpus objects that carry CO-RE records: every relocation kind,
// bitfields, enums, poisoning, and 30 programs reading task_struct.
std::vector<std::string> DefaultCoreLocalObjects(const std::string& source_dir);

}  // namespace tether::fuzz

#endif  // TETHER_TEST_FUZZ_FUZZ_BODIES_H_
