// Test-only access to the probe cache.
#ifndef TETHER_LIB_PROBE_INTERNAL_H_
#define TETHER_LIB_PROBE_INTERNAL_H_

namespace tether::probe::testing {
// Forgets every cached answer, so that the next probe asks the kernel (or
// the syscall layer's fault hook) again.
void ForgetAnswers();
}  // namespace tether::probe::testing

#endif  // TETHER_LIB_PROBE_INTERNAL_H_
