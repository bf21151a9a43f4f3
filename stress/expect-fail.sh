#!/bin/sh
# expect-fail.sh PATTERN... [--or PATTERN...]... -- COMMAND...
# Succeeds only if COMMAND fails (non-zero exit) and its output contains
# every PATTERN of at least one group (fixed strings; groups are separated
# by --or, for a bug that can be caught in more than one way). For planted
# bugs: a harness that stopped checking would let COMMAND pass, and this
# would fail.
groups=""
group=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    if [ "$1" = "--or" ]; then
        [ -n "$group" ] || { echo "$0: empty pattern group" >&2; exit 2; }
        groups="$groups$group
--or
"
        group=""
    else
        group="$group$1
"
    fi
    shift
done
if [ "${1:-}" != "--" ] || [ $# -lt 2 ] || [ -z "$group" ]; then
    echo "usage: $0 PATTERN... [--or PATTERN...]... -- COMMAND..." >&2
    exit 2
fi
groups="$groups$group--or
"
shift
out=$(mktemp) || exit 2
"$@" >"$out" 2>&1
rc=$?
cat "$out"
# Prints "ok" if some group matched in full, else the first group's
# missing patterns.
verdict=$(printf '%s' "$groups" | {
    missing="" first="" ok=""
    while IFS= read -r p; do
        if [ "$p" = "--or" ]; then
            [ -z "$missing" ] && ok=1
            [ -z "$first" ] && first="${missing:-none}"
            missing=""
        elif ! grep -qF -- "$p" "$out"; then
            missing="$missing\"$p\" "
        fi
    done
    if [ -n "$ok" ]; then echo ok; else echo "$first"; fi
})
rm -f "$out"
if [ "$rc" -ne 0 ] && [ "$verdict" = ok ]; then
    echo "expect-fail: caught as expected (exit $rc)"
    exit 0
fi
[ "$verdict" = ok ] && verdict=""
echo "expect-fail: NOT caught: exit $rc${verdict:+, missing }$verdict"
exit 1
