#!/usr/bin/env bash
# How late executor 0's control work runs while a storm of connections arrives and
# leaves: one server (2 executors, the default), then N plain sockets that each send a
# subscribe as fast as one Python thread can open them, held open for 3 s, then all hung
# up at once (the client killed). After each, the server's own count of its
# heartbeat-interval ticks that came over one interval (50 ms) late, and the latest one
# (`concord_control_tick_late*` in /metrics). Raft's heartbeats and votes wait on
# executor 0 the same way.
# Usage (from the repository root, after `cargo build --release -p concord-topo`):
#   perf/scripts/control-under-storm.sh [CONCORD_TOPO_BINARY] [N=10000] [ROUNDS=3]
set -u
BIN=${1:-target/release/concord-topo}; N=${2:-10000}; ROUNDS=${3:-3}
PORT=17950
work=$(mktemp -d)
trap '{ kill -9 $(jobs -p); wait; } 2>/dev/null; rm -rf "$work"' EXIT
ulimit -n "$(ulimit -Hn)"
cat > "$work/concord.yaml" <<YAML
http:
  max_connections: $((N + 1000))
topology:
  notifications:
    max_subscribers: $((N + 1000))
    max_subscribers_per_address: $((N + 1000))
  health_check:
    enabled: false
YAML
cat > "$work/storm.py" <<'PY'
import socket, sys, time
port, n, marker = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
request = f"GET /api/topology/subscribe HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
began, held = time.monotonic(), []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(request)
    held.append(s)
with open(marker, "w") as f:
    f.write(f"{time.monotonic() - began:.2f}")
time.sleep(600)
PY

# The server's own figures after `$1`: streams open, late ticks, the latest tick.
report() {
  local metrics late max subs
  metrics=$(curl -sf 127.0.0.1:$PORT/metrics)
  late=$(echo "$metrics" | awk '/^concord_control_ticks_late_total /{print $2}')
  max=$(echo "$metrics" | awk '/^concord_control_tick_late_max_milliseconds /{print $2}')
  subs=$(echo "$metrics" | awk '/^concord_sse_subscribers /{print $2}')
  echo "    $1: $subs streams open, $late ticks over 50 ms late, latest $max ms"
}

for round in $(seq 1 "$ROUNDS"); do
  rm -rf "$work/data" "$work/opened"
  "$BIN" --dev --config "$work/concord.yaml" --client-addr 127.0.0.1:$PORT \
    --peer-addr 127.0.0.1:$((PORT+1)) --data-dir "$work/data" >/dev/null 2>"$work/log" &
  server=$!
  for _ in $(seq 1 100); do
    curl -sf 127.0.0.1:$PORT/api/topology/version | grep -q '"version":[1-9]' && break
    sleep 0.1
  done
  python3 "$work/storm.py" "$PORT" "$N" "$work/opened" &
  storm=$!
  for _ in $(seq 1 600); do [ -s "$work/opened" ] && break; sleep 0.1; done
  echo "  round $round: $N subscribes sent in $(cat "$work/opened") s"
  sleep 3
  report "held 3 s"
  kill -9 "$storm"; wait "$storm" 2>/dev/null
  sleep 2
  report "all hung up"
  kill -9 "$server"; wait "$server" 2>/dev/null
done
