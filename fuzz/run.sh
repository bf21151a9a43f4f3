#!/usr/bin/env bash
# Builds the fuzz preset, writes the seed corpora and runs every libFuzzer
# target for its share of the time. Fails if any target finds a crash, leak,
# sanitizer report or broken property; the input is left in
# build/fuzz/fuzz/artifacts/.
#
# usage: fuzz/run.sh [total seconds, default 60]
set -euo pipefail

total=${1:-60}
if ! [[ $total =~ ^[0-9]+$ ]] || ((total < 1)); then
    echo "usage: $0 [total seconds]" >&2
    exit 2
fi

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz

bin=$root/build/fuzz/fuzz
targets=(decode frame ops)
each=$((total / ${#targets[@]}))
((each >= 1)) || each=1

"$bin/make_corpus" "$bin/seeds"
mkdir -p "$bin/artifacts"

status=0
for t in "${targets[@]}"; do
    mkdir -p "$bin/corpus/$t"
    log=$bin/fuzz_$t.log
    echo "== fuzz_$t: ${each}s (log: $log)"
    if ! "$bin/fuzz_$t" -max_total_time="$each" -error_exitcode=77 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$bin/artifacts/$t-" \
        "$bin/corpus/$t" "$bin/seeds/$t" >"$log" 2>&1; then
        status=1
        echo "fuzz_$t FAILED:"
        tail -n 40 "$log"
    fi
    # The last status line carries coverage (cov), features (ft) and the corpus.
    grep -E '^#[0-9]+' "$log" | tail -n 1 || true
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' \
        "$log" || true
done
exit $status
