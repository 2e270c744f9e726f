#!/usr/bin/env bash
# ci-vm.sh [--no-host] BUILD_DIR
#
# Runs tether's test suite with CI=true (only probe-backed skips are
# allowed) on the host kernel, again on the host playing a kernel that
# refuses arena maps and tracing programs (TETHER_TEST_REFUSE), and on
# Debian's 6.12 and 6.1 kernels in qemu; then prints a test x kernel
# matrix and the feature probes of each kernel.
#
# BUILD_DIR is a configured and built meson build dir: it needs
# test/tether_tests and test/tether_probe_report. Results land in
# BUILD_DIR/vm-ci/ (JUnit-free Catch2 XML, probe reports, matrix.md).
#
# Exit status: 0 when every run passed; otherwise the first failing run's
# status (124: the VM timed out, 125: the VM died or could not start).
#
# Needs, as root: qemu-system-x86 busybox-static cpio kmod (installed here
# with apt-get when missing) and Debian's package archive for the kernel
# (apt-get download; cached in TETHER_VM_CACHE, default /var/cache/tether-vm).
# TETHER_VM_KERNELS='6.12 6.1' (the default) picks the series to boot;
# TETHER_VM_KERNEL_DEB=path/to/linux-image-*.deb boots that one instead.
# TETHER_VM_TESTS='[tag]...' runs a Catch2 subset in the VM (default: all).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The sources are shared too: the tests read files under them, and a
# checkout under /tmp would otherwise hide behind the guest's own /tmp.
SRC=$(cd "$HERE/../.." && pwd)
RUN_HOST=1
if [ "${1:-}" = --no-host ]; then RUN_HOST=0; shift; fi
[ $# -eq 1 ] || { echo "usage: $0 [--no-host] BUILD_DIR" >&2; exit 2; }
BUILD=$(realpath -e -- "$1")
TESTS=$BUILD/test/tether_tests
PROBES=$BUILD/test/tether_probe_report
for f in "$TESTS" "$PROBES"; do
    [ -x "$f" ] || { echo "ci-vm: $f is missing: build first (ninja -C $BUILD)" >&2; exit 2; }
done
OUT=$BUILD/vm-ci
rm -rf "$OUT"; mkdir -p "$OUT"
export TETHER_VM_CACHE=${TETHER_VM_CACHE:-/var/cache/tether-vm}
mkdir -p "$TETHER_VM_CACHE"

log() { echo "ci-vm: $*" >&2; }

install_tools() {
    local need=()
    command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
    [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || need+=(busybox-static)
    command -v cpio >/dev/null || need+=(cpio)
    command -v depmod >/dev/null || need+=(kmod)
    [ ${#need[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || { log "missing ${need[*]} and not root to install them"; exit 125; }
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null ||
        { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; } ||
        { log "apt-get install ${need[*]} failed"; exit 125; }
}

# The bookworm package of a kernel series: 6.1 is what linux-image-amd64
# points at, 6.12 the newest linux-image-6.12.*+deb12-amd64-unsigned.
kernel_pkg() {  # SERIES
    case "$1" in
        6.1) apt-cache depends linux-image-amd64 2>/dev/null |
                 sed -n 's/^ *Depends: \(linux-image-6\.1\.[0-9]*-[0-9]*-amd64\)$/\1/p' | head -n1 ;;
        6.12) apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' 2>/dev/null |
                 cut -d' ' -f1 | sort -V | tail -n1 ;;
    esac
}

# That package as a .deb, downloaded once into the cache (never installed).
# Prints its path.
kernel_deb() {  # SERIES
    local series=$1 pkg have
    pkg=$(kernel_pkg "$series")
    if [ -z "$pkg" ]; then
        apt-get update -q >/dev/null 2>&1 || true
        pkg=$(kernel_pkg "$series")
    fi
    if [ -n "$pkg" ]; then
        have=$(ls -1 "$TETHER_VM_CACHE/${pkg}"_*.deb 2>/dev/null | tail -n1 || true)
        if [ -z "$have" ]; then
            log "downloading $pkg"
            (cd "$TETHER_VM_CACHE" && apt-get download -q "$pkg" >/dev/null 2>&1) ||
                log "apt-get download $pkg failed"
            have=$(ls -1 "$TETHER_VM_CACHE/${pkg}"_*.deb 2>/dev/null | tail -n1 || true)
        fi
    fi
    # No archive reachable: any kernel of the series cached earlier will do.
    [ -n "${have:-}" ] || have=$(ls -1 "$TETHER_VM_CACHE"/linux-image-"$series".[0-9]*_*.deb 2>/dev/null | sort -V | tail -n1 || true)
    [ -n "$have" ] || { log "no linux-image-$series .deb in the archive or $TETHER_VM_CACHE"; exit 125; }
    echo "$have"
}

install_tools
# Each kernel is a label and a .deb; TETHER_VM_KERNEL_DEB names one .deb
# instead of the series list.
VM_LABELS=() VM_DEBS=()
if [ -n "${TETHER_VM_KERNEL_DEB:-}" ]; then
    VM_LABELS+=(vm); VM_DEBS+=("$(realpath -e -- "$TETHER_VM_KERNEL_DEB")")
else
    for series in ${TETHER_VM_KERNELS:-6.12 6.1}; do
        VM_LABELS+=("$series"); VM_DEBS+=("$(kernel_deb "$series")")
    done
fi
for i in "${!VM_LABELS[@]}"; do log "kernel ${VM_LABELS[$i]}: ${VM_DEBS[$i]##*/}"; done

status=0
MATRIX_ARGS=()
# One host run of the suite: LABEL, then environment assignments.
host_run() {
    local label=$1; shift
    log "host $(uname -r)${*:+ ($*)}: running the suite"
    local t0 rc
    t0=$(date +%s.%N)
    set +e
    env CI=true "$@" "$TESTS" -r xml -d yes -o "$OUT/$label.xml" > "$OUT/$label.stdout" 2> "$OUT/$label.stderr"
    rc=$?
    set -e
    awk -v s="$t0" -v e="$(date +%s.%N)" -v l="$label" 'BEGIN { printf "ci-vm: %s suite: %.1f s\n", l, e - s }' >&2
    if [ "$rc" -ne 0 ]; then
        log "$label suite failed (status $rc)"; cat "$OUT/$label.stderr" >&2
        [ "$status" -ne 0 ] || status=$rc
    fi
    MATRIX_ARGS+=(--run "$label=$OUT/$label.xml")
}

if [ "$RUN_HOST" = 1 ]; then
    host_run host
    "$PROBES" > "$OUT/host-probes.txt" 2>&1 || true
    MATRIX_ARGS+=(--probes "host=$OUT/host-probes.txt")
    # The same kernel playing one that refuses arena maps and tracing
    # programs (EPERM), as hardened hosts do: what depends on them must
    # skip through its probe, and the rest pass.
    host_run host-refusing TETHER_TEST_REFUSE=map:arena,prog:tracing
    MATRIX_ARGS+=(--expect-skip "host-refusing=map element iterator writes every value of the map"
                  --expect-skip "host-refusing=fentry: a trampoline program runs when its target does")
    # Every collection load on four threads (CollectionOptions::load_threads
    # left at 0 reads TETHER_LOAD_THREADS), down to one- and two-program
    # objects: the suite's load, error-text and fd-leak tests hold there too.
    host_run host-threads TETHER_LOAD_THREADS=4
fi

# One boot per kernel runs the suite, then the probe report. Output goes to
# files in the build dir, which the VM shares read-write at the same path.
TEST_ARGS=()
if [ -n "${TETHER_VM_TESTS:-}" ]; then read -r -a TEST_ARGS <<< "$TETHER_VM_TESTS"; fi
for i in "${!VM_LABELS[@]}"; do
    label=${VM_LABELS[$i]} deb=${VM_DEBS[$i]}
    log "vm $label: booting ${deb##*/} and running the suite${TEST_ARGS:+ (subset: ${TEST_ARGS[*]})}"
    set +e
    TETHER_VM_RWDIRS="$BUILD $SRC" CI=true "$HERE/run-in-vm.sh" "$deb" -- /bin/sh -c '
        out=$1; label=$2; tests=$3; probes=$4; shift 4
        "$tests" -r xml -d yes -o "$out/vm-$label.xml" "$@" > "$out/vm-$label.stdout" 2> "$out/vm-$label.stderr"
        rc=$?
        "$probes" > "$out/vm-$label-probes.txt" 2>&1
        exit $rc' sh "$OUT" "$label" "$TESTS" "$PROBES" "${TEST_ARGS[@]}"
    vm_rc=$?
    set -e
    if [ "$vm_rc" -ne 0 ]; then
        log "vm $label suite failed (status $vm_rc)"
        [ -s "$OUT/vm-$label.stderr" ] && cat "$OUT/vm-$label.stderr" >&2
        [ "$status" -ne 0 ] || status=$vm_rc
    fi
    MATRIX_ARGS+=(--run "$label=$OUT/vm-$label.xml" --probes "$label=$OUT/vm-$label-probes.txt")
done

python3 "$HERE/matrix.py" --markdown "$OUT/matrix.md" "${MATRIX_ARGS[@]}" || { [ "$status" -ne 0 ] || status=1; }
exit "$status"
