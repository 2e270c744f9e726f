#!/usr/bin/env python3
"""Lists functions longer than a limit (default 150 lines) in C++ sources.

  python3 scripts/long_functions.py [--limit N] DIR_OR_FILE...

A heuristic, not a parser: a function starts at a '{' that follows a ')'
(possibly with const/override/noexcept or a constructor's initialiser list)
at namespace or class level, and ends at its matching '}'. Lambdas and
blocks inside a function count toward the function that holds them.
Exit status 1 when any function is over the limit.
"""
import argparse
import os
import re
import sys


def strip(src):
    """Blanks comments, strings and char literals, keeping line breaks."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * src.count("\n", i, j))
            i = j
        elif src.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', src[i:])
            end = ')' + (m.group(1) if m else '') + '"'
            j = src.find(end, i)
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * src.count("\n", i, j))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(path):
    text = strip(open(path, errors="replace").read())
    # Depths whose braces open a namespace, class, struct, enum or extern block.
    stack = []  # (kind, start_line, name)
    line = 1
    last = ""
    for i, c in enumerate(text):
        if c == "\n":
            line += 1
        if c == "{":
            head = last[-300:]
            in_func = any(k == "func" for k, _, _ in stack)
            if in_func:
                stack.append(("block", line, ""))
            elif re.search(r"\b(namespace|class|struct|union|enum)\b[^;{}()]*$", head) or \
                    re.search(r'extern\s*""\s*$', head):
                stack.append(("scope", line, ""))
            elif re.search(r"\)\s*(const|override|final|noexcept|mutable|->[^{;]*|\s|:[^;{}]*)*$", head):
                m = re.search(r"([~\w:<>]+)\s*\([^()]*(\([^()]*\)[^()]*)*\)[^()]*$", head)
                stack.append(("func", line, m.group(1) if m else "?"))
            else:
                stack.append(("block", line, ""))
            last = ""
        elif c == "}":
            if stack:
                kind, start, name = stack.pop()
                if kind == "func":
                    yield name, start, line
            last = ""
        elif c == ";":
            last = ""
        else:
            last += c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=150)
    ap.add_argument("paths", nargs="+")
    args = ap.parse_args()
    files = []
    for p in args.paths:
        if os.path.isdir(p):
            for d, _, fs in os.walk(p):
                files += [os.path.join(d, f) for f in fs if f.endswith((".cc", ".h", ".cpp"))]
        else:
            files.append(p)
    bad = 0
    for f in sorted(files):
        for name, start, end in functions(f):
            if end - start + 1 > args.limit:
                print(f"{f}:{start}: {name}: {end - start + 1} lines")
                bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
