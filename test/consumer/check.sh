#!/usr/bin/env bash
# check.sh WORKDIR
#
# Proves that a project outside the tree can use tether: installs a build
# of the library into WORKDIR/prefix, builds test/consumer against the
# installed tether.pc, builds it again with tether as a meson subproject,
# and runs both (as root: the consumer creates a real map).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
[ $# -eq 1 ] || { echo "usage: $0 WORKDIR" >&2; exit 2; }
WORK=$(mkdir -p "$1" && cd "$1" && pwd)
rm -rf "$WORK/lib-build" "$WORK/prefix" "$WORK/installed" "$WORK/sub"

meson setup "$WORK/lib-build" "$SRC" --prefix="$WORK/prefix" -Dtests=disabled -Dbench=disabled >/dev/null
ninja -C "$WORK/lib-build" install >/dev/null
pc=$(dirname "$(find "$WORK/prefix" -name tether.pc | head -n1)")
libdir=$(dirname "$(find "$WORK/prefix" -name 'libtether.so' | head -n1)")
PKG_CONFIG_PATH=$pc meson setup "$WORK/installed" "$HERE" --wrap-mode=nofallback >/dev/null
ninja -C "$WORK/installed" >/dev/null
echo "consumer (installed tether.pc): $(LD_LIBRARY_PATH=$libdir "$WORK/installed/consumer")"

# The subproject: a copy of this project with tether linked under subprojects/.
mkdir -p "$WORK/sub/subprojects"
cp "$HERE/meson.build" "$HERE/main.cc" "$WORK/sub/"
ln -sfn "$SRC" "$WORK/sub/subprojects/tether"
meson setup "$WORK/sub/build" "$WORK/sub" --force-fallback-for=tether >/dev/null
ninja -C "$WORK/sub/build" >/dev/null
echo "consumer (meson subproject):    $("$WORK/sub/build/consumer")"
