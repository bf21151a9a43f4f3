#!/usr/bin/env bash
# The man pages (man/man3/, man(7) roff):
# - each source page renders with `man --warnings -l` and no warning;
# - each function page has NAME, SYNOPSIS, DESCRIPTION, RETURN VALUE,
#   ERRORS and CONCURRENCY, and its CONCURRENCY section gives every
#   function named in NAME a progress guarantee (wait-free, lock-free or
#   blocking) and its thread-safety;
# With PREFIX (an installed tree), also:
# - every function the header declares (PORTREG_API) has an installed page,
#   and `man <function>` finds it through the prefix and renders it
#   without warnings.
#   scripts/check-man.sh [PREFIX]
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-}
status=0
export MANWIDTH=80 LC_ALL=C.UTF-8

render() { # render PAGE-ARGS...: fails on any warning
    local err
    err=$(man --warnings "$@" 2>&1 >/dev/null) || {
        echo "check-man: man $* failed: $err" >&2
        return 1
    }
    if [ -n "$err" ]; then
        echo "check-man: man --warnings $* warns:" >&2
        sed 's/^/    /' <<<"$err" >&2
        return 1
    fi
}

pages=0
for page in man/man3/*.3; do
    pages=$((pages + 1))
    render -l "$page" || status=1
    [ "$(basename "$page")" = portreg.3 ] && continue
    for section in NAME SYNOPSIS DESCRIPTION "RETURN VALUE" ERRORS CONCURRENCY; do
        if ! grep -qx "\.SH \"\?$section\"\?" "$page"; then
            echo "check-man: $page has no $section section" >&2
            status=1
        fi
    done
    # The functions named in NAME, and the ones CONCURRENCY covers: each
    # tagged paragraph (.TP, .TQ) must state progress and thread-safety.
    named=$(awk '/^\.SH NAME/ { getline; sub(/ \\-.*/, ""); gsub(/, /, "\n"); print; exit }' "$page")
    covered=$(awk '
        function flush() {
            if (ntags && body ~ /(Wait-free|Lock-free|Blocking)/ && body ~ /[Tt]hread-safe/)
                for (i = 1; i <= ntags; i++) print tags[i]
            ntags = 0; body = ""
        }
        /^\.SH / { if (in_sec) flush(); in_sec = ($0 == ".SH CONCURRENCY"); next }
        !in_sec { next }
        /^\.TP/ { flush(); want_tag = 1; next }
        /^\.TQ/ { want_tag = 1; next }
        want_tag { split($0, w, " "); tags[++ntags] = w[2]; want_tag = 0; next }
        { body = body " " $0 }
        END { if (in_sec) flush() }' "$page")
    for fn in $named; do
        if ! grep -qx "$fn" <<<"$covered"; then
            echo "check-man: $page: CONCURRENCY does not give $fn its progress guarantee" \
                "and thread-safety" >&2
            status=1
        fi
        if ! grep -q "$fn(" "$page"; then
            echo "check-man: $page: $fn is not in the SYNOPSIS" >&2
            status=1
        fi
    done
done
[ $status = 0 ] && echo "check-man: $pages source pages render without warnings; every function" \
    "page states progress, errors and thread-safety"

if [ -n "$prefix" ]; then
    mandir=$prefix/share/man
    functions=$(grep -E '^PORTREG_API ' include/portreg.h | grep -o '^[^(]*(' |
        sed 's/($//; s/.*[ *]//' | sort -u)
    n=0
    for fn in $functions; do
        n=$((n + 1))
        if [ ! -f "$mandir/man3/$fn.3" ]; then
            echo "check-man: $fn has no page in $mandir/man3" >&2
            status=1
            continue
        fi
        render -M "$mandir" 3 "$fn" || status=1
        if ! man -M "$mandir" 3 "$fn" 2>/dev/null | grep -q "$fn"; then
            echo "check-man: man -M $mandir 3 $fn does not show $fn" >&2
            status=1
        fi
    done
    [ $status = 0 ] && echo "check-man: all $n functions of portreg.h have an installed page" \
        "(man -M $mandir)"
fi
exit $status
