#!/usr/bin/env bash
# include/portreg.h must compile warning-free (-Werror) as C99, C11 and C17
# with gcc and clang, and as C++11, C++17 and C++20 with g++ and clang++,
# all with -pedantic -Wall -Wextra. The header's own compile-time checks
# (sizes and alignments of the caller-allocated structs) run in each mode;
# the program below also expands PORTREG_ERRNO_MAP as a caller would.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

cat >"$scratch/use.c" <<'C'
#include <portreg.h>
#include <portreg.h> /* twice: the include guard holds */

#define COUNT(name, value, message) +1
static const int codes = 0 PORTREG_ERRNO_MAP(COUNT);

int use_header(void);
int use_header(void)
{
    portreg_iter_t it;
    portreg_frame_reader_t fr;
    portreg_options_t opts;
    (void)it;
    (void)fr;
    (void)opts;
    return codes + PORTREG_OK + PORTREG_EFULL + (int)sizeof(portreg_stats_t);
}
C
cp "$scratch/use.c" "$scratch/use.cpp"

failed=0
compile() {
    local cc=$1 std=$2 src=$3
    if ! command -v "$cc" >/dev/null; then
        echo "check-header: $cc not found" >&2
        failed=1
        return
    fi
    if "$cc" "-std=$std" -pedantic -Wall -Wextra -Werror -Iinclude -c "$src" \
        -o "$scratch/use.o" 2>"$scratch/err"; then
        printf '  %-8s %-6s ok\n' "$cc" "$std"
    else
        printf '  %-8s %-6s FAILED\n' "$cc" "$std"
        sed 's/^/    /' "$scratch/err"
        failed=1
    fi
}

for cc in gcc clang; do
    for std in c99 c11 c17; do
        compile "$cc" "$std" "$scratch/use.c"
    done
done
for cxx in g++ clang++; do
    for std in c++11 c++17 c++20; do
        compile "$cxx" "$std" "$scratch/use.cpp"
    done
done
# Other POSIX systems are supported (the POSIX backend).
if ! gcc -U__linux__ -Iinclude -c "$scratch/use.c" -o "$scratch/use.o" 2>"$scratch/err"; then
    echo "check-header: without __linux__ the header does not compile:" >&2
    sed 's/^/    /' "$scratch/err" >&2
    failed=1
fi
# Windows, with mingw-w64 where it is installed: the header as a DLL's
# consumer (dllimport), as the static library's (PORTREG_STATIC_DEFINE) and
# as the DLL's own sources (dllexport) see it.
windows=""
if command -v x86_64-w64-mingw32-gcc >/dev/null && command -v x86_64-w64-mingw32-g++ >/dev/null; then
    windows=" and on Windows (mingw-w64)"
    for mode in "" -DPORTREG_STATIC_DEFINE -DPORTREG_BUILDING_DLL; do
        for pair in "x86_64-w64-mingw32-gcc c11 use.c" "x86_64-w64-mingw32-g++ c++11 use.cpp"; do
            set -- $pair
            if ! "$1" -std="$2" -pedantic -Wall -Wextra -Werror $mode -Iinclude -c "$scratch/$3" \
                -o "$scratch/use.o" 2>"$scratch/err"; then
                echo "check-header: $1 -std=$2 $mode fails:" >&2
                sed 's/^/    /' "$scratch/err" >&2
                failed=1
            fi
        done
    done
fi
if [ $failed = 0 ]; then
    echo "check-header: portreg.h is clean in all 12 language modes, off Linux$windows"
fi
exit $failed
