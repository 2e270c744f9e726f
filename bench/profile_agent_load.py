#!/usr/bin/env python3
"""The agent-scale load (bench/gen_agent.py) under valgrind, tether and libbpf
side by side:

  callgrind  user-space instructions of one load (valgrind counts no kernel
             instructions, so the verifier and every syscall are left out by
             construction): the exact form of "CPU outside the verifier";
  massif     the heap peak during a load, and tether's top allocation sites
             at that peak.

usage: bench/profile_agent_load.py [BUILD_DIR] [--rounds N] [--top N] [--json FILE]
--json writes the figures for bench/report.py's goal table.
Needs valgrind (and ms_print, which comes with it). Collection is on only
inside bench_agent_load_<loader> (agent_load_once.cc).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
p = argparse.ArgumentParser()
p.add_argument("build", nargs="?", default=os.path.join(ROOT, "build"))
p.add_argument("--rounds", type=int, default=3)
p.add_argument("--top", type=int, default=8)
p.add_argument("--json", default="")
a = p.parse_args()
binary = os.path.join(a.build, "bench", "agent_load_once")
if not os.path.exists(binary):
    sys.exit(f"{binary} is missing: build the bench (needs libbpf)")


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return r


STEP_ROWS = []


def callgrind(tmp, loader):
    out = os.path.join(tmp, f"{loader}.callgrind")
    run(["valgrind", "--tool=callgrind", "--collect-atstart=no",
         f"--toggle-collect=bench_agent_load_{loader}", f"--callgrind-out-file={out}",
         binary, loader, str(a.rounds)])
    m = re.search(r"^(?:summary|totals):\s*(\d+)", open(out).read(), re.M)
    if loader == "tether":
        STEP_ROWS.extend(steps(out, int(m.group(1)), a.rounds))
    return int(m.group(1))


# tether's load, step by step (lib/load/collection.cc's table of load steps),
# as callgrind's inclusive counts; a step the compiler inlined shows in its
# caller's figure instead.
STEPS = [("parse (CollectionSpec::FromMemory)", "tether::CollectionSpec::FromMemory("),
         ("Collection::Load, all of it", "tether::Collection::Load("),
         ("  Resolve (link, miss counters)", "tether::CollectionLoader::Resolve("),
         ("    LinkProgram", "tether::LinkProgram("),
         ("    InsertMissCounters", "tether::detail::InsertMissCounters("),
         ("  CreateMaps", "tether::CollectionLoader::CreateMaps("),
         ("  CreateMissCounters", "tether::CollectionLoader::CreateMissCounters("),
         ("  LoadPrograms", "tether::CollectionLoader::LoadPrograms("),
         ("  InitialiseMaps", "tether::CollectionLoader::InitialiseMaps("),
         ("  Commit", "tether::CollectionLoader::Commit(")]


def steps(out, total, rounds):
    """[(step, instructions per load)], with the teardown (closing the
    collection and the spec) as what is left of the total."""
    r = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", out],
                       capture_output=True, text=True)
    found = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^\s*([\d,]+) \([ \d.]+%\)\s+\S*?:(.*)$", line)
        if not m:
            continue
        fn = m.group(2)
        for label, prefix in STEPS:
            # The first (largest) entry; "'2" marks a recursive inner one.
            if label not in found and prefix in fn and "'" not in fn.split(" [")[0][-3:]:
                found[label] = int(m.group(1).replace(",", ""))
    rows = [(label, found[label] // rounds) for label, _ in STEPS if label in found]
    parse = found.get(STEPS[0][0], 0)
    load = found.get(STEPS[1][0], 0)
    if load:
        rows.append(("close (Collection and spec destructors)", (total - parse - load) // rounds))
    return rows


def massif(tmp, loader, rounds="1"):
    """(peak heap bytes, [(bytes, site)]): the heap at its peak during one load
    (the whole process, so the object's bytes, read before, count on both
    sides alike) and, for each allocation site at the peak (the allocator's
    direct caller), its bytes and the caller above it, largest first."""
    out = os.path.join(tmp, f"{loader}.{rounds}.massif")
    run(["valgrind", "--tool=massif", "--peak-inaccuracy=0.0", "--threshold=0.5",
         f"--massif-out-file={out}", binary, loader, rounds])
    peak_bytes, nodes, in_peak = 0, [], False
    snapshot = {}
    for line in open(out):
        if line.startswith("snapshot="):
            if in_peak:
                break
            snapshot = {}
            continue
        if line.startswith("mem_heap_B="):
            snapshot["heap"] = int(line.strip().split("=")[1])
            continue
        if line.startswith("heap_tree="):
            in_peak = line.strip() == "heap_tree=peak"
            if in_peak:
                peak_bytes = snapshot.get("heap", 0)
            continue
        m = re.match(r"^( *)n\d+: (\d+) (.*)$", line.rstrip("\n")) if in_peak else None
        if m:
            desc = re.sub(r"^0x[0-9A-Fa-f]+: ", "", m.group(3))
            nodes.append((len(m.group(1)), int(m.group(2)), desc))
    # Inlined standard-library frames say nothing of who allocated: follow
    # each site's largest caller down to the first frame of tether's own.
    plumbing = re.compile(r"new_allocator\.h|allocator\.h|alloc_traits|stl_|basic_string|vector\.tcc|"
                          r"raw_hash_set|container_memory|hashtable|unique_ptr\.h|shared_ptr|^\?\?\?|^operator new|"
                          r"^malloc|^calloc|^realloc")
    sites = []
    for i, (depth, size, desc) in enumerate(nodes):
        if depth != 1:
            continue
        j, d = i, desc
        while plumbing.search(d) and j + 1 < len(nodes) and nodes[j + 1][0] == nodes[j][0] + 1:
            j += 1
            d = nodes[j][2]
        d = re.sub(r"std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >", "std::string", d)
        d = re.sub(r"\(anonymous namespace\)::", "", d)
        d = re.sub(r"\(([^()]*)\) \(", "(...) (", d)  # drop parameter lists
        sites.append((size, d[:140]))
    sites.sort(key=lambda x: -x[0])
    return peak_bytes, sites


counts, peaks = {}, {}
with tempfile.TemporaryDirectory() as tmp:
    for loader in ("tether", "libbpf"):
        counts[loader] = callgrind(tmp, loader)
        print(f"{loader:7s} {counts[loader]:>14,d} user instructions for {a.rounds} load(s) "
              f"({counts[loader] // max(1, a.rounds):,d} per load)")
    if STEP_ROWS:
        print("tether, per load step (callgrind, inclusive, per load):")
        for label, n in STEP_ROWS:
            print(f"  {label:42s} {n:>12,d}")
    ratio = counts['tether'] / counts['libbpf']
    print(f"ratio tether/libbpf (user instructions outside the kernel): {ratio:.3f} "
          f"(goal: <= 0.5: {'met' if ratio <= 0.5 else 'NOT met'})")
    if shutil.which("ms_print"):
        sites = {}
        # The same process without a load: the object's bytes and static
        # data, common to both sides and left out of their figures.
        base, _ = massif(tmp, "tether", "0")
        for loader in ("tether", "libbpf"):
            peaks[loader], sites[loader] = massif(tmp, loader)
        print()
        print(f"heap before any load (the object's bytes, static data): {base:,d} bytes")
        for loader in ("tether", "libbpf"):
            print(f"{loader:7s} heap peak during one load, above that (massif): {peaks[loader] - base:>10,d} bytes")
        if peaks["libbpf"] > base:
            print(f"ratio tether/libbpf heap peak of a load: {(peaks['tether'] - base) / (peaks['libbpf'] - base):.2f}")
        print(f"\ntether's allocation sites at its peak (top {a.top}, each at its first tether frame):")
        # The object's bytes and static data are the baseline's, not the load's.
        own = [x for x in sites["tether"] if "AgentObject" not in x[1] and "call_init" not in x[1]]
        for b, site in own[:a.top]:
            print(f"  {b:>10,d} B  {site}")
if a.json:
    with open(a.json, "w") as f:
        json.dump({"instructions_per_load": {k: v // max(1, a.rounds) for k, v in counts.items()},
                   "heap_peak_bytes": {k: v - base for k, v in peaks.items()} if peaks else {}}, f)
