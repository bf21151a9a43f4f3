#!/usr/bin/env bash
# Proves the stress harness bites: builds the library with each planted bug
# and requires the harness to catch it, the way it should be caught.
#
#   stress/run-planted.sh [--seed N] [PLANT...]    (default: all five)
#
#   lost_update    non-atomic read-modify-write of the state word
#                  -> the exchange check's chain check fails (release build)
#   early_free     compaction frees dropped slots at once, not after the
#                  grace period -> ASan reports a heap-use-after-free of a
#                  slot freed in rebuild() (ASan+UBSan build)
#   race           a plain write to the published state word
#                  -> TSan reports a data race in slot_apply() (TSan build)
#   retire_pinned  compaction ignores handles' pins and drops a pinned slot
#                  -> the handles check: ASan reports a heap-use-after-free
#                  of the slot (freed after its grace period, in
#                  graveyard_run()) read through a handle, or, if a round
#                  ends first, a handle reads untracked while its id is
#                  tracked again (ASan+UBSan build)
#   exit_after_destroy  a thread's exit hands its epoch record back even
#                  when the registry is destroyed -> libck follows the
#                  freed record's pointer (the allocator's quarantine
#                  filled it with a pattern): ASan reports a SEGV in
#                  hand_back(); or, had the write landed, the exits check
#                  finds a freed block written after its free (ASan+UBSan
#                  build)
#
# Exits non-zero if any plant is NOT caught, or a build fails. Each plant
# builds in build/plant-<name>; logs go to build/plant-<name>/stress.log.
set -u
cd "$(dirname "$0")/.." || exit 2
root=$PWD

seed=""
plants=()
while [ $# -gt 0 ]; do
    case $1 in
    --seed) seed=$2; shift 2 ;;
    lost_update | early_free | race | retire_pinned | exit_after_destroy) plants+=("$1"); shift ;;
    *) echo "usage: $0 [--seed N] [lost_update|early_free|race|retire_pinned|exit_after_destroy]..." >&2; exit 2 ;;
    esac
done
[ ${#plants[@]} -gt 0 ] || plants=(lost_update early_free race retire_pinned exit_after_destroy)
seed_args=()
[ -n "$seed" ] && seed_args=(--seed "$seed")

mkdir -p build
jobs=$(nproc 2>/dev/null || echo 2)
status=0
limit=${PLANT_TIME_LIMIT:-300}

for plant in "${plants[@]}"; do
    dir=build/plant-$plant
    # What each plant is built with, run as, and must be caught by: a
    # message, plus a second one that ties the report to the planted code
    # (expect-fail.sh patterns; --or separates other acceptable catches).
    case $plant in
    lost_update)
        san="" type=Release check=exchange
        catch=("chain check FAILED" "was replaced twice")
        how="chain check" ;;
    early_free)
        san=address type=RelWithDebInfo check=reclaim
        catch=("ERROR: AddressSanitizer: heap-use-after-free" "in rebuild")
        how="ASan heap-use-after-free (slot freed by compaction)" ;;
    race)
        san=thread type=RelWithDebInfo check=exchange
        catch=("WARNING: ThreadSanitizer: data race" "slot_apply")
        how="TSan data race (in slot_apply)" ;;
    retire_pinned)
        san=address type=RelWithDebInfo check=handles
        catch=("ERROR: AddressSanitizer: heap-use-after-free" "in portreg_handle_" "in graveyard_run"
            --or "handle check FAILED" "handle reads untracked")
        how="ASan heap-use-after-free through a handle, or the handle check" ;;
    exit_after_destroy)
        san=address type=RelWithDebInfo check=exits
        catch=("ERROR: AddressSanitizer: SEGV" "in hand_back"
            --or "exits check FAILED" "wrote to the destroyed registry")
        how="ASan SEGV in the hand-back, or the exits check" ;;
    esac

    echo "== planted $plant: building $dir"
    if ! cmake -S . -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE="$type" \
        -DPORTREG_SANITIZE="$san" -DPORTREG_PLANT="$plant" -DPORTREG_BUILD_TESTS=OFF \
        -DPORTREG_BUILD_EXAMPLES=OFF -DPORTREG_BUILD_BENCH=OFF -DPORTREG_BUILD_FUZZ=OFF \
        -DPORTREG_BUILD_STRESS=ON >"$dir.configure.log" 2>&1 ||
        ! cmake --build "$dir" -j"$jobs" --target portreg_stress >"$dir.build.log" 2>&1; then
        echo "planted $plant: BUILD FAILED (see $dir.configure.log, $dir.build.log)"
        status=1
        continue
    fi

    log=$dir/stress.log
    # A planted bug corrupts memory, and corrupted memory can also hang a
    # thread (a lock inside freed memory, say) instead of failing a check.
    # Each run gets a time limit; a run that hangs is reported and the plant
    # is tried again with a fresh seed, at most three times. A run that ends
    # without the expected catch is never retried.
    rc=124
    for try in 1 2 3; do
        TSAN_OPTIONS="suppressions=$root/stress/tsan.supp:halt_on_error=1:exitcode=66" \
            ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:exitcode=66" \
            UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
            timeout -k 10 "$limit" sh stress/expect-fail.sh "${catch[@]}" -- \
            "$dir/stress/portreg_stress" --size ci --check "$check" "${seed_args[@]}" >"$log" 2>&1
        rc=$?
        [ $rc -eq 124 ] || [ $rc -eq 137 ] || break
        echo "planted $plant: run $try hung for ${limit} s; $([ $try -lt 3 ] && echo 'trying a fresh seed' || echo 'giving up')"
        [ -z "$seed" ] || break # a fixed seed would hang again
    done
    used=$(sed -n 's/.*seed=\([0-9]*\).*/\1/p' "$log" | head -n1)
    if [ $rc -eq 0 ]; then
        echo "planted $plant: caught by $how (seed $used)"
        grep -m1 -e "FAILED" -e "ERROR: " -e "WARNING: " "$log" | sed 's/^/    /'
    else
        echo "planted $plant: NOT CAUGHT (seed $used): expected ${catch[*]}; log: $log"
        tail -n 20 "$log" | sed 's/^/    /'
        status=1
    fi
done

if [ $status -eq 0 ]; then
    echo "run-planted: every planted bug was caught"
else
    echo "run-planted: FAILED: a planted bug went unnoticed or did not build"
fi
exit $status
