#!/usr/bin/env bash
# run-in-vm.sh KERNEL -- COMMAND [ARGS...]
#
# Runs one command as root under another Linux kernel in qemu and exits with
# its status (124: timed out, 125: the VM died or never ran the command).
# tether talks to the kernel through bpf(2) alone, so the only way to know
# how it behaves on an older kernel is to run the test binaries on one.
#
# KERNEL is a linux-image-*.deb (extracted with dpkg-deb into the cache, never
# installed) or an already extracted tree holding boot/vmlinuz-<ver> and
# lib/modules/<ver>/.
#
# What the guest sees:
#   /              the host's root over 9p, read-only, under an overlay whose
#                  tmpfs upper layer throws every write away at power-off
#   RWDIRS         shared read-write at the same paths (build dir, repo), so
#                  binaries with build paths compiled in run unchanged
#   /sys/fs/bpf, /sys/fs/cgroup (cgroup2), /sys/kernel/debug, /sys/kernel/tracing
#   /lib/modules/<ver>   the guest kernel's modules (modprobe works)
#   /tmp, /run, /dev/shm  fresh tmpfs; only lo, no other network
# The command runs in the current directory with the caller's environment and
# stdin from /dev/null; its stdout and stderr come back on ours.
#
# Knobs (environment):
#   TETHER_VM_CACHE    cache of extracted kernels and initramfs images
#                      (default /var/cache/tether-vm if writable, else ~/.cache/tether-vm)
#   TETHER_VM_SMP      online vCPUs (default 2)
#   TETHER_VM_MAXCPUS  possible vCPUs (default 4): more than online on purpose,
#                      so per-CPU map code that counts online CPUs breaks here
#   TETHER_VM_MEM      guest memory (default 1G)
#   TETHER_VM_TIMEOUT  seconds before the VM is killed (default 1500)
#   TETHER_VM_RWDIRS   space-separated dirs shared read-write (default: the git
#                      top level of $PWD, else $PWD)
#   TETHER_VM_ACCEL    auto|tcg|kvm (auto: kvm only when /dev/kvm works and the
#                      CPU shows vmx/svm; the CI machines have neither)
#   TETHER_VM_CONSOLE  1: stream the guest console to stderr as it boots
#   TETHER_VM_APPEND   extra kernel command line
# A line "run-in-vm: <ver>: boot X s, command Y s, wall Z s" goes to stderr.
set -euo pipefail

readonly ME=run-in-vm
fail() { echo "$ME: $*" >&2; exit 125; }

[ $# -ge 3 ] && [ "$2" = -- ] || fail "usage: $0 KERNEL_DEB|KERNEL_DIR -- COMMAND [ARGS...]"
KERNEL_SRC=$(realpath -e -- "$1") || fail "no such kernel: $1"
shift 2

SMP=${TETHER_VM_SMP:-2}
MAXCPUS=${TETHER_VM_MAXCPUS:-4}
[ "$MAXCPUS" -ge "$SMP" ] || MAXCPUS=$SMP
MEM=${TETHER_VM_MEM:-1G}
TIMEOUT=${TETHER_VM_TIMEOUT:-1500}
if [ -n "${TETHER_VM_CACHE:-}" ]; then CACHE=$TETHER_VM_CACHE
elif mkdir -p /var/cache/tether-vm 2>/dev/null && [ -w /var/cache/tether-vm ]; then CACHE=/var/cache/tether-vm
else CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/tether-vm
fi
mkdir -p "$CACHE"

need_tools() {
    local t missing=()
    for t in qemu-system-x86_64 cpio dpkg-deb depmod modprobe flock timeout; do
        command -v "$t" >/dev/null || missing+=("$t")
    done
    [ -x /bin/busybox ] || missing+=(busybox)
    [ ${#missing[@]} -eq 0 ] ||
        fail "missing ${missing[*]}: apt-get install -y --no-install-recommends qemu-system-x86 busybox-static cpio kmod"
    # The initramfs has no libc: its busybox must be the static build.
    case "$(LC_ALL=C ldd /bin/busybox 2>&1 || true)" in
        *'not a dynamic'*) ;;
        *) fail "/bin/busybox is dynamically linked: apt-get install busybox-static" ;;
    esac
}

decompress() {  # FILE -> stdout, whatever kmod's compression of it
    case "$1" in
        *.xz) xz -dc -- "$1" ;; *.zst) zstd -qdc -- "$1" ;; *.gz) gzip -dc -- "$1" ;;
        *) cat -- "$1" ;;
    esac
}

# Sets KROOT (extracted tree), KVER, VMLINUZ, MODDIR.
unpack_kernel() {
    if [ -f "$KERNEL_SRC" ]; then
        case "$KERNEL_SRC" in *.deb) ;; *) fail "$KERNEL_SRC: not a .deb" ;; esac
        KROOT=$CACHE/$(basename "$KERNEL_SRC" .deb)
        if [ ! -e "$KROOT/.unpacked" ]; then
            rm -rf "$KROOT.part"
            dpkg-deb -x "$KERNEL_SRC" "$KROOT.part" || fail "cannot unpack $KERNEL_SRC"
            rm -rf "$KROOT"; mv "$KROOT.part" "$KROOT"
            touch "$KROOT/.unpacked"
        fi
    else
        KROOT=$KERNEL_SRC
    fi
    local images=("$KROOT"/boot/vmlinuz-*)
    [ -f "${images[0]}" ] || fail "no boot/vmlinuz-* in $KROOT"
    VMLINUZ=${images[0]}
    KVER=${VMLINUZ##*/vmlinuz-}
    MODDIR=$KROOT/lib/modules/$KVER
    [ -d "$MODDIR" ] || fail "no lib/modules/$KVER in $KROOT"
    # The deb ships no modules.dep (its postinst would run depmod): without
    # it neither our dependency walk below nor modprobe in the guest works.
    if [ ! -s "$MODDIR/modules.dep" ]; then
        [ -w "$MODDIR" ] || fail "$MODDIR has no modules.dep and is read-only"
        depmod -b "$KROOT" "$KVER" || fail "depmod failed for $KVER"
    fi
}

# Under TCG, unpacking the bzImage costs seconds on every boot. A kernel
# built with CONFIG_PVH can be entered directly as an ELF, so the plain
# vmlinux is carved out of the bzImage once and cached. Sets BOOT_IMAGE.
pick_boot_image() {
    BOOT_IMAGE=$VMLINUZ
    grep -qx 'CONFIG_PVH=y' "$KROOT/boot/config-$KVER" 2>/dev/null || return 0
    local elf=$CACHE/vmlinux-$KVER-$(stat -c %s-%Y "$VMLINUZ")
    if [ ! -s "$elf" ]; then
        local magic tool off
        # The payload's compressor is whichever magic number occurs first
        # and decompresses to an ELF file.
        for magic in 'xz:\xfd7zXZ\x00' 'zstd:\x28\xb5\x2f\xfd' 'gzip:\x1f\x8b\x08\x00' 'lz4:\x02\x21\x4c\x18'; do
            tool=${magic%%:*}
            command -v "$tool" >/dev/null || continue
            for off in $(LC_ALL=C grep -obUaP "${magic#*:}" "$VMLINUZ" | head -n 4 | cut -d: -f1); do
                tail -c +$((off + 1)) "$VMLINUZ" | "$tool" -dc > "$elf.part" 2>/dev/null || true
                if [ "$(head -c 4 "$elf.part" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then
                    mv "$elf.part" "$elf"; break 2
                fi
            done
        done
        rm -f "$elf.part"
    fi
    if [ -s "$elf" ]; then BOOT_IMAGE=$elf; fi
}

# Stage 1 runs as PID 1 from the initramfs: it loads what 9p and overlayfs
# need, assembles the guest's root from the host's, and switch_roots into
# it. (switch_root, not chroot: unprivileged user namespaces refuse a
# chrooted caller, and the suite may want them.)
write_stage1() {
    cat <<'EOF'
#!/bin/sh
export PATH=/bin
die() { echo "tether-vm: $*"; poweroff -f; sleep 10; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do insmod "/modules/$m" || echo "tether-vm: insmod $m failed"; done < /modules/order
P9=trans=virtio,version=9p2000.L,msize=512000
mkdir -p /ctl && mount -t 9p -o $P9,cache=none tvm_ctl /ctl || die "no control share"
. /ctl/conf
R=/newroot
mkdir -p /lower /upper $R
mount -t 9p -o ro,$P9,cache=loose tvm_root /lower || die "cannot mount the host root"
# The host root is read-only to us; the overlay gives the guest a writable
# root whose writes vanish with the VM.
mount -t tmpfs -o mode=755 tmpfs /upper && mkdir -p /upper/data /upper/work
if ! mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work overlay $R; then
    echo "tether-vm: no overlay, the root stays read-only"
    mount --move /lower $R
fi
mount -t tmpfs -o mode=755 tmpfs $R/run
mkdir -p $R/run/tether-vm/ctl $R/run/tether-vm/init
mount --move /ctl $R/run/tether-vm/ctl
mount --move /dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o mode=620,ptmxmode=666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t tmpfs -o mode=1777 tmpfs $R/tmp
[ -d $R/var/tmp ] && mount -t tmpfs -o mode=1777 tmpfs $R/var/tmp
# An installed kernel has its config in /boot; loaders read CONFIG_* there.
[ -f /config ] && mkdir -p $R/boot && cp /config $R/boot/config-$TVM_KVER
mount -t bpf -o mode=700 bpf $R/sys/fs/bpf
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup
mount -t debugfs debugfs $R/sys/kernel/debug
mount -t tracefs tracefs $R/sys/kernel/tracing
M=$R/lib/modules/$TVM_KVER
mkdir -p $M && mount -t 9p -o ro,$P9,cache=loose tvm_mods $M || echo "tether-vm: no /lib/modules/$TVM_KVER"
i=0
for d in $TVM_RWDIRS; do
    mkdir -p "$R$d"
    mount -t 9p -o $P9,cache=mmap tvm_rw$i "$R$d" || die "cannot mount $d read-write"
    i=$((i + 1))
done
cp /bin/busybox /stage2 $R/run/tether-vm/init/
exec switch_root $R /run/tether-vm/init/busybox sh /run/tether-vm/init/stage2
EOF
}

# Stage 2 is PID 1 inside the assembled root: it runs the command with its
# output on ttyS1/ttyS2, records timings and the exit status on the
# control share, and powers off.
write_stage2() {
    cat <<'EOF'
B=/run/tether-vm/init/busybox
C=/run/tether-vm/ctl
. $C/conf
$B hostname tether-vm
$B ip link set lo up 2>/dev/null
# Raw, so that the line discipline does not turn \n into \r\n on the way out.
$B stty -F /dev/ttyS1 raw -echo
$B stty -F /dev/ttyS2 raw -echo
$B cut -d' ' -f1 /proc/uptime > $C/t_start
SH=/bin/bash; [ -x $SH ] || SH=/bin/sh
if [ "$TVM_TTY" = 1 ]; then
    $SH $C/cmd </dev/null >/dev/ttyS1 2>/dev/ttyS2
    rc=$?
else
    # The serial ports are ttys; behind pipes, the command formats its
    # output as it would in CI on the host (no colour, full buffering).
    F=/run/tether-vm/init
    $B mkfifo $F/out $F/err
    $B cat $F/out >/dev/ttyS1 & o=$!
    $B cat $F/err >/dev/ttyS2 & e=$!
    $SH $C/cmd </dev/null >$F/out 2>$F/err
    rc=$?
    # Bounded: a daemon the command left running may hold the pipes open.
    n=0
    while [ $n -lt 100 ] && { $B kill -0 $o 2>/dev/null || $B kill -0 $e 2>/dev/null; }; do
        $B sleep 0.05; n=$((n + 1))
    done
fi
$B cut -d' ' -f1 /proc/uptime > $C/t_end
echo $rc > $C/status
$B sync
$B poweroff -f
EOF
}

# The initramfs depends on the kernel (its modules) and on this script (the
# init code above), so both go into its name. Sets INITRD.
build_initramfs() {
    local key
    key=$(cat "$0" "$MODDIR/modules.dep" | sha256sum | cut -c1-16)
    INITRD=$CACHE/initramfs-$KVER-$key.cpio
    [ -s "$INITRD" ] && return 0
    local w
    w=$(mktemp -d "$CACHE/initramfs.XXXXXX")
    mkdir -p "$w"/{bin,dev,proc,sys,modules}
    cp /bin/busybox "$w/bin/busybox"
    local a
    for a in sh mount insmod mkdir cp poweroff sleep switch_root; do ln -s busybox "$w/bin/$a"; done
    # kmod resolves the load order from modules.dep; built-in ones print
    # "builtin NAME" and need nothing.
    local line path
    : > "$w/modules/order"
    while read -r line; do
        case "$line" in insmod\ *) ;; *) continue ;; esac
        path=${line#insmod }; path=${path%% *}
        local base=${path##*/}; base=${base%.xz}; base=${base%.zst}; base=${base%.gz}
        [ -e "$w/modules/$base" ] && continue
        decompress "$path" > "$w/modules/$base"
        echo "$base" >> "$w/modules/order"
    done < <(modprobe -d "$KROOT" -S "$KVER" --show-depends -a virtio_pci 9pnet_virtio 9p overlay)
    [ -f "$KROOT/boot/config-$KVER" ] && cp "$KROOT/boot/config-$KVER" "$w/config"
    write_stage1 > "$w/init"; chmod 755 "$w/init"
    write_stage2 > "$w/stage2"
    (cd "$w" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) > "$INITRD.part"
    mv "$INITRD.part" "$INITRD"
    rm -rf "$w"
}

# Everything that mutates the cache happens under one lock, so parallel
# runs (meson test, a developer's shell) do not unpack over each other.
prepare() {
    exec 9>"$CACHE/.lock"
    flock 9
    unpack_kernel
    pick_boot_image
    build_initramfs
    flock -u 9
    exec 9>&-
}

need_tools
prepare

RUN=$(mktemp -d "${TMPDIR:-/tmp}/tether-vm.XXXXXX")
QEMU_PID=
RELAYS=()
cleanup() {
    local p
    for p in $QEMU_PID "${RELAYS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Read-write shares: nested dirs ride on their parent's share.
if [ -n "${TETHER_VM_RWDIRS+set}" ]; then rw_wanted=$TETHER_VM_RWDIRS
else rw_wanted=$(git rev-parse --show-toplevel 2>/dev/null || echo "$PWD")
fi
RWDIRS=()
SHARE_ARGS=()
while read -r d; do
    [ -n "$d" ] && [ "$d" != / ] || continue
    nested=
    for p in "${RWDIRS[@]}"; do case "$d/" in "$p"/*) nested=1 ;; esac; done
    [ -n "$nested" ] && continue
    SHARE_ARGS+=(-virtfs "local,path=$d,mount_tag=tvm_rw${#RWDIRS[@]},security_model=none,multidevs=remap")
    RWDIRS+=("$d")
done < <(for d in $rw_wanted; do realpath -e -- "$d" || fail "no such dir $d"; done | LC_ALL=C sort -u)

ACCEL=${TETHER_VM_ACCEL:-auto}
if [ "$ACCEL" = auto ]; then
    ACCEL=tcg
    if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then ACCEL=kvm; fi
fi
case "$ACCEL" in
    # One host thread runs every vCPU: under multi-threaded TCG the guest
    # kernel's live code patching (text_poke with its int3 protocol: static
    # keys, the XDP dispatcher, direct tail-call jumps) raced with another
    # vCPU running the old translation, and 6.12 guests died of it at boot
    # ("Oops: int3" in sched_clock_cpu) and in the traffic tests.
    tcg) ACCEL_ARGS=(-accel tcg,thread=single -cpu max) ;;
    kvm) ACCEL_ARGS=(-accel kvm -cpu host) ;;
    *) fail "TETHER_VM_ACCEL must be auto, tcg or kvm" ;;
esac

{
    printf 'TVM_KVER=%q\n' "$KVER"
    printf 'TVM_RWDIRS=%q\n' "${RWDIRS[*]}"
    if [ -t 1 ]; then echo TVM_TTY=1; else echo TVM_TTY=0; fi
} > "$RUN/conf"
{
    export -p | grep -vE '^declare -x (PWD|OLDPWD|SHLVL|HOSTNAME|_)(=|$)'
    # Tests that patch live kernel text at a high rate (XDP program
    # swaps re-patch the XDP dispatcher) need to know they run under TCG.
    printf 'export TETHER_VM_ACCEL_USED=%q\n' "$ACCEL"
    printf 'cd -- %q || exit 125\n' "$PWD"
    printf 'exec'; printf ' %q' "$@"; echo
} > "$RUN/cmd"

FIRMWARE=()
# qboot skips SeaBIOS's device scan: a second less per boot under TCG.
[ -f /usr/share/qemu/qboot.rom ] && FIRMWARE=(-bios /usr/share/qemu/qboot.rom)

# All MAXCPUS vCPUs are present and the kernel brings up only SMP of them
# (maxcpus=): possible > online on every kernel. Hot-plug slots (-smp
# N,maxcpus=M) are not enough: 6.12 ignores the disabled MADT entries on
# what it takes for bare metal, and a TCG guest shows no hypervisor.
CMDLINE="console=ttyS0 quiet loglevel=4 panic=-1 rdinit=/init mitigations=off maxcpus=$SMP"
CMDLINE+=" i8042.noaux i8042.nokbd i8042.nopnp random.trust_cpu=on ${TETHER_VM_APPEND:-}"

mkfifo "$RUN/stdout" "$RUN/stderr"
cat "$RUN/stdout" & RELAYS+=($!)
cat "$RUN/stderr" >&2 & RELAYS+=($!)
: > "$RUN/console"
if [ "${TETHER_VM_CONSOLE:-0}" = 1 ]; then tail -f "$RUN/console" >&2 & RELAYS+=($!); fi

started=$(date +%s.%N)
set +e
timeout -k 5 "$TIMEOUT" qemu-system-x86_64 \
    "${ACCEL_ARGS[@]}" -machine q35 -m "$MEM" -smp "$MAXCPUS" "${FIRMWARE[@]}" \
    -nodefaults -no-user-config -display none -monitor none -no-reboot \
    -kernel "$BOOT_IMAGE" -initrd "$INITRD" -append "$CMDLINE" \
    -serial "file:$RUN/console" \
    -chardev "file,id=out,path=$RUN/stdout" -serial chardev:out \
    -chardev "file,id=err,path=$RUN/stderr" -serial chardev:err \
    -virtfs "local,path=/,mount_tag=tvm_root,security_model=none,readonly=on,multidevs=remap" \
    -virtfs "local,path=$MODDIR,mount_tag=tvm_mods,security_model=none,readonly=on" \
    -virtfs "local,path=$RUN,mount_tag=tvm_ctl,security_model=none" \
    "${SHARE_ARGS[@]}" </dev/null &
QEMU_PID=$!
wait "$QEMU_PID"
qemu_rc=$?
QEMU_PID=
ended=$(date +%s.%N)
# qemu closing the FIFOs ends the relays; if it died before opening them,
# they would wait forever.
for _ in $(seq 50); do
    alive=
    for p in "${RELAYS[@]:0:2}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.05
done
for p in "${RELAYS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
RELAYS=()
set -e

if [ -s "$RUN/status" ]; then
    rc=$(cat "$RUN/status")
    awk -v k="$KVER" -v b="$(cat "$RUN/t_start")" -v e="$(cat "$RUN/t_end")" \
        -v s="$started" -v f="$ended" \
        'BEGIN { printf "run-in-vm: %s: boot %.1f s, command %.1f s, wall %.1f s\n", k, b, e - b, f - s }' >&2
elif [ "$qemu_rc" -eq 124 ] || [ "$qemu_rc" -eq 137 ]; then
    echo "$ME: $KVER: timed out after ${TIMEOUT} s" >&2
    rc=124
else
    echo "$ME: $KVER: the VM stopped (qemu status $qemu_rc) before the command finished" >&2
    rc=125
fi
if [ "$rc" -ne 0 ] && [ "${TETHER_VM_CONSOLE:-0}" != 1 ]; then
    echo "---- $ME: guest console, last 50 lines ----" >&2
    tail -n 50 "$RUN/console" >&2
    echo "---- end of guest console ----" >&2
fi
exit "$rc"
