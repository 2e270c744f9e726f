#!/usr/bin/env bash
# ci-vm.sh [--no-host] BUILD_DIR
#
# Runs tether's test suite on the host kernel and on Debian's 6.1 kernel in
# qemu, with CI=true (only probe-backed skips are allowed), then prints a
# test x kernel matrix and the feature probes of both kernels.
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
# TETHER_VM_KERNEL_DEB=path/to/linux-image-*.deb skips the download.
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

# The kernel that Debian bookworm's linux-image-amd64 points at, downloaded
# once as a .deb into the cache (never installed). Prints its path.
kernel_deb() {
    if [ -n "${TETHER_VM_KERNEL_DEB:-}" ]; then realpath -e -- "$TETHER_VM_KERNEL_DEB"; return; fi
    local pkg
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-6\.1\.[0-9]*-[0-9]*-amd64\)$/\1/p' | head -n1)
    if [ -z "$pkg" ]; then
        apt-get update -q >/dev/null 2>&1 || true
        pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-6\.1\.[0-9]*-[0-9]*-amd64\)$/\1/p' | head -n1)
    fi
    local have
    if [ -n "$pkg" ]; then
        have=$(ls -1 "$TETHER_VM_CACHE/${pkg}"_*.deb 2>/dev/null | tail -n1 || true)
        if [ -z "$have" ]; then
            log "downloading $pkg"
            (cd "$TETHER_VM_CACHE" && apt-get download -q "$pkg" >/dev/null 2>&1) ||
                log "apt-get download $pkg failed"
            have=$(ls -1 "$TETHER_VM_CACHE/${pkg}"_*.deb 2>/dev/null | tail -n1 || true)
        fi
    fi
    # No archive reachable: any 6.1 kernel cached earlier will do.
    [ -n "${have:-}" ] || have=$(ls -1 "$TETHER_VM_CACHE"/linux-image-6.1.*-amd64_*.deb 2>/dev/null | tail -n1 || true)
    [ -n "$have" ] || { log "no linux-image-6.1 .deb: apt-get download linux-image-6.1.0-<abi>-amd64"; exit 125; }
    echo "$have"
}

install_tools
DEB=$(kernel_deb)
log "kernel package: ${DEB##*/}"

status=0
if [ "$RUN_HOST" = 1 ]; then
    log "host $(uname -r): running the suite"
    host_start=$(date +%s.%N)
    set +e
    CI=true "$TESTS" -r xml -d yes -o "$OUT/host.xml" > "$OUT/host.stdout" 2> "$OUT/host.stderr"
    host_rc=$?
    set -e
    "$PROBES" > "$OUT/host-probes.txt" 2>&1 || true
    awk -v s="$host_start" -v e="$(date +%s.%N)" 'BEGIN { printf "ci-vm: host suite: %.1f s\n", e - s }' >&2
    if [ "$host_rc" -ne 0 ]; then
        log "host suite failed (status $host_rc)"; cat "$OUT/host.stderr" >&2; status=$host_rc
    fi
fi

# One boot runs the suite, then the probe report. Output goes to files in
# the build dir, which the VM shares read-write at the same path.
TEST_ARGS=()
if [ -n "${TETHER_VM_TESTS:-}" ]; then read -r -a TEST_ARGS <<< "$TETHER_VM_TESTS"; fi
log "vm: booting ${DEB##*/} and running the suite${TEST_ARGS:+ (subset: ${TEST_ARGS[*]})}"
set +e
TETHER_VM_RWDIRS="$BUILD $SRC" CI=true "$HERE/run-in-vm.sh" "$DEB" -- /bin/sh -c '
    out=$1; tests=$2; probes=$3; shift 3
    "$tests" -r xml -d yes -o "$out/vm.xml" "$@" > "$out/vm.stdout" 2> "$out/vm.stderr"
    rc=$?
    "$probes" > "$out/vm-probes.txt" 2>&1
    exit $rc' sh "$OUT" "$TESTS" "$PROBES" "${TEST_ARGS[@]}"
vm_rc=$?
set -e
if [ "$vm_rc" -ne 0 ]; then
    log "vm suite failed (status $vm_rc)"
    [ -s "$OUT/vm.stderr" ] && cat "$OUT/vm.stderr" >&2
    [ "$status" -ne 0 ] || status=$vm_rc
fi

MATRIX_ARGS=()
[ "$RUN_HOST" = 1 ] && MATRIX_ARGS+=(--run "host=$OUT/host.xml" --probes "host=$OUT/host-probes.txt")
MATRIX_ARGS+=(--run "6.1=$OUT/vm.xml" --probes "6.1=$OUT/vm-probes.txt")
python3 "$HERE/matrix.py" --markdown "$OUT/matrix.md" "${MATRIX_ARGS[@]}" || { [ "$status" -ne 0 ] || status=1; }
exit "$status"
