#!/bin/bash
# `tether graph` against `bpftool prog show; bpftool map show`, wall time,
# over a population held by another process: ARRAYS program arrays with two
# entries each and one tail-calling program each (3 x ARRAYS programs),
# nothing pinned, made by build/bench/scan_population (raw bpf(2)).
# Run as root on an otherwise quiet host; whatever else the kernel holds is
# scanned by both sides too.
#   [TETHER=path/to/tether] scripts/bench_graph_scan.sh [BUILD_DIR] [ARRAYS] [ROUNDS]
# Prints the median of each side over ROUNDS runs and their ratio.
set -euo pipefail
build=${1:-build}
arrays=${2:-100}
rounds=${3:-15}
tether="${TETHER:-$build/tools/tether}"  # TETHER=path compares another build
population="$build/bench/scan_population"
for f in "$tether" "$population"; do
  [[ -x $f ]] || { echo "missing $f (ninja -C $build)" >&2; exit 2; }
done
command -v bpftool >/dev/null || { echo "bpftool is needed" >&2; exit 2; }

fifo=$(mktemp -u /tmp/scan-population.XXXXXX)
mkfifo "$fifo"
out=$(mktemp /tmp/scan-population-out.XXXXXX)
"$population" "$arrays" <"$fifo" >"$out" &
holder=$!
exec 3>"$fifo"  # the population lives until fd 3 closes
cleanup() { exec 3>&-; wait "$holder" 2>/dev/null || true; rm -f "$fifo" "$out"; }
trap cleanup EXIT
for _ in $(seq 100); do grep -q ready "$out" 2>/dev/null && break; sleep 0.05; done
grep -q ready "$out" || { echo "population did not start" >&2; exit 1; }

now_us() { echo $(( $(date +%s%N) / 1000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
time_tether() { local t0; t0=$(now_us); "$tether" graph >/dev/null; echo $(( $(now_us) - t0 )); }
time_bpftool() { local t0; t0=$(now_us); bpftool prog show >/dev/null; bpftool map show >/dev/null; echo $(( $(now_us) - t0 )); }

time_tether >/dev/null; time_bpftool >/dev/null  # warm caches
t=(); b=()
for _ in $(seq "$rounds"); do t+=("$(time_tether)"); b+=("$(time_bpftool)"); done
tm=$(printf '%s\n' "${t[@]}" | median)
bm=$(printf '%s\n' "${b[@]}" | median)
progs=$(bpftool prog show | grep -c '^[0-9]*:' || true)
maps=$(bpftool map show | grep -c '^[0-9]*:' || true)
echo "kernel objects: $progs programs, $maps maps (population: $((3 * arrays)) programs, $arrays program arrays)"
echo "tether graph:                          median ${tm} us over $rounds runs"
echo "bpftool prog show; bpftool map show:   median ${bm} us"
awk -v t="$tm" -v b="$bm" 'BEGIN {printf "ratio tether/bpftool: %.2f (goal: <= 1.5)\n", t / b}'
