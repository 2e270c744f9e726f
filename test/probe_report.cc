// Prints what the feature probes find on the running kernel, one probe a
// line. CI runs it on every kernel of the matrix; docs/kernels.md quotes it.
#include <cstdio>

#include "tether/probe.h"

int main() {
  tether::probe::ProbeAll();
  std::printf("kernel: %s\n%s", tether::probe::KernelRelease().c_str(),
              tether::probe::Report().c_str());
  return 0;
}
