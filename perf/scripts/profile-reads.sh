#!/usr/bin/env bash
# Server CPU per small read, concord-topo against may_minihttp replaying its exact answer,
# alternated in rounds at one fixed open-loop rate: each server pinned to SERVER_CPU with
# one executor / one worker, the load generator pinned to LOAD_CPU. CPU per request is
# utime + stime of the server process (/proc/<pid>/stat) over the load, divided by the
# requests completed; unlike peak throughput it barely moves with other load on the
# machine. With FLAME=DIR, also `perf record` each server for 5 s of the last round and
# write its flat profile (self time per symbol) to DIR.
# Usage (from the repository root, after `cargo build --release -p concord-topo -p concord-perf`):
#   perf/scripts/profile-reads.sh [CONCORD_TOPO_BINARY]   (RATE, DUR, ROUNDS, ROUTE override)
set -u
BIN=${1:-target/release/concord-topo}
PERF=${PERF:-target/release/perf}
RATE=${RATE:-20000}; DUR=${DUR:-8}; ROUNDS=${ROUNDS:-3}; ROUTE=${ROUTE:-version}
SERVER_CPU=${SERVER_CPU:-0}; LOAD_CPU=${LOAD_CPU:-1}
HZ=$(getconf CLK_TCK)
work=$(mktemp -d)
trap '{ kill -9 $(jobs -p); wait; } 2>/dev/null; rm -rf "$work"' EXIT

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

# One measurement: load the server at $2 with the harness, print CPU per request.
measure() {
  local name=$1 port=$2 pid=$3 flame=$4
  local t0 t1 out done_ recorder=""
  t0=$(cpu_ticks "$pid")
  if [ -n "$flame" ]; then
    (sleep 2; perf record -q -F 999 -g -p "$pid" -o "$work/$name.data" -- sleep 5 >/dev/null 2>&1) &
    recorder=$!
  fi
  out=$(taskset -c "$LOAD_CPU" "$PERF" --out "$work/out" read --target "127.0.0.1:$port" \
    --route "$ROUTE" --rate "$RATE" --duration "$DUR" 2>/dev/null)
  t1=$(cpu_ticks "$pid")
  [ -n "$recorder" ] && wait "$recorder"
  done_=$(echo "$out" | grep 'sent / completed' | awk '{print $(NF-2)}')
  local p99; p99=$(echo "$out" | grep -oE 'p99 [0-9.]+ ms' | head -1)
  echo "$name cpu_us_per_req=$(echo "scale=2; ($t1-$t0)*1000000/$HZ/${done_:-1}" | bc) completed=${done_:-0} p99=$p99"
  if [ -n "$flame" ]; then
    perf report -q -i "$work/$name.data" --no-children --sort symbol --stdio 2>/dev/null \
      | grep -E '^ +[0-9]' | head -60 > "$flame/$name-profile.txt"
  fi
}

PORT=17600
dir="$work/data"; mkdir -p "$dir"
taskset -c "$SERVER_CPU" "$BIN" --dev --executors 1 --client-addr 127.0.0.1:$PORT \
  --peer-addr 127.0.0.1:$((PORT+1)) --data-dir "$dir" >/dev/null 2>&1 &
ours=$!
for _ in $(seq 1 100); do
  curl -sf "127.0.0.1:$PORT/api/topology/$ROUTE" >/dev/null && break; sleep 0.1
done
# The exact answer concord-topo gives, for the reference to replay.
exec 3<>/dev/tcp/127.0.0.1/$PORT
printf 'GET /api/topology/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$ROUTE" >&3
cat <&3 > "$work/answer"; exec 3<&-
taskset -c "$SERVER_CPU" "$PERF" serve-reference --addr 127.0.0.1:$((PORT+2)) \
  --answer "$work/answer" --workers 1 >/dev/null 2>&1 &
reference=$!
sleep 1
for round in $(seq 1 "$ROUNDS"); do
  flame=""; [ "$round" = "$ROUNDS" ] && flame=${FLAME:-}
  [ -n "$flame" ] && mkdir -p "$flame"
  measure concord-topo $PORT $ours "$flame"
  measure may_minihttp $((PORT+2)) $reference "$flame"
done
