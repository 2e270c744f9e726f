// Times BPF_PROG_LOAD, and bpf(2) as a whole, for every loader in this
// process by interposing libc's syscall(): tether's sys layer and libbpf
// both enter bpf(2) through it, so "load minus time in PROG_LOAD" is each
// loader's own work apart from the verifier, and "load minus time in
// bpf(2)" its work apart from the kernel's. Kept in its own file, away from <unistd.h>, whose
// declaration of syscall() this definition replaces.
#include <dlfcn.h>
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <time.h>

#include <atomic>
#include <cstdarg>
#include <cstdint>

namespace tether::bench {

std::atomic<bool> g_count_prog_load{false};
std::atomic<uint64_t> g_prog_load_ns{0};
std::atomic<uint64_t> g_prog_load_calls{0};
std::atomic<uint64_t> g_bpf_ns{0};
std::atomic<uint64_t> g_bpf_calls{0};

}  // namespace tether::bench

namespace {

using SyscallFn = long (*)(long, ...);

SyscallFn Real() {
  static SyscallFn real = reinterpret_cast<SyscallFn>(dlsym(RTLD_NEXT, "syscall"));
  return real;
}

uint64_t Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + ts.tv_nsec;
}

}  // namespace

extern "C" long syscall(long number, ...) {
  va_list ap;
  va_start(ap, number);
  long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
  long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
  va_end(ap);
  if (number == __NR_bpf && tether::bench::g_count_prog_load.load(std::memory_order_relaxed)) {
    uint64_t t0 = Now();
    long r = Real()(number, a1, a2, a3, a4, a5, a6);
    uint64_t ns = Now() - t0;
    tether::bench::g_bpf_ns.fetch_add(ns, std::memory_order_relaxed);
    tether::bench::g_bpf_calls.fetch_add(1, std::memory_order_relaxed);
    if (a1 == BPF_PROG_LOAD) {
      tether::bench::g_prog_load_ns.fetch_add(ns, std::memory_order_relaxed);
      tether::bench::g_prog_load_calls.fetch_add(1, std::memory_order_relaxed);
    }
    return r;
  }
  return Real()(number, a1, a2, a3, a4, a5, a6);
}
