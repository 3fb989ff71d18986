#!/usr/bin/env bash
# Same-run comparison of small reads between two concord-topo binaries (e.g. before and
# after a change), alternated, each on 1 executor, loaded by the same open-loop harness at
# a fixed rate; reports the server's own CPU time per request and the latency summary.
# Usage (from the repository root, after `cargo build --release -p concord-perf`):
#   perf/scripts/compare-reads.sh OLD_BINARY NEW_BINARY   (RATE, DUR override the load)
set -u
OLD=${1:?usage: compare-reads.sh OLD_BINARY NEW_BINARY}; NEW=${2:?usage: compare-reads.sh OLD_BINARY NEW_BINARY}
PERF=${PERF:-target/release/perf}
RATE=${RATE:-10000}; DUR=${DUR:-8}
run() {
  local name=$1 bin=$2 port=$3
  local dir; dir=$(mktemp -d)
  $bin --dev --executors 1 --client-addr 127.0.0.1:$port --peer-addr 127.0.0.1:$((port+1)) --data-dir $dir >/dev/null 2>&1 &
  local pid=$!
  for i in $(seq 1 100); do
    v=$(curl -s 127.0.0.1:$port/api/topology/version | grep -o '"version":[0-9]*' | cut -d: -f2)
    [ "${v:-0}" -gt 0 ] && break; sleep 0.1
  done
  local t0; t0=$(awk '{print $14+$15}' /proc/$pid/stat)
  local out; out=$($PERF --out "$(mktemp -d)" read --target 127.0.0.1:$port --route version --rate $RATE --duration $DUR 2>/dev/null | grep -iE "p50|p99|completed|errors" | tr '\n' ' ')
  local t1; t1=$(awk '{print $14+$15}' /proc/$pid/stat)
  kill -9 $pid; wait $pid 2>/dev/null; rm -rf $dir
  local hz; hz=$(getconf CLK_TCK)
  echo "$name cpu_us_per_req=$(echo "scale=2; ($t1-$t0)*1000000/$hz/($RATE*$DUR)" | bc) $out"
}
for round in 1 2 3; do
  run OLD $OLD 17400
  run NEW $NEW 17410
done
