#!/usr/bin/env bash
# Runs a Windows program under wine64 (Debian's wine64 package), quietly,
# in a Wine prefix of its own: $PORTREG_WINEPREFIX, or one next to this
# build's programs. The first run in a new prefix creates it (seconds).
#
# Wine sometimes leaves a process hanging at its exit after the program
# printed all its results (about 1 run in 42). So each run has a time
# limit ($PORTREG_WINE_TIMEOUT seconds, 900 by default), and once a line
# that says the results are complete has been printed (the portable test
# runner's "[====] Synthesis:" line, or the stress harness's last line),
# the process gets $PORTREG_WINE_EXIT_GRACE seconds (30) to exit. A run that
# hangs after that line is killed and run again, at most
# $PORTREG_WINE_RETRIES times (2), each retry said on stderr; a run that
# fails, or hangs before its results, is never retried. Output goes to
# stdout, the program's stdout and stderr merged.
WINE=${PORTREG_WINE:-/usr/lib/wine/wine64}
[ -x "$WINE" ] || WINE=$(command -v wine64 || command -v wine) || {
    echo "wine-run.sh: no wine64 found" >&2
    exit 127
}
if [ -z "${WINEPREFIX:-}" ]; then
    WINEPREFIX=${PORTREG_WINEPREFIX:-$(cd "$(dirname "$1")" && pwd)/.wine}
fi
export WINEPREFIX
export WINEDEBUG=${WINEDEBUG:--all}
timeout_s=${PORTREG_WINE_TIMEOUT:-900}
grace_s=${PORTREG_WINE_EXIT_GRACE:-30}
retries=${PORTREG_WINE_RETRIES:-2}
done_re='^\[====\] Synthesis:|^portreg_stress: (PASS|FAIL): '

# One run; its exit status, or 200 when it hung after its results.
run_once() {
    local flag
    flag=$(mktemp) || return 1
    rm -f "$flag"
    # setsid: the time limit and the grace kill end Wine's whole group.
    coproc WINE_PROC { exec setsid timeout -k 10 "$timeout_s" "$WINE" "$@" 2>&1; }
    local pid=$WINE_PROC_PID killer="" line out
    # A copy of the pipe: bash closes the coproc's own when it ends.
    exec {out}<&"${WINE_PROC[0]}"
    while IFS= read -r line <&"$out"; do
        printf '%s\n' "$line"
        if [ -z "$killer" ] && [[ $line =~ $done_re ]]; then
            # The results are complete: the process has grace_s to exit.
            (sleep "$grace_s" && touch "$flag" && kill -KILL -- "-$pid" 2>/dev/null) &
            killer=$!
        fi
    done
    exec {out}<&-
    wait "$pid"
    local rc=$?
    [ -n "$killer" ] && kill "$killer" 2>/dev/null && wait "$killer" 2>/dev/null
    if [ -e "$flag" ]; then
        rm -f "$flag"
        return 200
    fi
    [ "$rc" -eq 124 ] && echo "wine-run.sh: $1 timed out after $timeout_s s" >&2
    return "$rc"
}

for ((attempt = 0; ; attempt++)); do
    run_once "$@"
    rc=$?
    [ "$rc" -ne 200 ] && exit "$rc"
    if [ "$attempt" -ge "$retries" ]; then
        echo "wine-run.sh: $1 hung at exit after its results $((attempt + 1)) times; giving up" >&2
        exit 124
    fi
    echo "wine-run.sh: $1 hung at exit after printing its results (Wine); retry $((attempt + 1)) of $retries" >&2
done
