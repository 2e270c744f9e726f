#!/usr/bin/env python3
"""The agent-scale load (bench/gen_agent.py) under valgrind, tether and libbpf
side by side:

  callgrind  user-space instructions of one load (valgrind counts no kernel
             instructions, so the verifier and every syscall are left out by
             construction): the exact form of "CPU outside the verifier";
  massif     the heap peak during a load, and tether's top allocation sites
             at that peak.

usage: bench/profile_agent_load.py [BUILD_DIR] [--rounds N] [--top N]
Needs valgrind (and ms_print, which comes with it). Collection is on only
inside bench_agent_load_<loader> (agent_load_once.cc).
"""
import argparse
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
a = p.parse_args()
binary = os.path.join(a.build, "bench", "agent_load_once")
if not os.path.exists(binary):
    sys.exit(f"{binary} is missing: build the bench (needs libbpf)")


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return r


def callgrind(tmp, loader):
    out = os.path.join(tmp, f"{loader}.callgrind")
    run(["valgrind", "--tool=callgrind", "--collect-atstart=no",
         f"--toggle-collect=bench_agent_load_{loader}", f"--callgrind-out-file={out}",
         binary, loader, str(a.rounds)])
    m = re.search(r"^(?:summary|totals):\s*(\d+)", open(out).read(), re.M)
    return int(m.group(1))


def massif(tmp, loader):
    """(peak heap bytes, [(bytes, site)] of the peak snapshot's direct children)."""
    out = os.path.join(tmp, f"{loader}.massif")
    # One load: the peak of a load, not of several kept around.
    run(["valgrind", "--tool=massif", "--peak-inaccuracy=0.0", "--threshold=0.5",
         f"--massif-out-file={out}", binary, loader, "1"])
    text = subprocess.run(["ms_print", "--threshold=0.5", out], capture_output=True, text=True).stdout
    # The detailed snapshot marked "(peak)" in ms_print's table.
    peak_bytes, sites = 0, []
    blocks = re.split(r"\n-{10,}\n", text)
    for i, b in enumerate(blocks):
        if "(peak)" not in b:
            continue
        rows = re.findall(r"^\s*\d+\s+[\d,]+\s+([\d,]+)\s+([\d,]+)\s+[\d,]+\s+[\d,]+\s*$", b, re.M)
        if rows:
            peak_bytes = int(rows[-1][1].replace(",", ""))
        tree = blocks[i + 1] if i + 1 < len(blocks) else ""
        for line in tree.splitlines():
            m = re.match(r"^->\d+\.\d+% \(([\d,]+)B\) (?:0x[0-9A-F]+: )?(.*)$", line)
            if m:
                sites.append((int(m.group(1).replace(",", "")), m.group(2)[:150]))
        break
    return peak_bytes, sites


counts, peaks = {}, {}
with tempfile.TemporaryDirectory() as tmp:
    for loader in ("tether", "libbpf"):
        counts[loader] = callgrind(tmp, loader)
        print(f"{loader:7s} {counts[loader]:>14,d} user instructions for {a.rounds} load(s) "
              f"({counts[loader] // max(1, a.rounds):,d} per load)")
    ratio = counts['tether'] / counts['libbpf']
    print(f"ratio tether/libbpf (user instructions outside the kernel): {ratio:.3f} "
          f"(goal: <= 0.5: {'met' if ratio <= 0.5 else 'NOT met'})")
    if shutil.which("ms_print"):
        sites = {}
        for loader in ("tether", "libbpf"):
            peaks[loader], sites[loader] = massif(tmp, loader)
        print()
        for loader in ("tether", "libbpf"):
            print(f"{loader:7s} heap peak during one load (massif, exact): {peaks[loader]:>10,d} bytes")
        if peaks["libbpf"]:
            print(f"ratio tether/libbpf heap peak: {peaks['tether'] / peaks['libbpf']:.2f}")
        print(f"\ntether's allocation sites at its peak (top {a.top}, direct callers of the allocator):")
        for b, site in sites["tether"][:a.top]:
            print(f"  {b:>10,d} B  {site}")
