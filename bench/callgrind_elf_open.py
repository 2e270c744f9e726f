#!/usr/bin/env python3
"""Counts instructions of the ELF-open benchmark body under callgrind, for
tether and for libbpf, and prints the ratio.

usage: bench/callgrind_elf_open.py [BUILD_DIR] [--rounds N]
Needs valgrind. Collection is on only inside bench_elf_open_<loader>
(elf_open_once.cc), so setup and the filtering of the object set, which
runs both loaders, are not counted.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
p = argparse.ArgumentParser()
p.add_argument("build", nargs="?", default=os.path.join(ROOT, "build"))
p.add_argument("--rounds", type=int, default=3)
a = p.parse_args()
binary = os.path.join(a.build, "bench", "elf_open_once")
if not os.path.exists(binary):
    sys.exit(f"{binary} is missing: build the bench (needs libbpf)")

counts = {}
with tempfile.TemporaryDirectory() as tmp:
    for loader in ("tether", "libbpf"):
        out = os.path.join(tmp, f"{loader}.callgrind")
        cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=no",
               f"--toggle-collect=bench_elf_open_{loader}", f"--callgrind-out-file={out}",
               binary, loader, str(a.rounds)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
        objects = re.search(r"objects: (\d+)", r.stdout)
        text = open(out).read()
        m = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.M)
        counts[loader] = int(m.group(1))
        print(f"{loader:7s} {counts[loader]:>14,d} instructions for {a.rounds} round(s) over "
              f"{objects.group(1) if objects else '?'} objects "
              f"({counts[loader] // max(1, a.rounds):,d} per round)")
ratio = counts['tether'] / counts['libbpf']
print(f"ratio tether/libbpf: {ratio:.3f} (goal: fewer instructions than libbpf, < 1.0: "
      f"{'met' if ratio < 1.0 else 'NOT met'})")
