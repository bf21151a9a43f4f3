#!/usr/bin/env bash
# Only portreg_* may be global in the libraries we ship: nothing else that
# either library defines may be visible to the program that links it (not
# portreg's internal functions, not nanopb's, not the generated message
# descriptors). Checks the shared library's dynamic symbols and the static
# library's global ones with nm.
#   scripts/check-symbols.sh LIBDIR     (holds libportreg.so and libportreg.a)
set -euo pipefail
libdir=${1:?usage: $0 LIBDIR}
shared=$libdir/libportreg.so
static=$libdir/libportreg.a
status=0
for lib in "$shared" "$static"; do
    if [ ! -e "$lib" ]; then
        echo "check-symbols: $lib is missing" >&2
        status=1
        continue
    fi
done
[ $status = 0 ] || exit 1

# Public names are portreg_ followed by a lower-case letter; portreg__*
# names are internal.
public='^portreg_[a-z][a-z0-9_]*$'
check() {
    local what=$1 lib=$2
    shift 2
    local all bad
    all=$(nm "$@" --defined-only "$lib" | awk 'NF == 3 { print $3 }' | sort -u)
    bad=$(grep -Ev "$public" <<<"$all" || true)
    if [ -n "$bad" ]; then
        echo "check-symbols: $what exports names outside portreg_*:" >&2
        sed 's/^/    /' <<<"$bad" >&2
        status=1
    else
        echo "check-symbols: $what: $(grep -c . <<<"$all") global symbols, all portreg_*"
    fi
}
check "shared library (dynamic symbols)" "$shared" -D
check "static library (global symbols)" "$static" -g
exit $status
