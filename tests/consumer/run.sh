#!/usr/bin/env bash
# Installs the library from BUILD_DIR into a scratch prefix, then builds the
# consumer twice, as an outsider would: with pkg-config and with
# find_package(portreg). Both must build and pass their checks.
set -euo pipefail
build_dir=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

cmake --install "$build_dir" --prefix "$scratch/prefix" >/dev/null
libdir=$(find "$scratch/prefix" -name portreg.pc -printf '%h\n' | head -1)/..

echo "== pkg-config"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -std=c11 -Wall -Wextra -Werror "$here/consumer.c" -o "$scratch/consumer-pc" \
   $(pkg-config --cflags --libs portreg) -pthread -Wl,-rpath,"$libdir"
"$scratch/consumer-pc"

echo "== pkg-config --static"
cc -std=c11 -Wall -Wextra -Werror "$here/consumer.c" -o "$scratch/consumer-static" \
   $(pkg-config --cflags portreg) "$libdir/libportreg.a" \
   $(pkg-config --static --libs-only-l portreg | sed 's/-lportreg//') -pthread
"$scratch/consumer-static"

echo "== find_package(portreg)"
cmake -S "$here" -B "$scratch/cmake" -DCMAKE_PREFIX_PATH="$scratch/prefix" \
      -DCMAKE_BUILD_RPATH="$libdir" >/dev/null
cmake --build "$scratch/cmake" >/dev/null
"$scratch/cmake/consumer"
