#!/usr/bin/env bash
# check.sh WORKDIR
#
# Proves that a project outside the tree can use tether and its skeleton
# generator: examples/getting-started is copied out as a project of its own
# and built three ways: with meson against a tether installed into
# WORKDIR/prefix (tether.pc, tether-skel on PATH), with meson and tether as
# a subproject (test/consumer/meson.build), and with CMake against the same
# installed tether (find_package(tether CONFIG), tether_add_skeleton;
# test/consumer/CMakeLists.txt). All three binaries run (as root: they
# attach a tracepoint program and count this process's getpid() calls). The
# installed tools run from the prefix with no LD_LIBRARY_PATH.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
[ $# -eq 1 ] || { echo "usage: $0 WORKDIR" >&2; exit 2; }
WORK=$(mkdir -p "$1" && cd "$1" && pwd)
rm -rf "$WORK/lib-build" "$WORK/prefix" "$WORK/project" "$WORK/installed" "$WORK/sub" "$WORK/cmake"

project() {  # DIR: a copy of the consumer project
  mkdir -p "$1"
  cp "$HERE/meson.build" "$HERE/CMakeLists.txt" "$SRC/examples/getting-started/counter.bpf.c" \
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

# The installed tools find their library without help, and the manual page reads.
env -u LD_LIBRARY_PATH "$WORK/prefix/bin/tether" --help >/dev/null
env -u LD_LIBRARY_PATH "$WORK/prefix/bin/tether-skel" --help 2>/dev/null
man -l "$(find "$WORK/prefix" -name tether.1 | head -n1)" 2>/dev/null | grep -q "tether graph" ||
  { echo "check.sh: the installed manual page does not read with man -l" >&2; exit 1; }

# CMake: CMAKE_PREFIX_PATH is all it needs; tether-skel comes from the prefix.
cmake -S "$WORK/project" -B "$WORK/cmake" -DCMAKE_PREFIX_PATH="$WORK/prefix" >/dev/null
cmake --build "$WORK/cmake" >/dev/null
echo "installed CMake:      $("$WORK/cmake/consumer")"

project "$WORK/sub"
mkdir -p "$WORK/sub/subprojects"
ln -sfn "$SRC" "$WORK/sub/subprojects/tether"
meson setup "$WORK/sub/build" "$WORK/sub" --force-fallback-for=tether >/dev/null
ninja -C "$WORK/sub/build" >/dev/null
echo "meson subproject:     $("$WORK/sub/build/consumer")"
