#!/bin/sh
# expect-fail.sh PATTERN... -- COMMAND...
# Succeeds only if COMMAND fails (non-zero exit) and its output contains
# every PATTERN. For planted bugs: a harness that stopped checking would
# let COMMAND pass, and this would fail.
patterns=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    patterns="$patterns$1
"
    shift
done
if [ "${1:-}" != "--" ] || [ $# -lt 2 ]; then
    echo "usage: $0 PATTERN... -- COMMAND..." >&2
    exit 2
fi
shift
out=$(mktemp) || exit 2
"$@" >"$out" 2>&1
rc=$?
cat "$out"
missing=$(printf '%s' "$patterns" | while IFS= read -r p; do
    grep -qF -- "$p" "$out" || printf '"%s" ' "$p"
done)
rm -f "$out"
if [ "$rc" -ne 0 ] && [ -z "$missing" ]; then
    echo "expect-fail: caught as expected (exit $rc)"
    exit 0
fi
echo "expect-fail: NOT caught: exit $rc${missing:+, missing }$missing"
exit 1
