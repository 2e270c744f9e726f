#!/usr/bin/env bash
# run-fuzzers.sh FUZZ_BUILD SECONDS [OBJECT_DIR...]
#
# Runs the three libFuzzer targets of a fuzz build (meson -Dfuzz=enabled,
# CXX=clang++-14) side by side, each for SECONDS, seeded with the corpus
# objects, any *.o under OBJECT_DIRs (e.g. the main build's test/), the
# .BTF sections carved out of all of them, and test/fuzz/regressions/.
# Prints each target's executions and coverage. A crash exits non-zero and
# names the input; copy it under test/fuzz/regressions/<target>/ with a
# NAME.expect file (see test/fuzz/README.md) so that the suite replays it.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 FUZZ_BUILD SECONDS [OBJECT_DIR...]" >&2; exit 2; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
BUILD=$(realpath -e -- "$1"); SECONDS_EACH=$2; shift 2
WORK=$BUILD/fuzz-work
OBJCOPY=$(command -v llvm-objcopy-14 || command -v llvm-objcopy || true)
[ -n "$OBJCOPY" ] || { echo "run-fuzzers: llvm-objcopy is missing (apt-get install llvm)" >&2; exit 2; }

mkdir -p "$WORK/seeds-elf" "$WORK/seeds-btf" "$WORK/artifacts"
objects=("$SRC"/test/corpus/*.elf)
for dir in "$@"; do
  while IFS= read -r -d '' o; do objects+=("$o"); done < <(find "$dir" -maxdepth 2 -name '*.o' -print0)
done
for o in "${objects[@]}"; do
  base=$(basename "$o")
  cp -f "$o" "$WORK/seeds-elf/$base"
  # Objects without BTF (loader_nobtf) just give no BTF seed.
  "$OBJCOPY" --dump-section ".BTF=$WORK/seeds-btf/$base.btf" "$o" /dev/null 2>/dev/null || true
done

pids=()
for target in elf btf core; do
  bin=$BUILD/test/fuzz/fuzz_$target
  [ -x "$bin" ] || { echo "run-fuzzers: $bin is missing: ninja -C $BUILD" >&2; exit 2; }
  seeds=$WORK/seeds-btf; [ "$target" = elf ] && seeds=$WORK/seeds-elf
  mkdir -p "$WORK/corpus-$target"
  dirs=("$WORK/corpus-$target" "$seeds")
  # A target with no regression yet has no directory (git keeps no empty ones).
  [ -d "$SRC/test/fuzz/regressions/$target" ] && dirs+=("$SRC/test/fuzz/regressions/$target")
  # -max_len: the largest seed, so that whole objects can be mutated.
  "$bin" "${dirs[@]}" \
      -dict="$HERE/elf_btf.dict" -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=2048 \
      -max_len=300000 -print_final_stats=1 -artifact_prefix="$WORK/artifacts/$target-" \
      > "$WORK/$target.log" 2>&1 &
  pids+=($!)
done
status=0
i=0
for target in elf btf core; do
  if ! wait "${pids[$i]}"; then
    status=1
    echo "run-fuzzers: fuzz_$target found a crash:" >&2
    grep -E "ERROR|SUMMARY|invariant|Test unit written" "$WORK/$target.log" >&2 || tail -30 "$WORK/$target.log" >&2
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$WORK/$target.log" | tail -n1)
  cov=$(grep -o 'cov: [0-9]*' "$WORK/$target.log" | tail -n1 || true)
  echo "run-fuzzers: fuzz_$target: ${execs:-?} executions in ${SECONDS_EACH} s, ${cov:-cov: ?}, corpus $(ls "$WORK/corpus-$target" | wc -l) inputs"
  i=$((i + 1))
done
exit $status
