#!/usr/bin/env bash
# Where a version's delivery to K loopback subscribers spends the machine's CPU.
# `perf subscribe` pinned (server: 1 executor on SERVER_CPU, subscribers on SUB_CPU), in
# two modes alternated:
#   lo   loopback as it is: the sender's CPU also runs the receiver's half of TCP
#        (softirq receive, queueing, waking the reader);
#   rps  Receive Packet Steering on `lo` set to SUB_CPU, which moves that half to the
#        subscribers' CPU, as a network would move it to the subscribers' host.
# Per run: acked -> delivered and first arrival -> delivered P99, server and subscriber
# CPU per delivery (from /proc), their sum, and the fan-out pass itself, timed from the
# server's own `sendmsg` calls (syscall tracepoints, 5 s): pass duration and time inside
# `sendmsg` per send. With PROFILE=1, one more run per mode samples the server's CPU
# (`perf record -g`) and sorts its busy samples into send half / receive half / other.
# Needs root (sysfs and tracepoints); `lo`'s RPS mask is put back to 0 on exit.
# Usage (from the repository root, after `cargo build --release -p concord-perf -p concord-topo`):
#   perf/scripts/fanout-budget.sh [OUT=perf/results/fanout/budget]
#   (SUBS, WRITES, RATE, ROUNDS, SERVER_CPU, SUB_CPU, PROFILE override the defaults)
set -u
OUT=${1:-perf/results/fanout/budget}
PERF_BIN=${PERF_BIN:-target/release/perf}; SERVER_BIN=${SERVER_BIN:-target/release/concord-topo}
SUBS=${SUBS:-1000}; WRITES=${WRITES:-300}; RATE=${RATE:-20}; ROUNDS=${ROUNDS:-2}
SERVER_CPU=${SERVER_CPU:-0}; SUB_CPU=${SUB_CPU:-1}; PROFILE=${PROFILE:-0}
RPS=/sys/class/net/lo/queues/rx-0/rps_cpus
[ "$(id -u)" = 0 ] || { echo "fanout-budget: needs root (writes $RPS, reads syscall tracepoints)" >&2; exit 2; }
[ -w "$RPS" ] || { echo "fanout-budget: $RPS is not writable here" >&2; exit 2; }
command -v perf >/dev/null || { echo "fanout-budget: needs linux perf on PATH" >&2; exit 2; }
work=$(mktemp -d)
trap 'echo 0 > "$RPS"; rm -rf "$work"' EXIT
mkdir -p "$OUT"
sub_mask=$(printf '%x' $((1 << SUB_CPU)))

# Splits the traced sendmsg calls into passes (a gap over 5 ms ends one) and reports the
# passes that reached at least 90 % of the subscribers.
cat > "$work/passes.py" <<'PY'
import sys
subs = int(sys.argv[1])
events = []
for line in sys.stdin:
    fields = line.split()
    events.append((float(fields[0].rstrip(":")), "enter" in fields[1]))
passes, current, last = [], [], None
for at, enter in events:
    if last is not None and at - last > 0.005:
        passes.append(current)
        current = []
    current.append((at, enter))
    last = at
passes.append(current)
lengths, inside = [], []
for calls in passes:
    sends = sum(1 for _, enter in calls if enter)
    if sends < 0.9 * subs:
        continue
    lengths.append((calls[-1][0] - calls[0][0]) * 1e3)
    spent, entered = 0.0, None
    for at, enter in calls:
        if enter:
            entered = at
        elif entered is not None:
            spent += at - entered
            entered = None
    inside.append(spent * 1e6 / sends)
def q(values, f):
    values = sorted(values)
    return values[min(len(values) - 1, int(f * len(values)))]
if not lengths:
    print("passes=0")
else:
    print(f"passes={len(lengths)} pass_ms_p50={q(lengths, .5):.2f} pass_ms_p90={q(lengths, .9):.2f} "
          f"sendmsg_us_per_send_p50={q(inside, .5):.2f}")
PY

# Sorts `perf script` call stacks of the server's CPU into where a delivery's time goes.
cat > "$work/categories.py" <<'PY'
import collections, sys
stacks, frames = [], []
for line in sys.stdin:
    if not line.strip():
        if frames:
            stacks.append(frames)
        frames = []
    elif line.startswith((" ", "\t")):
        frames.append(line.strip())
if frames:
    stacks.append(frames)
counts = collections.Counter()
for frames in stacks:
    stack = " ".join(frames)
    if frames[0].split(None, 1)[-1].startswith(("pv_native_safe_halt", "default_idle", "native_safe_halt")):
        counts["idle"] += 1
    elif "net_rx_action" in stack and ("write_msr" in stack or "send_IPI" in stack):
        counts["steering a packet to another CPU (RPS: the IPI)"] += 1
    elif "sock_def_readable" in stack:
        counts["receive half: waking the reader"] += 1
    elif "tcp_v4_rcv" in stack or "net_rx_action" in stack:
        counts["receive half: the rest"] += 1
    elif "sendmsg" in stack:
        counts["send half"] += 1
    else:
        counts["everything else (executor, Raft, HTTP, timers, interrupts)"] += 1
busy = sum(v for k, v in counts.items() if k != "idle")
print(f"busy samples {busy} of {sum(counts.values())}")
for key, value in counts.most_common():
    if key != "idle":
        print(f"  {100 * value / max(busy, 1):5.1f} %  {key}")
PY

server_pid() { ps -eo pid,comm | awk '$2=="concord-topo"{print $1}' | head -1; }

# run NAME MODE pid|cpu RECORD_OPTIONS...: one `perf subscribe`, with a 5 s
# `perf record` 7 s in, on the server process (pid) or on the server's CPU (cpu).
run() {
  local name=$1 mode=$2 on=$3; shift 3
  if [ "$mode" = rps ]; then echo "$sub_mask" > "$RPS"; else echo 0 > "$RPS"; fi
  "$PERF_BIN" --out "$OUT/$name" --server-bin "$SERVER_BIN" subscribe --no-etcd \
    --subscribers "$SUBS" --writes "$WRITES" --write-rate "$RATE" --server-executors 1 \
    --server-cpus "$SERVER_CPU" --subscriber-cpus "$SUB_CPU" >"$OUT/$name.txt" 2>&1 &
  local harness=$!
  sleep 7
  local target=(-C "$SERVER_CPU")
  [ "$on" = pid ] && target=(-p "$(server_pid)")
  perf record "${target[@]}" "$@" -- sleep 5 >/dev/null 2>&1
  wait "$harness" || { echo "$name FAILED: $(tail -3 "$OUT/$name.txt" | tr '\n' ' ')"; return 1; }
  echo 0 > "$RPS"
}

summary() {
  jq -r --arg name "$1" '"\($name) acked_p99_ms=\(.acked_to_delivered.p99_us/1000) first_arrival_p99_ms=\(.first_arrival_to_delivered.p99_us/1000) server_us=\(.cost.server_cpu_us_per_delivery*10|round/10) subscribers_us=\(.cost.subscriber_cpu_us_per_delivery*10|round/10) sum_us=\((.cost.server_cpu_us_per_delivery+.cost.subscriber_cpu_us_per_delivery)*10|round/10) lost=\(.lost) dup=\(.duplicated)"' "$OUT/$1/subscribe.json"
}

for round in $(seq 1 "$ROUNDS"); do
  for mode in lo rps; do
    name="$mode-$round"
    run "$name" "$mode" pid -e syscalls:sys_enter_sendmsg -e syscalls:sys_exit_sendmsg \
      -o "$OUT/$name.perf.data" || continue
    echo "$(summary "$name") $(perf script -i "$OUT/$name.perf.data" -F time,event 2>/dev/null | python3 "$work/passes.py" "$SUBS")" \
      | tee -a "$OUT/summary.txt"
    rm -f "$OUT/$name.perf.data"
  done
done
if [ "$PROFILE" = 1 ]; then
  for mode in lo rps; do
    name="$mode-profile"
    run "$name" "$mode" cpu -g -o "$OUT/$name.perf.data" || continue
    { summary "$name"; perf script -i "$OUT/$name.perf.data" -F ip,sym 2>/dev/null | python3 "$work/categories.py"; } \
      | tee -a "$OUT/summary.txt"
    rm -f "$OUT/$name.perf.data"
  done
fi
