#!/usr/bin/env bash
# A tour of the example broker on one machine: a broker with two data-plane
# threads, two fake daemons (zccache and fbuild), and the whole cycle:
# track (pending), bound, a squatter refused, unbind when a daemon dies,
# untrack when it stays away past the grace period.
#
#   examples/run-demo.sh            (or: make example)
#
# Builds the dev preset first if needed. The pauses only give the broker's
# once-a-second status line time to show each state; DEMO_PAUSE=0 skips
# them. Synchronization never relies on them: `broker_ctl ... wait` blocks
# until the broker has seen each transition.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/build/dev/examples
pause_s=${DEMO_PAUSE:-1.5}

if [[ ! -d $root/build/dev ]]; then
  (cd "$root" && cmake --preset dev)
fi
(cd "$root" && cmake --build --preset dev -j"$(nproc)" --target example_broker \
  example_broker_ctl example_fake_daemon example_broker_probe) >/dev/null

tmp=$(mktemp -d "${TMPDIR:-/tmp}/portreg-demo.XXXXXX")
sock=$tmp/broker.sock
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
pause() { sleep "$pause_s"; }
ctl() {
  echo "\$ broker_ctl ${*}"
  timeout 30 "$bin/broker_ctl" "$sock.ctl" "$@" | sed -u 's/^/    /'
}

# start_daemon ID [OPTION]...: its output goes to the terminal, prefixed;
# its stdin is a FIFO we hold open on fd ${in_fd[ID]}.
declare -A pid_of in_fd
start_daemon() {
  local id=$1 fd
  shift
  mkfifo "$tmp/$id.in"
  "$bin/fake_daemon" --socket "$sock" --id "$id" "$@" <"$tmp/$id.in" \
    > >(sed -u "s/^/    [$id] /") 2>&1 &
  pid_of[$id]=$!
  pids+=($!)
  exec {fd}>"$tmp/$id.in"
  in_fd[$id]=$fd
}

say "Starting the broker: daemons connect to $sock, 2 threads resolve zccache and fbuild"
mkfifo "$tmp/ready"
"$bin/broker" --socket "$sock" --readers 2 --route zccache --route fbuild --grace-ms 4000 \
  --ready-fd 3 3>"$tmp/ready" &
broker_pid=$!
pids+=("$broker_pid")
read -r -t 20 _ <"$tmp/ready" || { echo "the broker did not start" >&2; exit 1; }
pause

say "zccache connects and says hello: tracked, pending (it reports its port when we say so)"
start_daemon zccache --step
ctl wait zccache pending 10000
ctl lookup zccache
pause

say "zccache reports the port of its HTTP server: bound"
echo >&"${in_fd[zccache]}"
ctl wait zccache bound 10000
port=$(timeout 10 "$bin/broker_ctl" "$sock.ctl" lookup zccache)
echo "\$ GET http://127.0.0.1:$port/"
# shellcheck disable=SC2016 # $1 belongs to the inner shell
timeout 10 bash -c 'exec 5<>"/dev/tcp/127.0.0.1/$1" && printf "GET / HTTP/1.0\r\n\r\n" >&5 &&
                    cat <&5' _ "$port" | tail -n 1 | sed 's/^/    /'
pause

say "fbuild connects and reports its port straight away"
start_daemon fbuild
ctl wait fbuild bound 10000
ctl status
pause

say "The data plane serves 5 million simulated requests (it sleeps when there are none)"
ctl load 5000000
pause

say "A squatter says hello as zccache, then as squat reporting port 22: both refused"
echo "\$ broker_probe report $sock zccache 22"
"$bin/broker_probe" report "$sock" zccache 22 2000 | sed 's/^/    /' || true
echo "\$ broker_probe report $sock squat 22"
"$bin/broker_probe" report "$sock" squat 22 2000 | sed 's/^/    /' || true
ctl get zccache
pause

say "fbuild is killed (SIGKILL: no goodbye): the broker unbinds it; it stays known, pending"
# In a group with stderr muted, so bash's "Killed" job notice stays quiet.
{ kill -KILL "${pid_of[fbuild]}" && wait "${pid_of[fbuild]}"; } 2>/dev/null || true
ctl wait fbuild pending 10000
ctl lookup fbuild
ctl status
pause

say "fbuild stays away past the 4 s grace period: untracked (only if its version is still the one it left)"
ctl wait fbuild untracked 15000
ctl status
pause

say "zccache exits cleanly (its stdin closes), then the broker stops"
fd=${in_fd[zccache]}
exec {fd}>&-
ctl wait zccache pending 10000
ctl stats
kill -INT "$broker_pid"
wait "$broker_pid"
say "Done"
