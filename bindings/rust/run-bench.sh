#!/usr/bin/env bash
# The Rust lookup benchmark against an optimized libportreg: builds the
# library (Release, library only) into build/rust-release, then runs
# `cargo bench` (the bench profile is optimized too). Arguments go to the
# benchmark: --seconds S (per run, default 1), --rounds R (default 3),
# --backends N (default 64).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo=$(command -v cargo || true)
for candidate in "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" /root/.cargo/bin/cargo; do
  if [ -z "$cargo" ] && [ -x "$candidate" ]; then
    cargo=$candidate
  fi
done
[ -n "$cargo" ] || { echo "cargo not found: install a Rust toolchain" >&2; exit 1; }
export PATH="$(dirname "$cargo"):$PATH"
cmake -S . -B build/rust-release -DCMAKE_BUILD_TYPE=Release \
  -DPORTREG_BUILD_TESTS=OFF -DPORTREG_BUILD_STRESS=OFF -DPORTREG_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build/rust-release -j2 >/dev/null
export PORTREG_LIB_DIR=$PWD/build/rust-release PORTREG_INCLUDE_DIR=$PWD/include
cd bindings/rust
exec "$cargo" bench --offline -q -p portreg --bench lookups -- "$@"
