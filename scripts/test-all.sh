#!/usr/bin/env bash
# The whole test suite, as CI runs it (README: `make test`).
#   1. dev build (-Werror): unit tests, install/consumer test, example,
#      the attack suite against the example broker (examples/attack-suite.sh)
#   1b. the build users ship (RelWithDebInfo: -O2, NDEBUG): unit tests,
#      where timing and code generation differ from a debug build
#   2. ASan + UBSan + LSan build: unit tests, example, stress
#   3. TSan build: stress, example (Criterion cannot run under TSan, see
#      tests/CMakeLists.txt)
#   4. release build: stress, the longest run
#   5. planted bugs: each must be caught
#   6. fuzzing, bounded
#   6b. Rust bindings: cargo test on bindings/rust (skipped without cargo)
#   6c. shipping: the header as C99-C17 and C++11-C++20, man pages, the
#       plain install with only libck and nanopb (consumers, nm, ABI)
#   7. formatting
# Every stage prints its figures; the last line is the tally.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
passed=0
failed=0
failures=()
export CTEST_OUTPUT_ON_FAILURE=1
export TSAN_OPTIONS="suppressions=$PWD/stress/tsan.supp halt_on_error=1 second_deadlock_stack=1"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"

# Every stage runs under a time limit (STAGE_LIMIT seconds, default 900;
# 1500 for the stress stages), so that a hang fails its own stage, by name,
# and the stages after it still run: CI's whole budget is never spent on
# one stuck process. timeout(1) signals the stage's whole process group.
suite_start=$SECONDS
stage() {
  local name=$1 limit=${STAGE_LIMIT:-900}
  shift
  case $1 in run_stress) limit=$((limit > 1500 ? limit : 1500)) ;; esac
  echo
  echo "=== stage: $name ($(date -u +%H:%M:%S), $((SECONDS - suite_start)) s into the suite)"
  local start=$SECONDS rc=0
  timeout -k 30 "$limit" bash -c '"$@"' stage "$@" || rc=$?
  if [ "$rc" -eq 0 ]; then
    echo "=== stage $name: PASS ($((SECONDS - start)) s)"
    passed=$((passed + 1))
  else
    [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && echo "=== stage $name: TIMED OUT after $limit s"
    echo "=== stage $name: FAIL ($((SECONDS - start)) s)"
    failed=$((failed + 1))
    failures+=("$name")
  fi
}

build() {
  cmake --preset "$1" >/dev/null && cmake --build --preset "$1" -j2
}

run_ctest() {
  local preset=$1 labels=$2
  shift 2
  ctest --test-dir "build/$preset" -L "$labels" --timeout 900 -j1 "$@"
}

# Stress runs print what they proved (operations, threads, seed, peak RSS):
# show it even when they pass.
run_stress() {
  run_ctest "$1" stress --verbose | grep -E "^[0-9]+: (portreg_stress|exchange|iter|reclaim|churn|waiters|eventfd|handles|exits)|Test +#|tests passed|tests failed"
  return "${PIPESTATUS[0]}"
}
export -f build run_ctest run_stress

stage "dev: build" build dev
stage "dev: unit, install, example" run_ctest dev "unit|install|example"
stage "dev: attack suite against the example broker" run_ctest dev attack --verbose
stage "optimized: build" build optimized
stage "optimized (-O2): unit" run_ctest optimized unit
stage "asan: build" build asan
stage "asan: unit, example" run_ctest asan "unit|example"
stage "asan: stress" run_stress asan
stage "tsan: build" build tsan
stage "tsan: example" run_ctest tsan "example"
stage "tsan: stress" run_stress tsan
stage "release: build" build release
stage "release: stress" run_stress release
stage "planted bugs are caught" bash stress/run-planted.sh
stage "fuzz (${FUZZ_SECONDS} s)" bash fuzz/run.sh "$FUZZ_SECONDS"
stage "rust bindings" bash bindings/rust/run-tests.sh
stage "ship: header C/C++, symbols, man pages, plain install, ABI" bash scripts/check-ship.sh
stage "clang-format" bash -c 'git ls-files "*.c" "*.h" "*.cpp" | xargs clang-format --dry-run --Werror'

echo
for f in "${failures[@]+"${failures[@]}"}"; do
  echo "failed stage: $f"
done
echo "stages: $passed passed, $failed failed ($((SECONDS - suite_start)) s)"
[ "$failed" -eq 0 ]
