#!/usr/bin/env bash
# Runs a Windows program under wine64 (Debian's wine64 package), quietly,
# in a Wine prefix of its own: $PORTREG_WINEPREFIX, or one next to this
# build's programs. Output goes to stdout, the program's stdout and stderr
# merged.
#
# Three things about Wine 8.0 as Debian ships it shape this script:
# - A new prefix is made once, under a lock ($WINEPREFIX.lock), before any
#   program runs in it. Two programs that both find no prefix both start
#   making one, and one of them can fail before the program starts ("wine:
#   chdir to /tmp/wine-XXXXXX/server-...: No such file or directory":
#   Debian's Wine keeps its server's directory under a random name that the
#   prefix records, and the two disagreed about it).
# - That same message on a run whose program printed nothing is a failure
#   to start: the run is made again ($PORTREG_WINE_RETRIES times at most,
#   each retry said on stderr).
# - Wine sometimes leaves a process hanging at its exit after the program
#   printed all its results (about 1 run in 42). So each run has a time
#   limit ($PORTREG_WINE_TIMEOUT seconds, 900 by default), and once a line
#   that says the results are complete has been printed (the portable test
#   runner's "[====] Synthesis:" line, or the stress harness's last line),
#   the process gets $PORTREG_WINE_EXIT_GRACE seconds (30) to exit. A run
#   that hangs after that line is killed and run again, at most
#   $PORTREG_WINE_RETRIES times (2), each retry said on stderr; a run that
#   fails, or hangs before its results, is never retried.
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
start_fail_re='^wine: chdir to .*/server-'
WINESERVER=${PORTREG_WINESERVER:-$(dirname "$WINE")/wineserver}
[ -x "$WINESERVER" ] || WINESERVER=$(command -v wineserver || echo wineserver)

# Makes the prefix if it is not there yet: one maker, the others wait.
# system.reg is written when the wineserver that made the prefix exits.
prepare_prefix() {
    [ -e "$WINEPREFIX/system.reg" ] && return 0
    local lock
    exec {lock}>"$WINEPREFIX.lock" || return 1
    flock "$lock"
    if [ ! -e "$WINEPREFIX/system.reg" ]; then
        "$WINE" wineboot --init </dev/null >/dev/null 2>&1
        "$WINESERVER" -w
    fi
    exec {lock}>&-
    [ -e "$WINEPREFIX/system.reg" ] || {
        echo "wine-run.sh: could not make the Wine prefix $WINEPREFIX" >&2
        return 1
    }
}

# One run; its exit status, 200 when it hung after its results, or 201
# when Wine failed to start it.
run_once() {
    local flag
    flag=$(mktemp) || return 1
    rm -f "$flag"
    # setsid: the time limit and the grace kill end Wine's whole group.
    coproc WINE_PROC { exec setsid timeout -k 10 "$timeout_s" "$WINE" "$@" 2>&1; }
    local pid=$WINE_PROC_PID killer="" line out start_failed="" program_spoke=""
    # A copy of the pipe: bash closes the coproc's own when it ends.
    exec {out}<&"${WINE_PROC[0]}"
    while IFS= read -r line <&"$out"; do
        printf '%s\n' "$line"
        [[ $line =~ $start_fail_re ]] && start_failed=1
        [[ $line == "wine: "* ]] || program_spoke=1
        if [ -z "$killer" ] && [[ $line =~ $done_re ]]; then
            # The results are complete: the process has grace_s to exit.
            # The watcher holds none of this script's output open (ctest
            # reads it to its end) and takes its sleep with it when killed.
            (
                exec >/dev/null 2>&1
                sleep "$grace_s" &
                nap=$!
                trap 'kill "$nap"; exit 0' TERM
                wait "$nap" && touch "$flag" && kill -KILL -- "-$pid"
            ) &
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
    [ "$rc" -ne 0 ] && [ -n "$start_failed" ] && [ -z "$program_spoke" ] && return 201
    [ "$rc" -eq 124 ] && echo "wine-run.sh: $1 timed out after $timeout_s s" >&2
    return "$rc"
}

prepare_prefix || exit 1
for ((attempt = 0; ; attempt++)); do
    run_once "$@"
    rc=$?
    case $rc in
    200) why="hung at exit after printing its results (Wine)" ;;
    201) why="did not start: Wine could not reach its server" ;;
    *) exit "$rc" ;;
    esac
    if [ "$attempt" -ge "$retries" ]; then
        echo "wine-run.sh: $1 $why $((attempt + 1)) times; giving up" >&2
        exit 124
    fi
    echo "wine-run.sh: $1 $why; retry $((attempt + 1)) of $retries" >&2
done
