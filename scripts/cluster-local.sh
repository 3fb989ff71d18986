#!/usr/bin/env bash
# Start, inspect or stop a 3-server concord-topo cluster on this host.
#
#   scripts/cluster-local.sh start [DIR]   # data, logs and pids under DIR (default: a new temp dir)
#   scripts/cluster-local.sh status [DIR]  # each server's view of the cluster
#   scripts/cluster-local.sh stop [DIR]    # SIGTERM every server started in DIR
#
# Server i (1..3) serves clients on 127.0.0.1:$((BASE_PORT + 10*i)) and peers on
# 127.0.0.1:$((BASE_PORT + 10*i + 1)). Environment: BIN (the concord-topo binary;
# default target/release/concord-topo, built if missing), BASE_PORT (default 7000),
# EXECUTORS (per server, default 1), CONFIG (a YAML file passed to every server),
# CONCORD_PEER_SECRET (the secret the servers share; default: one generated into
# DIR/peer.secret).
set -euo pipefail

cmd=${1:-}
dir=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$root/target/release/concord-topo}
base=${BASE_PORT:-7000}
executors=${EXECUTORS:-1}
state_file=${TMPDIR:-/tmp}/concord-cluster-local.last

client_port() { echo $((base + 10 * $1)); }
peer_port() { echo $((base + 10 * $1 + 1)); }

usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

resolve_dir() {
    if [ -z "$dir" ] && [ -f "$state_file" ]; then
        dir=$(cat "$state_file")
    fi
    [ -n "$dir" ] || { echo "no cluster directory given and none started before" >&2; exit 1; }
    # The ports the cluster was started with.
    if [ -f "$dir/base_port" ]; then base=$(cat "$dir/base_port"); fi
}

start() {
    if [ ! -x "$bin" ]; then
        echo "building $bin ..."
        (cd "$root" && cargo build --release -p concord-topo)
    fi
    [ -n "$dir" ] || dir=$(mktemp -d "${TMPDIR:-/tmp}/concord-cluster.XXXXXX")
    mkdir -p "$dir"
    echo "$base" >"$dir/base_port"
    if [ -z "${CONCORD_PEER_SECRET:-}" ]; then
        [ -f "$dir/peer.secret" ] ||
            (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$dir/peer.secret")
        CONCORD_PEER_SECRET=$(cat "$dir/peer.secret")
    fi
    export CONCORD_PEER_SECRET
    local cluster=""
    for i in 1 2 3; do
        cluster="${cluster:+$cluster,}$i=127.0.0.1:$(peer_port "$i")"
    done
    for i in 1 2 3; do
        local args=(--node-id "$i"
            --client-addr "127.0.0.1:$(client_port "$i")"
            --peer-addr "127.0.0.1:$(peer_port "$i")"
            --data-dir "$dir/node$i"
            --initial-cluster "$cluster"
            --executors "$executors")
        if [ -n "${CONFIG:-}" ]; then args+=(--config "$CONFIG"); fi
        nohup "$bin" "${args[@]}" >"$dir/node$i.log" 2>&1 &
        echo $! >"$dir/node$i.pid"
    done
    echo "$dir" >"$state_file"
    # Wait until every server knows a leader.
    for _ in $(seq 1 100); do
        local ready=0
        for i in 1 2 3; do
            if curl -fs "127.0.0.1:$(client_port "$i")/readyz" >/dev/null 2>&1; then
                ready=$((ready + 1))
            fi
        done
        if [ "$ready" = 3 ]; then
            echo "cluster up; data and logs in $dir"
            for i in 1 2 3; do
                echo "  node $i: http://127.0.0.1:$(client_port "$i")  (peer 127.0.0.1:$(peer_port "$i"), pid $(cat "$dir/node$i.pid"))"
            done
            echo "try: curl 127.0.0.1:$(client_port 1)/api/cluster/status"
            return 0
        fi
        sleep 0.1
    done
    echo "the cluster did not become ready in 10 s; see $dir/node*.log" >&2
    exit 1
}

status() {
    resolve_dir
    for i in 1 2 3; do
        printf 'node %s: ' "$i"
        curl -fs "127.0.0.1:$(client_port "$i")/api/cluster/status" || echo "(not answering)"
        echo
    done
}

stop() {
    resolve_dir
    for pidfile in "$dir"/node*.pid; do
        [ -f "$pidfile" ] || continue
        local pid
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
        rm -f "$pidfile"
    done
    echo "stopped the servers of $dir (data kept; rm -r $dir to delete it)"
}

case "$cmd" in
    start) start ;;
    status) status ;;
    stop) stop ;;
    *) usage ;;
esac
