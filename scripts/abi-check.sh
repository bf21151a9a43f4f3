#!/usr/bin/env bash
# Compares the ABI of the shared library with the committed baseline,
# abi/<SONAME>.abi (written by abidw from Debian's abigail-tools), and fails
# on any difference: an ABI change must be deliberate.
#
#   scripts/abi-check.sh [--update] [BUILD_DIR]
#
# BUILD_DIR holds a libportreg.so built with debug info (RelWithDebInfo or
# Debug); without one, the library is built plainly in build/ship-abi.
# --update rewrites the baseline from that build instead of comparing.
# When the check fails: an incompatible change needs a new SONAME (the
# minor version while portreg is 0.x, see CHANGELOG.md), a compatible one
# (an added function) only a new baseline; either way run --update, commit
# the new abi/ file and say what changed in CHANGELOG.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

update=0
if [ "${1:-}" = "--update" ]; then
    update=1
    shift
fi
build=${1:-}
if [ -z "$build" ]; then
    build=build/ship-abi
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j2 --target portreg >/dev/null
fi
lib=$(find "$build" -maxdepth 1 -name 'libportreg.so.*.*.*' -type f | head -n1)
if [ -z "$lib" ]; then
    echo "abi-check: no libportreg.so.X.Y.Z in $build" >&2
    exit 2
fi
if ! readelf -S "$lib" | grep '\.debug_info' >/dev/null; then
    echo "abi-check: $lib has no debug info; build it RelWithDebInfo or Debug" >&2
    exit 2
fi
soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
baseline=abi/$soname.abi

# Only the exported functions and the types the header defines (struct
# portreg and struct portreg_handle stay declarations: callers only hold
# pointers to them), without source locations or build paths, so that the
# file changes only when the ABI does.
abidw_args=(--headers-dir "$root/include" --exported-interfaces-only --drop-private-types
    --no-show-locs --no-comp-dir-path --no-corpus-path --type-id-style hash)
current=$(mktemp)
trap 'rm -f "$current"' EXIT
abidw "${abidw_args[@]}" --out-file "$current" "$lib"

if [ $update = 1 ]; then
    mkdir -p abi
    cp "$current" "$baseline"
    echo "abi-check: wrote $baseline from $lib"
    exit 0
fi
if [ ! -f "$baseline" ]; then
    echo "abi-check: no baseline $baseline for SONAME $soname." >&2
    echo "  A new SONAME starts a new baseline: run scripts/abi-check.sh --update" >&2
    echo "  and record the decision in CHANGELOG.md." >&2
    exit 1
fi
functions=$(grep -c '<elf-symbol name=.*type=.func-type' "$baseline" || true)
rc=0
abidiff --no-show-locs "$baseline" "$current" || rc=$?
if [ $rc = 0 ]; then
    echo "abi-check: $soname matches $baseline ($functions functions)"
    exit 0
fi
echo "abi-check: the ABI of $soname differs from $baseline (abidiff exit $rc, above)." >&2
if [ $((rc & 8)) -ne 0 ]; then
    echo "  The change is INCOMPATIBLE: it needs a new SONAME (CHANGELOG.md, Shipping)." >&2
fi
echo "  If it is deliberate: scripts/abi-check.sh --update, commit abi/, note it in CHANGELOG.md." >&2
exit 1
