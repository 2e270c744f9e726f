#!/usr/bin/env python3
"""Writes tether(1) from `tether --help`, so the manual page and the help
text cannot disagree: help2roff.py BINARY VERSION OUT.

The help text's shape is the contract: a "usage:" line, a "commands:" block
of two-space-indented synopses each followed by eight-space-indented
description lines, and an "exit codes:" line.
"""
import subprocess
import sys


def esc(text):
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def parse(help_text):
    usage, exit_codes, commands = "", "", []
    in_commands = False
    for line in help_text.splitlines():
        if line.startswith("usage:"):
            usage = line[len("usage:"):].strip()
        elif line.startswith("commands:"):
            in_commands = True
        elif line.startswith("exit codes:"):
            exit_codes = line[len("exit codes:"):].strip()
            in_commands = False
        elif in_commands and line.startswith("        "):
            commands[-1][1].append(line.strip())
        elif in_commands and line.startswith("  ") and line.strip():
            commands.append((line.strip(), []))
    if not usage or not commands or not exit_codes:
        raise SystemExit("help2roff: the help text lost its usage, commands or exit codes")
    return usage, commands, exit_codes


def main():
    binary, version, out = sys.argv[1:4]
    help_text = subprocess.run([binary, "--help"], check=True, capture_output=True,
                               text=True).stdout
    usage, commands, exit_codes = parse(help_text)
    prog, _, rest = usage.partition(" ")
    lines = [
        f'.TH TETHER 1 "" "tether {esc(version)}" "User Commands"',
        ".SH NAME",
        "tether \\- see the kernel's BPF object graph, explain why objects are alive, "
        "inspect and load BPF objects",
        ".SH SYNOPSIS",
        f".B {esc(prog)}",
        esc(rest),
        ".SH DESCRIPTION",
        "Each command below is also answered by",
        ".BI \"tether \" command \" \\-\\-help\".",
        ".SH COMMANDS",
    ]
    for synopsis, description in commands:
        name, _, args = synopsis.partition(" ")
        lines += [".TP", f'.B tether {esc(name)}' + (f" \\fR{esc(args)}" if args else "")]
        lines += [esc(d) for d in description]
    lines += [".SH EXIT STATUS", esc(exit_codes), ".SH SEE ALSO",
              "The CLI reference (docs/cli.md) and the library's (docs/api.md) in the tether sources."]
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
