#!/usr/bin/env bash
# The path a packager takes, with no options:
#   cmake -S . -B build && cmake --build build && cmake --install build
# It must need only libck and nanopb. Criterion and liburcu are hidden from
# the configure step: pkg-config is replaced by a wrapper that refuses (and
# records) any query for them, and the configure trace must show no
# find_* or pkg-config lookup that names them. Then, against the installed
# copy: the C and C++ consumers build and pass (tests/consumer/run.sh), the
# install holds nothing but the library, its header, package files and man
# pages, only portreg_* is global in either library, every function has a
# man page, and the shared library's ABI matches abi/.
#   scripts/check-plain-install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=build/ship-plain
prefix=$root/build/ship-plain-prefix
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
rm -rf "$build" "$prefix"

real=$(command -v pkg-config)
mkdir -p "$scratch/bin"
cat >"$scratch/bin/pkg-config" <<WRAP
#!/bin/sh
# Criterion and liburcu do not exist as far as this configure can tell.
for arg in "\$@"; do
    case \$arg in
    *criterion* | *urcu*) echo "\$*" >>"$scratch/hidden.log"; exit 1 ;;
    esac
done
exec "$real" "\$@"
WRAP
chmod +x "$scratch/bin/pkg-config"

echo "== configure (plain; Criterion and liburcu hidden)"
PKG_CONFIG="$scratch/bin/pkg-config" cmake -S . -B "$build" \
    -DPKG_CONFIG_EXECUTABLE="$scratch/bin/pkg-config" -DCMAKE_INSTALL_PREFIX="$prefix" \
    --trace-expand --trace-redirect="$scratch/trace.log" >"$scratch/configure.log" 2>&1 || {
    cat "$scratch/configure.log"
    echo "check-plain-install: the plain configure failed" >&2
    exit 1
}
if [ -s "$scratch/hidden.log" ]; then
    echo "check-plain-install: the plain configure asked pkg-config for:" >&2
    sed 's/^/    /' "$scratch/hidden.log" >&2
    exit 1
fi
lookups='(pkg_check_modules|pkg_search_module|find_package|find_library|find_path|find_file|find_program)\('
if grep -E "$lookups" "$scratch/trace.log" | grep -iE 'criterion|urcu'; then
    echo "check-plain-install: the plain configure looks for Criterion or liburcu (above)" >&2
    exit 1
fi
echo "configure: no lookup of Criterion or liburcu"

echo "== build, install"
cmake --build "$build" -j2 >"$scratch/build.log" 2>&1 || {
    tail -n 30 "$scratch/build.log"
    exit 1
}
cmake --install "$build" >/dev/null
unexpected=$(sed "s#^$prefix/##" "$build/install_manifest.txt" | grep -vE \
    '^(include/portreg\.h|lib[^/]*/(libportreg\.(a|so(\.[0-9]+)*)|pkgconfig/portreg\.pc|cmake/portreg/portreg[A-Za-z-]*\.cmake)|share/man/man3/portreg[a-z_]*\.3)$' ||
    true)
if [ -n "$unexpected" ]; then
    echo "check-plain-install: the plain install holds more than the library:" >&2
    sed 's/^/    /' <<<"$unexpected" >&2
    exit 1
fi
echo "install: $(wc -l <"$build/install_manifest.txt") files, all of them the library's"

echo "== consumers against the installed copy"
bash tests/consumer/run.sh "$build" "$prefix"

echo "== symbols"
libdir=$(dirname "$(find "$prefix" -name libportreg.a | head -n1)")
bash scripts/check-symbols.sh "$libdir"

echo "== man pages"
bash scripts/check-man.sh "$prefix"

echo "== ABI"
bash scripts/abi-check.sh "$build"
