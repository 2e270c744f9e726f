#!/usr/bin/env bash
# check.sh WORKDIR
#
# Proves that a project outside the tree can use tether and its skeleton
# generator: examples/getting-started is copied out as a project of its own
# (test/consumer/meson.build) and built twice, against a tether installed
# into WORKDIR/prefix (tether.pc, tether-skel on PATH) and with tether as a
# meson subproject. Both binaries run (as root: they attach a tracepoint
# program and count this process's getpid() calls).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
[ $# -eq 1 ] || { echo "usage: $0 WORKDIR" >&2; exit 2; }
WORK=$(mkdir -p "$1" && cd "$1" && pwd)
rm -rf "$WORK/lib-build" "$WORK/prefix" "$WORK/project" "$WORK/installed" "$WORK/sub"

project() {  # DIR: a copy of the consumer project
  mkdir -p "$1"
  cp "$HERE/meson.build" "$SRC/examples/getting-started/counter.bpf.c" \
     "$SRC/examples/getting-started/main.cc" "$1/"
}

meson setup "$WORK/lib-build" "$SRC" --prefix="$WORK/prefix" -Dtests=disabled -Dbench=disabled >/dev/null
ninja -C "$WORK/lib-build" install >/dev/null
pc=$(dirname "$(find "$WORK/prefix" -name tether.pc | head -n1)")
libdir=$(dirname "$(find "$WORK/prefix" -name 'libtether.so' | head -n1)")
project "$WORK/project"
PATH="$WORK/prefix/bin:$PATH" PKG_CONFIG_PATH=$pc \
  meson setup "$WORK/installed" "$WORK/project" --wrap-mode=nofallback >/dev/null
PATH="$WORK/prefix/bin:$PATH" LD_LIBRARY_PATH=$libdir ninja -C "$WORK/installed" >/dev/null
echo "installed tether.pc:  $(LD_LIBRARY_PATH=$libdir "$WORK/installed/consumer")"

project "$WORK/sub"
mkdir -p "$WORK/sub/subprojects"
ln -sfn "$SRC" "$WORK/sub/subprojects/tether"
meson setup "$WORK/sub/build" "$WORK/sub" --force-fallback-for=tether >/dev/null
ninja -C "$WORK/sub/build" >/dev/null
echo "meson subproject:     $("$WORK/sub/build/consumer")"
