#!/usr/bin/env bash
# Same-run comparison of SSE fan-out between two concord-topo binaries (before and after
# a change): `perf subscribe` with the server on CPU 0 (1 executor) and the subscribers
# and writer on CPU 1, at 1,000 subscribers / 20 writes/s and 10,000 / 5 writes/s, then
# `perf memory` (1,000 nodes, 16,384 shards) at 1,000 and 10,000 subscribers. During each
# subscribe run, once every subscriber is connected, the server's syscalls are counted
# for WINDOW seconds (`perf stat -e 'syscalls:sys_enter_*'`) and the versions published
# in that window are read from the server, so syscalls per delivery = count / (versions
# x subscribers). With FLAME=1 the NEW server of the 1,000-subscriber run is also
# sampled (`perf record --call-graph dwarf`) and folded into an SVG by inferno
# (`cargo install inferno`; INFERNO=dir of its binaries).
# Usage (from the repository root, after `cargo build --release -p concord-topo -p concord-perf`):
#   perf/scripts/compare-fanout.sh OLD_BINARY NEW_BINARY
set -u
OLD=${1:?usage: compare-fanout.sh OLD_BINARY NEW_BINARY}; NEW=${2:?usage: compare-fanout.sh OLD_BINARY NEW_BINARY}
PERF=${PERF:-target/release/perf}
OUT=${OUT:-perf/results/fanout}
WINDOW=${WINDOW:-5}
INFERNO=${INFERNO:-}
mkdir -p "$OUT"

# The newest server process started from binary $1 (pid), once it exists.
server_pid() {
  local pid=""
  for _ in $(seq 1 600); do
    pid=$(pgrep -n -f "^$1 --node-id") && break
    sleep 0.1
  done
  echo "$pid"
}

version() { curl -s "$1/api/topology/version" | grep -o '"version":[0-9]*' | cut -d: -f2; }

# Counts the syscalls of the server of binary $1 for WINDOW s once $2 streams are open.
watch_server() {
  local bin=$1 k=$2 label=$3 flame=$4
  local pid; pid=$(server_pid "$bin")
  [ -z "$pid" ] && { echo "$label: no server"; return; }
  local addr; addr=$(tr '\0' ' ' < /proc/$pid/cmdline | grep -o -- '--client-addr [^ ]*' | cut -d' ' -f2)
  for _ in $(seq 1 1800); do
    n=$(curl -s "$addr/metrics" | awk '/^concord_sse_subscribers /{print $2}')
    [ "${n:-0}" -ge "$k" ] && break
    sleep 0.1
  done
  sleep 1
  local v0; v0=$(version "$addr")
  if [ "$flame" = 1 ]; then
    perf record -F 299 --call-graph dwarf,16384 -p "$pid" -o "$OUT/$label.perf.data" -- sleep "$WINDOW" 2>/dev/null
  else
    perf stat -e 'syscalls:sys_enter_*' -p "$pid" -o "$OUT/$label-syscalls.raw" -- sleep "$WINDOW" 2>/dev/null
  fi
  local v1; v1=$(version "$addr")
  local versions=$(( v1 - v0 ))
  if [ "$flame" = 1 ]; then
    echo "$label: sampled $versions versions x $k streams" > "$OUT/$label-flame.txt"
    return
  fi
  grep -E '^ +[0-9,]+ +syscalls:' "$OUT/$label-syscalls.raw" | tr -d ',' | awk '$1>0 {print $1, $2}' | sort -rn > "$OUT/$label-syscalls.txt"
  rm -f "$OUT/$label-syscalls.raw"
  local total; total=$(awk '{s+=$1} END {print s+0}' "$OUT/$label-syscalls.txt")
  echo "$label: $total syscalls in ${WINDOW}s, $versions versions x $k streams = $(( versions * k )) deliveries, $(echo "scale=3; $total / ($versions * $k)" | bc 2>/dev/null) per delivery" | tee -a "$OUT/summary.txt"
}

subscribe() {
  local label=$1 bin=$2 k=$3 writes=$4 rate=$5 flame=${6:-0}
  watch_server "$bin" "$k" "$label" "$flame" &
  local watcher=$!
  $PERF --server-bin "$bin" --out "$OUT/$label" subscribe --subscribers "$k" --writes "$writes" \
    --write-rate "$rate" --server-executors 1 --server-cpus 0 --subscriber-cpus 1 --no-etcd \
    > "$OUT/$label.txt" 2>&1
  wait $watcher
  echo "== $label" | tee -a "$OUT/summary.txt"
  grep -iE "acked|sent|CPU|lost|RSS" "$OUT/$label.txt" | tee -a "$OUT/summary.txt"
}

memory() {
  local label=$1 bin=$2 k=$3
  $PERF --server-bin "$bin" --out "$OUT/$label" memory --subscribers "$k" --writes 10 --write-rate 5 \
    > "$OUT/$label.txt" 2>&1
  echo "== $label" | tee -a "$OUT/summary.txt"
  grep -iE "RSS|acked|lost" "$OUT/$label.txt" | tee -a "$OUT/summary.txt"
}

: > "$OUT/summary.txt"
subscribe before-1000 "$OLD" 1000 300 20
subscribe after-1000 "$NEW" 1000 300 20
subscribe before-10000 "$OLD" 10000 100 5
subscribe after-10000 "$NEW" 10000 100 5
memory before-memory-1000 "$OLD" 1000
memory after-memory-1000 "$NEW" 1000
memory before-memory-10000 "$OLD" 10000
memory after-memory-10000 "$NEW" 10000
if [ "${FLAME:-0}" = 1 ]; then
  subscribe flame-after-1000 "$NEW" 1000 300 20 1
  perf script -i "$OUT/flame-after-1000.perf.data" 2>/dev/null \
    | "${INFERNO:+$INFERNO/}inferno-collapse-perf" \
    | "${INFERNO:+$INFERNO/}inferno-flamegraph" --title "concord-topo, 1,000 SSE subscribers, 20 writes/s (fan-out writer)" \
    > "$OUT/flame-after-1000.svg"
  rm -f "$OUT/flame-after-1000.perf.data"
fi
