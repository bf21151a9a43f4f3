#!/usr/bin/env bash
# CI test for the example broker: the whole cycle against real processes,
# checking every state the broker reports.
#
#   usage: test-demo.sh BROKER FAKE_DAEMON BROKER_CTL
#
# Nothing here sleeps to synchronize. The broker says when it is listening
# (--ready-fd), answers `wait` queries by blocking in portreg_wait() until a
# backend reaches a state, and daemons print each step before they take it.
# Every wait has a timeout, so a bug fails the test instead of hanging it.
# Programs run under `timeout --foreground`, and a kill aimed at one of
# them reaches it through timeout: without --foreground, timeout passes a
# signal on to its whole process group and then sends SIGCONT there too.
# A SIGCONT that lands while LeakSanitizer's exit check is stopping the
# exiting program (its tracer shares the group) cancels the stop, and the
# check waits forever: the ASan run of this test hung that way.
set -euo pipefail

[[ $# -eq 3 ]] || { echo "usage: $0 BROKER FAKE_DAEMON BROKER_CTL" >&2; exit 2; }
broker=$1 daemon=$2 ctl=$3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/portreg-demo.XXXXXX")
sock=$tmp/broker.sock
pids=()
declare -A pid_of in_fd

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  for log in "$tmp"/*.log; do
    echo "--- ${log##*/}" >&2
    cat "$log" >&2
  done
  exit 1
}

# query CMD...: puts the broker's answer in $answer; an error answer fails.
query() {
  answer=$(timeout 30 "$ctl" "$sock.ctl" "$@" 2>&1) || fail "query '$*': $answer"
}

# expect WANT CMD...: the broker answers CMD with exactly WANT.
expect() {
  local want=$1
  shift
  query "$@"
  [[ "$answer" == "$want" ]] || fail "'$*': expected '$want', got '$answer'"
  echo "ok: $* -> ${answer//$'\n'/ | }"
}

# start_daemon NAME ID [OPTION]...: the daemon's stdin is a FIFO that we hold
# open; a line on it lets a --step daemon report its port, closing it makes
# the daemon exit.
start_daemon() {
  local name=$1 id=$2 fd
  shift 2
  mkfifo "$tmp/$name.in"
  timeout --foreground 60 "$daemon" --socket "$sock" --id "$id" "$@" <"$tmp/$name.in" >"$tmp/$name.log" 2>&1 &
  pid_of[$name]=$!
  pids+=($!)
  exec {fd}>"$tmp/$name.in"
  in_fd[$name]=$fd
}

close_stdin() {
  local fd=${in_fd[$1]}
  exec {fd}>&-
}

# reap NAME: waits for the daemon (never long: it runs under timeout) and
# puts its exit status in $rc. Not in a $(...): a subshell cannot wait for
# our children.
reap() {
  rc=0
  wait "${pid_of[$1]}" || rc=$?
}

# wait_log PATTERN: waits (10 s at most) for a broker log line matching
# PATTERN. The broker writes its log from a thread of its own, a moment
# after the event.
wait_log() {
  local i
  for ((i = 0; i < 200; i++)); do
    grep -q -- "$1" "$tmp/broker.log" && return 0
    sleep 0.05
  done
  return 1
}

# port_of NAME: the port the daemon listens on, from its first line.
port_of() {
  local port
  port=$(sed -n 's/^listening id=.* port=\([0-9]*\)$/\1/p' "$tmp/$1.log")
  [[ -n "$port" ]] || fail "$1 did not say which port it listens on"
  echo "$port"
}

# http_body PORT: the last line of what the server on PORT answers to a GET.
http_body() {
  # shellcheck disable=SC2016 # $1 belongs to the inner shell
  timeout 10 bash -c 'exec 5<>"/dev/tcp/127.0.0.1/$1" && printf "GET / HTTP/1.0\r\n\r\n" >&5 &&
                      cat <&5' _ "$1" | tail -n 1
}

echo "== broker"
mkfifo "$tmp/ready"
timeout --foreground 90 "$broker" --socket "$sock" --readers 2 --route zccache --route fbuild --ready-fd 3 \
  3>"$tmp/ready" >"$tmp/broker.log" 2>&1 &
broker_pid=$!
pids+=("$broker_pid")
read -r -t 20 line <"$tmp/ready" || fail "the broker did not become ready"
[[ "$line" == ready ]] || fail "the broker said '$line' instead of ready"
expect "" status

echo "== zccache connects, then reports its port when told to"
start_daemon zccache zccache --step
expect "zccache pending 0 1" wait zccache pending 10000
expect "miss" lookup zccache
zport=$(port_of zccache)
echo >&"${in_fd[zccache]}"
expect "zccache bound $zport 2" wait zccache bound 10000
expect "$zport" lookup zccache
body=$(http_body "$zport") || fail "GET 127.0.0.1:$zport failed"
[[ "$body" == "zccache is up on port $zport" ]] || fail "GET 127.0.0.1:$zport: got '$body'"
echo "ok: the port the broker hands out serves zccache"

echo "== fbuild connects and reports at once"
start_daemon fbuild fbuild
query wait fbuild bound 10000
fport=$(port_of fbuild)
[[ "$answer" == "fbuild bound $fport 2" ]] || fail "fbuild: got '$answer'"
echo "ok: fbuild bound $fport 2"
expect "fbuild bound $fport 2"$'\n'"zccache bound $zport 2" status

echo "== the broker drops daemons it cannot trust"
start_daemon dup zccache
reap dup
[[ $rc == 1 ]] || fail "a second zccache was not dropped"
wait_log "zccache is already connected" || fail "no log line for the duplicate"
echo "ok: a second daemon calling itself zccache was dropped"
start_daemon stranger stranger --frame-version 2
reap stranger
[[ $rc == 1 ]] || fail "a daemon with frame version 2 was not dropped"
wait_log "PORTREG_EVERSION" || fail "no log line for the bad frame"
echo "ok: a daemon speaking frame version 2 was dropped"
close_stdin dup
close_stdin stranger
expect "zccache bound $zport 2" get zccache
expect "stranger untracked 0 0" get stranger

echo "== fbuild is killed: its port is unbound, the backend stays known"
kill -TERM "${pid_of[fbuild]}"
reap fbuild
[[ $rc != 0 ]] || fail "fbuild survived SIGTERM"
expect "fbuild pending 0 3" wait fbuild pending 10000
expect "miss" lookup fbuild
expect "fbuild pending 0 3"$'\n'"zccache bound $zport 2" status

echo "== zccache exits cleanly"
close_stdin zccache
reap zccache
[[ $rc == 0 ]] || fail "zccache did not exit cleanly"
expect "zccache pending 0 3" wait zccache pending 10000
expect "fbuild pending 0 3"$'\n'"zccache pending 0 3" status
query stats
[[ "$answer" =~ ^lookups\ 0\ hits\ 0\ changes\ 6\ tracked\ 2\ backends\ 2\ conns\ 0\ log_lost\ 0\ port_checks\ [0-9]+$ ]] ||
  fail "stats: got '$answer'"
echo "ok: stats -> $answer"

echo "== the data plane serves requests only when there are some"
expect "queued 100000 requests" load 100000
# The threads take the requests in batches: wait (bounded) until they are done.
for ((i = 0; i < 200; i++)); do
  query stats
  [[ "$answer" == "lookups 100000 "* ]] && break
  sleep 0.05
done
[[ "$answer" =~ ^lookups\ 100000\ hits\ 0\  ]] || fail "after load 100000: '$answer'"
echo "ok: 100000 lookups, all misses (both backends are pending)"

echo "== broker stops"
kill -TERM "$broker_pid"
pid_of[broker]=$broker_pid
reap broker
[[ $rc == 0 ]] || fail "the broker exited with status $rc"
wait_log '^broker: final registry | fbuild pending v3 | zccache pending v3$' "$tmp/broker.log" ||
  fail "no final registry line"
wait_log '^broker: stopped: 100000 lookups, 0 hits, 6 changes$' "$tmp/broker.log" ||
  fail "no final counts line"
[[ ! -e $sock && ! -e $sock.ctl ]] || fail "the socket files were left behind"
echo "ok: broker exited 0 and removed its sockets"
echo "PASS"
