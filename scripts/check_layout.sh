#!/usr/bin/env bash
# The layout's rules (docs/architecture.md), checked from the sources:
#   - no .cc file directly in lib/;
#   - lib/sys/ and lib/base/ include nothing of lib/ outside themselves;
#   - lib/graph/ includes no handle header and nothing above it;
#   - no function in lib/ or tools/ is over 150 lines.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
fail() { echo "check_layout: $*" >&2; bad=1; }

ls lib/*.cc >/dev/null 2>&1 && fail "sources directly in lib/: $(ls lib/*.cc | tr '\n' ' ')"
for d in sys base; do
  if out=$(grep -rnE '#include "(base|sys|btf|elf|features|graph|handles|maps|attach|load|inspect|tether)/' "lib/$d" |
           grep -vE "#include \"$d/"); then
    fail "lib/$d reaches outside itself:"$'\n'"$out"
  fi
done
if out=$(grep -rnE '#include "(tether/(map|program|link|prog_array|map_in_map|collection)\.h|handles/|maps/|load/|attach/|inspect/|features/)' lib/graph); then
  fail "lib/graph includes what sits above it:"$'\n'"$out"
fi
python3 scripts/long_functions.py lib tools || fail "functions over 150 lines (above)"
[ "$bad" = 0 ] && echo "check_layout: ok"
exit "$bad"
