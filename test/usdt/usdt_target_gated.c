/* The semaphore-gated probe of usdt_target.c. A translation unit of its
 * own: <sys/sdt.h> gives every probe in a unit a semaphore or none. */
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

__extension__ unsigned short tether_test_gated_semaphore __attribute__((unused))
__attribute__((section(".probes")));

int tether_usdt_gated_semaphore_value(void) {
  return *(volatile unsigned short*)&tether_test_gated_semaphore;
}

__attribute__((noinline)) int tether_usdt_fire_gated(long x) {
  if (!tether_test_gated_semaphore) return 0;
  DTRACE_PROBE1(tether_test, gated, x);
  return 1;
}
