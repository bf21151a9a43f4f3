#!/usr/bin/env bash
# The Rust bindings' tests, for `make test` (scripts/test-all.sh) or by hand:
# builds libportreg (library only) into build/rust-test, then runs
# `cargo test --offline` on the workspace against it, the test binaries
# again under valgrind (when installed), checks formatting and that the
# benchmark builds. Without cargo it says so and passes.
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo=$(command -v cargo || true)
for candidate in "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" /root/.cargo/bin/cargo; do
  if [ -z "$cargo" ] && [ -x "$candidate" ]; then
    cargo=$candidate
  fi
done
if [ -z "$cargo" ]; then
  echo "skipped: cargo not found (install a Rust toolchain to test bindings/rust)"
  exit 0
fi
# rustc, rustdoc and rustfmt sit next to cargo.
export PATH="$(dirname "$cargo"):$PATH"
echo "rust: $("$cargo" --version), $(rustc --version)"

# Optimized, with assertions kept (no NDEBUG): the library's own checks of
# its callers, such as portreg_destroy's abort on a handle still open, then
# catch a binding that misuses it (tests/leaks.rs relies on that, and
# PORTREG_TEST_ASSERTIONS tells it so).
cmake -S . -B build/rust-test -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g" \
  -DPORTREG_DEVELOPER=ON -DPORTREG_BUILD_TESTS=OFF -DPORTREG_BUILD_STRESS=OFF \
  -DPORTREG_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build/rust-test -j2 >/dev/null

export PORTREG_LIB_DIR=$PWD/build/rust-test PORTREG_INCLUDE_DIR=$PWD/include PORTREG_TEST_ASSERTIONS=1
cd bindings/rust
set +e
"$cargo" test --offline --workspace --no-fail-fast 2>&1 |
  grep -E "^(test result|     Running|   Doc-tests)|FAILED|panicked|^error"
status=${PIPESTATUS[0]}
set -e
[ "$status" -eq 0 ] || { echo "cargo test failed (rerun in bindings/rust for the details)"; exit "$status"; }
# The same test binaries under valgrind's memcheck: the bindings' frees
# (snapshots, iterators, handles, frame readers, registries) must be exact.
if command -v valgrind >/dev/null; then
  "$cargo" test --offline --workspace --tests --no-run --message-format=json 2>/dev/null |
    grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | grep -v '/portreg-sys/' |
    while read -r exe; do
      name=$(basename "$exe")
      if valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite \
        "$exe" --test-threads=1 -q >"/tmp/portreg-rust-memcheck.$$" 2>&1; then
        echo "memcheck ${name%-*}: clean"
      else
        cat "/tmp/portreg-rust-memcheck.$$"
        echo "memcheck ${name%-*}: FAILED"
        exit 1
      fi
    done || exit 1
  rm -f "/tmp/portreg-rust-memcheck.$$"
fi
"$cargo" build --offline --benches -q
if "$cargo" fmt --version >/dev/null 2>&1; then
  "$cargo" fmt --all --check
fi
