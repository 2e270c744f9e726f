#!/usr/bin/env python3
"""Test x kernel matrix from Catch2 XML reports (tether_tests -r xml -d yes).

  matrix.py --run host=host.xml --run 6.1=vm.xml \
            [--probes host=host-probes.txt --probes 6.1=vm-probes.txt] [--markdown FILE]

A test is "pass", "skip(PROBE)" when it returned through
TETHER_SKIP_FOR_PROBE (a warning "SKIPPED (probe NAME): ..."), "skip" for
any other skip (a failure under CI=true anyway), "FAIL", or "-" when that
kernel's run did not include it. Failures are listed with their assertions.
The last line per kernel reads "KERNEL: N passed, N failed, N skipped".
Exit status 1 when a report is missing or unreadable, or a test failed.
"""

import argparse
import re
import sys
import xml.etree.ElementTree as ET

# Probe names may hold parentheses ("trampoline programs (fentry/...)"):
# the name ends at the first "): ".
SKIP_RE = re.compile(r"SKIPPED \(probe (.*?)\): (.*)", re.S)


def parse_run(path):
    """Returns ({test: (result, detail)}, seconds, error)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        return {}, 0.0, f"cannot read {path}: {e}"
    results = {}
    total = 0.0
    for case in root.iter("TestCase"):
        name = case.get("name")
        overall = case.find("OverallResult")
        ok = overall is not None and overall.get("success") == "true"
        if overall is not None:
            total += float(overall.get("durationInSeconds", "0") or 0)
        skip = None
        for w in case.iter("Warning"):
            text = (w.text or "").strip()
            m = SKIP_RE.match(text)
            if m:
                skip = ("skip(%s)" % m.group(1), " ".join(m.group(2).split()))
            elif text.startswith("SKIPPED"):
                # Never count a skip as a pass, whatever its wording.
                skip = ("skip", " ".join(text[len("SKIPPED"):].lstrip(":").split()))
        if not ok:
            lines = []
            for e in case.iter("Expression"):
                if e.get("success") == "false":
                    orig = " ".join((e.findtext("Original") or "").split())
                    exp = " ".join((e.findtext("Expanded") or "").split())
                    lines.append(f"{e.get('filename')}:{e.get('line')}: {orig}  [{exp[:200]}]")
            for tag in ("Failure", "FatalErrorCondition", "Exception"):
                for f in case.iter(tag):
                    lines.append(f"{f.get('filename')}:{f.get('line')}: {tag}: "
                                 + " ".join((f.text or "").split())[:300])
            results[name] = ("FAIL", "\n".join(lines) or "failed (no assertion recorded)")
        elif skip:
            results[name] = skip
        else:
            results[name] = ("pass", "")
    return results, total, None


def parse_probes(path):
    probes = {}
    kernel = "?"
    try:
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if line.startswith("kernel: "):
                    kernel = line[len("kernel: "):]
                    continue
                name, _, rest = line.partition(": ")
                if name:
                    probes[name] = rest
    except OSError as e:
        return kernel, {}, str(e)
    return kernel, probes, None


def short(verdict):
    """present -> yes, missing -> no, refused here -> refused, could not run -> error."""
    answer = verdict.split(":", 1)[0]
    return {"present": "yes", "missing": "no", "refused here": "refused",
            "could not run": "error"}.get(answer, answer)


def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    fmt = "  ".join("%%-%ds" % w for w in widths)
    out = [fmt % tuple(header), fmt % tuple("-" * w for w in widths)]
    out += [fmt % tuple(r) for r in rows]
    return "\n".join(out)


def md_cell(c):
    # docs/kernels.md is also a Doxygen page: a test name's <word> would
    # read as an HTML tag there, and a straight quote ends code spans.
    return (str(c).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", action="append", default=[], metavar="KERNEL=XML")
    ap.add_argument("--probes", action="append", default=[], metavar="KERNEL=TXT")
    ap.add_argument("--markdown", metavar="FILE")
    ap.add_argument("--expect-skip", action="append", default=[], metavar="KERNEL=TEST",
                    help="fail unless TEST was skipped through a probe on KERNEL")
    args = ap.parse_args()

    bad = False
    kernels, runs, times, missing = [], {}, {}, set()
    for spec in args.run:
        k, _, path = spec.partition("=")
        kernels.append(k)
        runs[k], times[k], err = parse_run(path)
        if err:
            print(f"matrix: {k}: {err}", file=sys.stderr)
            missing.add(k)
            bad = True

    tests = []
    for k in kernels:
        for t in runs[k]:
            if t not in tests:
                tests.append(t)
    tests.sort()
    header = ["test"] + kernels
    rows = [[t] + [runs[k].get(t, ("-", ""))[0] for k in kernels] for t in tests]
    print("== test x kernel ==")
    print(table(header, rows))

    notes = []
    for k in kernels:
        for t in tests:
            verdict, detail = runs[k].get(t, ("-", ""))
            if verdict.startswith("skip") or verdict == "FAIL":
                notes.append((k, t, verdict, detail))
    if notes:
        print("\n== skips and failures ==")
        for k, t, verdict, detail in notes:
            print(f"[{k}] {t}: {verdict}")
            for line in detail.splitlines():
                print(f"    {line}")

    # A probe-backed skip on one kernel should be a pass on another that has
    # the feature; list the tests that are skipped everywhere.
    everywhere = [t for t in tests if len(kernels) > 1 and
                  all(runs[k].get(t, ("-",))[0].startswith("skip") for k in kernels)]
    if everywhere:
        print("\nskipped on every kernel (nothing runs them): " + ", ".join(everywhere))

    probe_kernels, probes, releases = [], {}, {}
    for spec in args.probes:
        k, _, path = spec.partition("=")
        releases[k], probes[k], err = parse_probes(path)
        if err:
            print(f"matrix: {k} probes: {err}", file=sys.stderr)
            continue
        probe_kernels.append(k)
    probe_rows = []
    if probe_kernels:
        names = sorted({n for k in probe_kernels for n in probes[k]})
        probe_rows = [[n] + [short(probes[k].get(n, "-")) for k in probe_kernels] for n in names]
        differ = [r for r in probe_rows if len(set(r[1:])) > 1]
        print("\n== probes that differ (" + ", ".join(f"{k} = {releases[k]}" for k in probe_kernels) + ") ==")
        print(table(["probe"] + probe_kernels, differ) if differ else "(none)")

    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("### Tests\n\n" + md_table(header, rows) + "\n")
            if probe_rows:
                f.write("\n### Probes (" + ", ".join(f"{k}: {releases[k]}" for k in probe_kernels)
                        + ")\n\n" + md_table(["probe"] + probe_kernels, probe_rows) + "\n")
                f.write("\n" + "\n".join(f"- {k} `{n}`: {probes[k][n]}" for k in probe_kernels
                                          for n in sorted(probes[k]) if probes[k][n] != "present") + "\n")

    for spec in args.expect_skip:
        k, _, t = spec.partition("=")
        got = runs.get(k, {}).get(t, ("-", ""))[0]
        if not got.startswith("skip("):
            print(f"matrix: [{k}] {t}: expected a probe-backed skip, got {got}")
            bad = True

    print()
    for k in kernels:
        if k in missing:
            print(f"{k}: no results (the run died before writing its report)")
            continue
        verdicts = [v[0] for v in runs[k].values()]
        passed = verdicts.count("pass")
        failed = verdicts.count("FAIL")
        skipped = sum(1 for v in verdicts if v.startswith("skip"))
        bad = bad or failed > 0
        print(f"{k}: {times[k]:.1f} s in tests")
        print(f"{k}: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
