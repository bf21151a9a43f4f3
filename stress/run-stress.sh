#!/usr/bin/env bash
# Runs the stress harness in the three builds that matter and prints what
# each check proved.
#
#   stress/run-stress.sh [ci|long] [--seed N] [--builds "tsan asan release"]
#
#   ci    about two minutes per build on 2 cores (what CI runs)
#   long  the release build four times longer (about 7 minutes), the
#         sanitizer builds twice
#
# tsan     ThreadSanitizer, with the happens-before annotations in src/ and
#          the single libck suppression in stress/tsan.supp; must be clean
# asan     ASan + UBSan + LeakSanitizer; must be clean, no leak at exit
# release  optimized; resident-memory bounds enforced
#
# Each build uses its CMake preset (build/<preset>) and builds only the
# stress target. Logs: build/<preset>/stress-<size>.log. Exits non-zero if
# any build fails to build or any check fails.
set -u
cd "$(dirname "$0")/.." || exit 2
root=$PWD

size=ci
builds="tsan asan release"
seed_args=()
while [ $# -gt 0 ]; do
    case $1 in
    ci | long | smoke) size=$1; shift ;;
    --seed) seed_args=(--seed "$2"); shift 2 ;;
    --builds) builds=$2; shift 2 ;;
    *) echo "usage: $0 [ci|long] [--seed N] [--builds \"tsan asan release\"]" >&2; exit 2 ;;
    esac
done

export TSAN_OPTIONS="suppressions=$root/stress/tsan.supp:halt_on_error=1:exitcode=66:second_deadlock_stack=1"
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=66"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="exitcode=66"

mkdir -p build
jobs=$(nproc 2>/dev/null || echo 2)
status=0
summary=()
for preset in $builds; do
    echo "== stress $size: $preset build"
    if ! cmake --preset "$preset" >"build/$preset.configure.log" 2>&1; then
        echo "stress $preset: CONFIGURE FAILED (build/$preset.configure.log)"
        status=1
        continue
    fi
    if ! cmake --build --preset "$preset" -j"$jobs" --target portreg_stress \
        >"build/$preset/stress-build.log" 2>&1; then
        echo "stress $preset: BUILD FAILED (build/$preset/stress-build.log)"
        status=1
        continue
    fi
    log=build/$preset/stress-$size.log
    start=$(date +%s)
    "build/$preset/stress/portreg_stress" --size "$size" "${seed_args[@]}" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    took=$(($(date +%s) - start))
    if [ "$rc" -eq 0 ]; then
        summary+=("stress $preset: PASS in ${took}s ($(grep -o 'seed=[0-9]*' "$log" | head -n1))")
    else
        summary+=("stress $preset: FAIL (exit $rc) in ${took}s, log $log")
        status=1
    fi
done

echo "== stress $size summary"
printf '%s\n' "${summary[@]}"
exit $status
