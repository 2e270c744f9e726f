#!/usr/bin/env python3
"""Parses OpenMetrics text from stdin with the Prometheus client library.

Prints one line per sample, "name{k=v,...} value", sorted, and exits 0; a
parse error, a missing "# EOF" or a family tether should always write exits 1.
"""
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

REQUIRED = {"tether_objects", "tether_edges", "tether_cycles", "tether_hazards"}


def main():
    text = sys.stdin.read()
    if not text.endswith("# EOF\n"):
        print("openmetrics_parse: the text does not end in '# EOF'", file=sys.stderr)
        return 1
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser raises ValueError and friends
        print(f"openmetrics_parse: {e}", file=sys.stderr)
        return 1
    names = {f.name for f in families}
    if not REQUIRED <= names:
        print(f"openmetrics_parse: missing {sorted(REQUIRED - names)}", file=sys.stderr)
        return 1
    lines = []
    for f in families:
        if f.type != ("counter" if f.name == "tether_tail_call_misses" else "gauge"):
            print(f"openmetrics_parse: {f.name} is a {f.type}", file=sys.stderr)
            return 1
        for s in f.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            lines.append(f"{s.name}{{{labels}}} {int(s.value)}")
    print("\n".join(sorted(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
