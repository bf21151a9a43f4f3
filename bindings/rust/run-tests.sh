#!/usr/bin/env bash
# The Rust bindings' tests, for `make test` (scripts/test-all.sh) or by hand:
# builds libportreg (library only) into build/rust-test, then runs
# `cargo test --offline` on the workspace against it, checks formatting and
# that the benchmark builds. Without cargo it says so and passes.
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

cmake -S . -B build/rust-test -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPORTREG_DEVELOPER=ON \
  -DPORTREG_BUILD_TESTS=OFF -DPORTREG_BUILD_STRESS=OFF -DPORTREG_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build/rust-test -j2 >/dev/null

export PORTREG_LIB_DIR=$PWD/build/rust-test PORTREG_INCLUDE_DIR=$PWD/include
cd bindings/rust
set +e
"$cargo" test --offline --workspace --no-fail-fast 2>&1 |
  grep -E "^(test result|     Running|   Doc-tests)|FAILED|panicked|^error"
status=${PIPESTATUS[0]}
set -e
[ "$status" -eq 0 ] || { echo "cargo test failed (rerun in bindings/rust for the details)"; exit "$status"; }
"$cargo" build --offline --benches -q
if "$cargo" fmt --version >/dev/null 2>&1; then
  "$cargo" fmt --all --check
fi
