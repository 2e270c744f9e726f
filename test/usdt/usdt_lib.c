/* A shared library with a USDT probe, loaded by usdt_target: attaching to
 * the library file reaches the probe at whatever address the process
 * mapped it. */
#include <sys/sdt.h>

__attribute__((noinline)) long tether_usdt_lib_call(long v) {
  long doubled = v * 2;
  DTRACE_PROBE2(tether_lib, called, v, doubled);
  return doubled;
}
