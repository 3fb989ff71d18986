#!/usr/bin/env bash
# Same-run comparison of SSE fan-out between two concord-topo binaries (e.g. before and
# after a change), alternated OLD/NEW, each on 1 executor pinned apart from the
# subscribers, under the same `perf subscribe` load. Both get only the configuration keys
# every release knows (--legacy-config), so OLD may predate newer keys. Reports per run
# the write-sent -> event-delivered P50/P99, the server's CPU per delivery and its RSS
# with the subscribers connected.
# Usage (from the repository root, after `cargo build --release -p concord-perf`):
#   perf/scripts/compare-subscribe.sh OLD_BINARY NEW_BINARY
#   (SUBS, WRITES, RATE, ROUNDS, SERVER_CPUS, SUBSCRIBER_CPUS override the load)
set -u
OLD=${1:?usage: compare-subscribe.sh OLD_BINARY NEW_BINARY}; NEW=${2:?usage: compare-subscribe.sh OLD_BINARY NEW_BINARY}
PERF=${PERF:-target/release/perf}
SUBS=${SUBS:-1000}; WRITES=${WRITES:-200}; RATE=${RATE:-20}; ROUNDS=${ROUNDS:-3}
SERVER_CPUS=${SERVER_CPUS:-0}; SUBSCRIBER_CPUS=${SUBSCRIBER_CPUS:-1}
run() {
  local name=$1 bin=$2
  local out; out=$(mktemp -d)
  if ! $PERF --out "$out" --server-bin "$bin" subscribe --legacy-config --no-etcd \
      --subscribers "$SUBS" --writes "$WRITES" --write-rate "$RATE" --server-executors 1 \
      --server-cpus "$SERVER_CPUS" --subscriber-cpus "$SUBSCRIBER_CPUS" >"$out/log" 2>&1; then
    echo "$name FAILED: $(tail -3 "$out/log" | tr '\n' ' ')"; rm -rf "$out"; return
  fi
  jq -r --arg name "$name" '"\($name) p50_ms=\(.sent_to_delivered.p50_us/1000) p99_ms=\(.sent_to_delivered.p99_us/1000) acked_p99_ms=\(.acked_to_delivered.p99_us/1000) cpu_us_per_delivery=\(.cost.server_cpu_us_per_delivery) rss_connected_mib=\(.server_rss_bytes.subscribers_connected/1048576*10|floor/10) deliveries=\(.sent_to_delivered.count) lost=\(.lost) dup=\(.duplicated)"' "$out/subscribe.json"
  rm -rf "$out"
}
for round in $(seq 1 "$ROUNDS"); do
  run OLD "$OLD"
  run NEW "$NEW"
done
