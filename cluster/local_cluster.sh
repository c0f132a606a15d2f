#!/usr/bin/env bash
# A multi-node Ray cluster on one machine: a head plus N worker nodes started with
# `ray start`, each node with its own logical CPUs and custom resources, all under one
# temp dir of their own — so `stop` ends only these nodes (`ray stop` would end every Ray
# on the machine, yours and everyone else's).
#
#   cluster/local_cluster.sh start   # head (job API on http://127.0.0.1:$DASHBOARD_PORT) + workers
#   raydl submit jobs/digits_cnn.yaml --address http://127.0.0.1:8266 --working-dir .
#   cluster/local_cluster.sh stop
#
# Settings (environment): RAYDL_CLUSTER_DIR (temp dir, default /tmp/raydl-local-cluster),
# GCS_PORT (6390), DASHBOARD_PORT (8266), HEAD_CPUS (1), WORKERS (1), WORKER_CPUS (4).
set -euo pipefail

DIR=${RAYDL_CLUSTER_DIR:-/tmp/raydl-local-cluster}
GCS_PORT=${GCS_PORT:-6390}
DASHBOARD_PORT=${DASHBOARD_PORT:-8266}
HEAD_CPUS=${HEAD_CPUS:-1}
WORKERS=${WORKERS:-1}
WORKER_CPUS=${WORKER_CPUS:-4}
RAY=${RAY:-$(command -v ray || echo "$(dirname "$0")/../.venv/bin/ray")}
# keep every node on loopback: Ray would otherwise swap 127.0.0.1 for the outward address
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
# a busy machine can take over a minute to bring the dashboard (the job API) up
export RAY_DASHBOARD_STARTUP_TIMEOUT_S=${RAY_DASHBOARD_STARTUP_TIMEOUT_S:-300}

case "${1:-}" in
start)
  "$RAY" start --head --node-ip-address=127.0.0.1 --port="$GCS_PORT" \
    --dashboard-host=127.0.0.1 --dashboard-port="$DASHBOARD_PORT" --include-dashboard=true \
    --num-cpus="$HEAD_CPUS" --resources='{"raydl_head": 1}' \
    --temp-dir="$DIR" --disable-usage-stats
  for i in $(seq 1 "$WORKERS"); do
    "$RAY" start --address="127.0.0.1:$GCS_PORT" --node-ip-address=127.0.0.1 \
      --num-cpus="$WORKER_CPUS" --resources="{\"raydl_worker\": 1, \"raydl_worker_$i\": 1}" \
      --temp-dir="$DIR" --disable-usage-stats
  done
  echo "job API: http://127.0.0.1:$DASHBOARD_PORT (stop with: $0 stop)"
  ;;
stop)
  pkill -f -- "$DIR" || true
  sleep 2
  pkill -9 -f -- "$DIR" || true
  rm -rf -- "$DIR"
  ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac
