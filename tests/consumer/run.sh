#!/usr/bin/env bash
# Installs the library from BUILD_DIR into a scratch prefix, then builds the
# consumers as an outsider would: with pkg-config (C and C++, shared and
# static) and with find_package(portreg) (tests/consumer/CMakeLists.txt).
# Every program must build warning-free and pass its checks.
#   tests/consumer/run.sh BUILD_DIR [PREFIX]
# PREFIX (default: a scratch directory, removed afterwards) is kept, for
# callers that inspect the installed tree afterwards.
set -euo pipefail
build_dir=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
prefix=${2:-$scratch/prefix}

cmake --install "$build_dir" --prefix "$prefix" >/dev/null
libdir=$(find "$prefix" -name portreg.pc -printf '%h\n' | head -1)/..
libdir=$(cd "$libdir" && pwd)
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cflags=$(pkg-config --cflags portreg)
static_libs=$(pkg-config --static --libs-only-l --libs-only-other portreg | sed 's/-lportreg//')
warn=(-Wall -Wextra -pedantic -Werror)

run() {
    echo "== $1"
    shift
    "$@"
}

run "pkg-config, C, shared" \
    cc -std=c11 "${warn[@]}" "$here/consumer.c" -o "$scratch/c-shared" \
    $cflags $(pkg-config --libs portreg) -pthread -Wl,-rpath,"$libdir"
"$scratch/c-shared"

run "pkg-config, C, static" \
    cc -std=c11 "${warn[@]}" "$here/consumer.c" -o "$scratch/c-static" \
    $cflags "$libdir/libportreg.a" $static_libs
"$scratch/c-static"

run "pkg-config, C++17, shared" \
    c++ -std=c++17 "${warn[@]}" "$here/consumer.cpp" -o "$scratch/cxx-shared" \
    $cflags $(pkg-config --libs portreg) -pthread -Wl,-rpath,"$libdir"
"$scratch/cxx-shared"

run "pkg-config, C++17, static" \
    c++ -std=c++17 "${warn[@]}" "$here/consumer.cpp" -o "$scratch/cxx-static" \
    $cflags "$libdir/libportreg.a" $static_libs
"$scratch/cxx-static"

run "pkg-config, static, a program that reuses the library's internal names" \
    cc -std=c11 "${warn[@]}" "$here/collide.c" -o "$scratch/collide" \
    $cflags "$libdir/libportreg.a" $static_libs
"$scratch/collide"

echo "== find_package(portreg): C, C++11 shared and static, collide"
cmake -S "$here" -B "$scratch/cmake" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_BUILD_RPATH="$libdir" >/dev/null
cmake --build "$scratch/cmake" >/dev/null
for t in consumer consumer_cxx_shared consumer_cxx_static collide; do
    "$scratch/cmake/$t"
done
