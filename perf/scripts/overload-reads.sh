#!/usr/bin/env bash
# Small reads at one fixed open-loop rate against concord-topo (one executor) and against
# may_minihttp (one worker) replaying its exact answer, one after the other, unpinned:
# throughput, errors, and each process's CPU (server utime + stime from /proc; the load
# generator's from /usr/bin/time). Offered above a server's capacity, it shows what that
# server answers under overload, which a P99-bounded ladder (`perf reference --max`) can
# stop short of.
# Usage (from the repository root, after `cargo build --release -p concord-topo -p concord-perf`):
#   perf/scripts/overload-reads.sh [CONCORD_TOPO_BINARY] [RATE]   (DUR overrides the 6 s)
set -u
BIN=${1:-target/release/concord-topo}; RATE=${2:-227000}; DUR=${DUR:-6}
PERF=${PERF:-target/release/perf}
PORT=17900
HZ=$(getconf CLK_TCK)
work=$(mktemp -d)
trap '{ kill -9 $(jobs -p); wait; } 2>/dev/null; rm -rf "$work"' EXIT

"$BIN" --dev --executors 1 --client-addr 127.0.0.1:$PORT --peer-addr 127.0.0.1:$((PORT+1)) \
  --data-dir "$work/data" >/dev/null 2>&1 &
ours=$!
for _ in $(seq 1 100); do
  curl -sf 127.0.0.1:$PORT/api/topology/version >/dev/null && break; sleep 0.1
done
exec 3<>/dev/tcp/127.0.0.1/$PORT
printf 'GET /api/topology/version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
cat <&3 > "$work/answer"; exec 3<&-
"$PERF" serve-reference --addr 127.0.0.1:$((PORT+2)) --answer "$work/answer" --workers 1 \
  >/dev/null 2>&1 &
reference=$!
sleep 1
for name in concord-topo may_minihttp; do
  pid=$ours; port=$PORT
  [ $name = may_minihttp ] && { pid=$reference; port=$((PORT+2)); }
  t0=$(awk '{print $14+$15}' /proc/$pid/stat)
  out=$( { /usr/bin/time -f "loadgen_cpu %U %S" "$PERF" --out "$work/out" read \
    --target 127.0.0.1:$port --route version --rate "$RATE" --duration "$DUR"; } 2>&1 )
  t1=$(awk '{print $14+$15}' /proc/$pid/stat)
  throughput=$(echo "$out" | grep -oE 'throughput +[0-9]+' | awk '{print $2}')
  errors=$(echo "$out" | grep 'sent / completed' | awk '{print $NF}')
  loadgen=$(echo "$out" | grep loadgen_cpu | awk '{print $2+$3}')
  echo "$name rate=$RATE throughput=$throughput errors=$errors" \
    "server_cpu_s=$(echo "scale=2; ($t1-$t0)/$HZ" | bc) loadgen_cpu_s=$loadgen"
done
