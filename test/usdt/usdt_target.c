/* A USDT target for usdt_test.cc: probes from <sys/sdt.h>, fired on
 * command. Built at -O2 so that the compiler puts the arguments where the
 * test wants each kind: one in a register, two in memory (volatile locals,
 * addressed off %rsp), one a constant.
 *
 * Commands on stdin, one a line; each answer is one line on stdout:
 *   fire N   fires tether_test:args N times, answers "fired N"
 *   sem      answers "sem V", V the gated probe's semaphore
 *   gated X  fires tether_test:gated with X if its semaphore is set,
 *            answers "gated 1" or "gated 0" (not fired)
 *   lib X    calls into libtether_usdt_lib.so, which fires
 *            tether_lib:called with X and 2X; answers "lib 2X"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sdt.h>

/* In usdt_target_gated.c: the probe with a semaphore. */
int tether_usdt_gated_semaphore_value(void);
int tether_usdt_fire_gated(long x);
/* In usdt_lib.c, a shared library. */
long tether_usdt_lib_call(long v);

/* noinline: the probe sites stay in one function whatever the caller. */
__attribute__((noinline)) static void fire_args(int i) {
  int in_register = 1000 + i * 3;
  volatile short in_memory = (short)(-100 - i);
  volatile long long in_memory64 = 0x123456789LL + i;
  DTRACE_PROBE4(tether_test, args, in_register, in_memory, 42, in_memory64);
}

int main(void) {
  char line[128];
  setvbuf(stdout, NULL, _IOLBF, 0);
  while (fgets(line, sizeof(line), stdin)) {
    long n = 0;
    if (sscanf(line, "fire %ld", &n) == 1) {
      for (long i = 0; i < n; ++i) fire_args((int)i);
      printf("fired %ld\n", n);
    } else if (strncmp(line, "sem", 3) == 0) {
      printf("sem %d\n", tether_usdt_gated_semaphore_value());
    } else if (sscanf(line, "lib %ld", &n) == 1) {
      printf("lib %ld\n", tether_usdt_lib_call(n));
    } else if (sscanf(line, "gated %ld", &n) == 1) {
      printf("gated %d\n", tether_usdt_fire_gated(n));
    } else {
      printf("unknown command\n");
    }
  }
  return 0;
}
