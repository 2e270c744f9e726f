#!/usr/bin/env python3
"""Doxygen INPUT_FILTER for the public headers: their contract comments are
plain `//` lines, which Doxygen would skip. A comment block standing alone on
its lines becomes `///` (documenting what follows it), the file's opening
block becomes its \\file description, and a trailing `// ...` after a member
becomes `///< ...`. Section rules (`// --- x ---`) stay plain comments, and the std::hash
specialisations are left out.
"""
import re
import sys

SECTION = re.compile(r"^\s*//\s*---")
TRAILING = re.compile(r"^(\s*[^/\s].*?;)\s*//\s?(.*)$")
# <name> in prose is a placeholder, not an HTML tag.
PLACEHOLDER = re.compile(r"(?<![\w:])<([a-z_][a-z_0-9 ]*)>")


def prose(text):
    return PLACEHOLDER.sub(r"\\<\1\\>", text)


def main():
    path = sys.argv[1]
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if not path.endswith(".h"):
        sys.stdout.write("\n".join(lines))
        return
    out = []
    in_file_block = True
    skipping_std = False
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        # `template <> struct std::hash<...>` trips Doxygen 1.9 ("scope not
        # found"); the specialisations are not reference material. Blank
        # lines keep the line numbers of the warnings right.
        if line.startswith("template <>") and i + 1 < len(lines) and "std::hash<" in lines[i + 1]:
            skipping_std = True
        if skipping_std:
            out.append("")
            if line.startswith("};"):
                skipping_std = False
            continue
        if in_file_block:
            if stripped.startswith("//"):
                text = stripped[2:]
                out.append(("/// \\file\n///" if not out else "///") + prose(text))
                continue
            in_file_block = False
        if SECTION.match(line):
            out.append(line)
        elif stripped.startswith("//") and not stripped.startswith("///"):
            indent = line[: len(line) - len(stripped)]
            out.append(indent + "///" + prose(stripped[2:]))
        else:
            m = TRAILING.match(line)
            if m and "\"" not in m.group(1):
                out.append(f"{m.group(1)}  ///< {prose(m.group(2))}")
            else:
                out.append(line)
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
