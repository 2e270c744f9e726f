#!/usr/bin/env bash
# One entry point for people and CI, on a fresh Debian bookworm machine as
# root: installs what is missing, builds, and runs the demo or the tests.
#
#   bash scripts/run.sh demo    # the tail-call trap, caught (README command 1)
#   bash scripts/run.sh test    # the whole suite on this kernel (as is, and refusing arena and tracing), then on Debian's 6.12 and 6.1 in qemu (command 2)
#   bash scripts/run.sh test-host  # the suite on this kernel only (quick)
#   bash scripts/run.sh sanitize   # the suite under ASan+UBSan, then under TSan
#   bash scripts/run.sh fuzz [S]   # the three libFuzzer targets, S seconds each (default 60)
#   bash scripts/run.sh bench   # benchmarks (release build) -> docs/benchmarks.md
#   bash scripts/run.sh deps    # only install the packages
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${TETHER_BUILD_DIR:-$ROOT/build}

# Debian packages the build, the tests and the demo need.
PACKAGES=(
  g++ meson ninja-build pkg-config
  libabsl-dev libelf-dev zlib1g-dev catch2 libbenchmark-dev
  clang llvm libbpf-dev bpftool linux-libc-dev
  graphviz gnuplot-nox iproute2 iputils-ping util-linux procps valgrind
  libclang-rt-14-dev
  cmake doxygen man-db python3-prometheus-client systemtap-sdt-dev
)

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "run.sh: run as root: tether creates real BPF objects in the kernel" >&2
    exit 1
  fi
}

install_deps() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "run.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

mount_bpffs() {
  if ! mount | grep -q "on /sys/fs/bpf type bpf"; then
    mkdir -p /sys/fs/bpf
    mount -t bpf bpf /sys/fs/bpf
  fi
}

build() {
  if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" -Dtests=enabled >/dev/null
  fi
  ninja -C "$BUILD"
}

# A sanitized build of the suite. Unoptimised: compiling is most of the
# cost here, and the tests spend their time in syscalls anyway.
build_sanitized() {  # DIR SANITIZERS
  if [ ! -f "$1/build.ninja" ]; then
    meson setup "$1" --buildtype=debug -Db_sanitize="$2" -Db_lundef=false \
      -Dtests=enabled -Dbench=disabled >/dev/null
  fi
  ninja -C "$1"
}

case "${1:-}" in
  deps)
    need_root; install_deps ;;
  demo)
    need_root; install_deps; mount_bpffs; build
    "$BUILD/tools/tether-demo" "$BUILD/demo-out" ;;
  test)
    need_root; install_deps; mount_bpffs; build
    # Host kernel (as is, then refusing arena maps and tracing programs),
    # then the 6.12 and 6.1 VMs; prints a test x kernel matrix.
    bash test/vm/ci-vm.sh "$BUILD" ;;
  test-host)
    need_root; install_deps; mount_bpffs; build
    meson test -C "$BUILD" --print-errorlogs --no-rebuild ;;
  sanitize)
    need_root; install_deps; mount_bpffs
    ASAN=${TETHER_ASAN_BUILD_DIR:-$ROOT/build-asan}
    TSAN=${TETHER_TSAN_BUILD_DIR:-$ROOT/build-tsan}
    build_sanitized "$ASAN" address,undefined
    echo "run.sh: the whole suite under ASan+UBSan"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "$ASAN/test/tether_tests"
    build_sanitized "$TSAN" thread
    # TSan's shadow layout does not fit the newest kernels' mmap randomisation
    # (vm.mmap_rnd_bits > 28): run without ASLR, as LLVM advises.
    echo "run.sh: the whole suite under TSan"
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
      setarch "$(uname -m)" -R "$TSAN/test/tether_tests" ;;
  fuzz)
    need_root; install_deps
    FUZZ=${TETHER_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}
    if [ ! -f "$FUZZ/build.ninja" ]; then
      CXX=clang++-14 meson setup "$FUZZ" -Dfuzz=enabled -Db_sanitize=address,undefined \
        -Db_lundef=false -Dtests=disabled -Dbench=disabled >/dev/null
    fi
    ninja -C "$FUZZ" test/fuzz/fuzz_elf test/fuzz/fuzz_btf test/fuzz/fuzz_core
    # Seeds: the corpus, plus the test objects when the main build has them.
    bash test/fuzz/run-fuzzers.sh "$FUZZ" "${2:-60}" $( [ -d "$BUILD/test" ] && echo "$BUILD/test" ) ;;
  bench)
    need_root; install_deps; mount_bpffs
    REL=${TETHER_RELEASE_DIR:-$ROOT/build-release}
    if [ ! -f "$REL/build.ninja" ]; then
      meson setup "$REL" --buildtype=release -Dtests=enabled -Dbench=enabled >/dev/null
    fi
    ninja -C "$REL"
    python3 bench/report.py --build "$REL" ;;
  *)
    echo "usage: bash scripts/run.sh demo|test|test-host|sanitize|fuzz [SECONDS]|bench|deps" >&2
    exit 2 ;;
esac
