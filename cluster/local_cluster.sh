#!/usr/bin/env bash
# A multi-node Ray cluster on one machine: a head plus N worker nodes started with
# `ray start`, each node with its own logical CPUs, custom resources and temp dir (as on
# separate machines: a node's runtime-env agent must not unpack jobs' working dirs over
# another's), all under one folder of their own — so `stop` ends only these nodes
# (`ray stop` would end every Ray on the machine, yours and everyone else's).
#
#   cluster/local_cluster.sh start   # head (job API on http://127.0.0.1:$DASHBOARD_PORT) + workers
#   raydl submit jobs/digits_cnn.yaml --address http://127.0.0.1:8266 --working-dir .
#   cluster/local_cluster.sh stop
#
# Settings (environment): RAYDL_CLUSTER_DIR (temp dir, default /tmp/raydl-local-cluster),
# GCS_PORT (6390), DASHBOARD_PORT (8266), AGENT_PORT (52366: the head's dashboard agent,
# which runs submitted jobs; worker node i uses AGENT_PORT+i), HEAD_CPUS (1), WORKERS (1),
# WORKER_CPUS (4).
set -euo pipefail

DIR=${RAYDL_CLUSTER_DIR:-/tmp/raydl-local-cluster}
GCS_PORT=${GCS_PORT:-6390}
DASHBOARD_PORT=${DASHBOARD_PORT:-8266}
AGENT_PORT=${AGENT_PORT:-52366}
HEAD_CPUS=${HEAD_CPUS:-1}
WORKERS=${WORKERS:-1}
WORKER_CPUS=${WORKER_CPUS:-4}
RAY=${RAY:-$(command -v ray || echo "$(dirname "$0")/../.venv/bin/ray")}
# Ray 2.60 token authentication, explicitly on for every node: `ray start --head` turns it
# on by itself only when a token already exists (~/.ray/auth_token, which any earlier local
# `ray.init()` writes), and a worker node that is not told joins without one and is refused
# ("Authentication token is missing"). In token mode the head writes a token if none exists.
# Clients (raydl submit, ray job submit) need RAY_AUTH_MODE=token too; raydl sets it itself.
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}
# a busy machine can take over a minute to bring the dashboard (the job API) up
export RAY_DASHBOARD_STARTUP_TIMEOUT_S=${RAY_DASHBOARD_STARTUP_TIMEOUT_S:-300}

case "${1:-}" in
start)
  "$RAY" start --head --node-ip-address=127.0.0.1 --port="$GCS_PORT" \
    --dashboard-host=127.0.0.1 --dashboard-port="$DASHBOARD_PORT" --include-dashboard=true \
    --dashboard-agent-listen-port="$AGENT_PORT" \
    --num-cpus="$HEAD_CPUS" --resources='{"raydl_head": 1}' \
    --temp-dir="$DIR/head" --disable-usage-stats
  for i in $(seq 1 "$WORKERS"); do
    "$RAY" start --address="127.0.0.1:$GCS_PORT" --node-ip-address=127.0.0.1 \
      --dashboard-agent-listen-port="$((AGENT_PORT + i))" \
      --num-cpus="$WORKER_CPUS" --resources="{\"raydl_worker\": 1, \"raydl_worker_$i\": 1}" \
      --temp-dir="$DIR/worker-$i" --disable-usage-stats
  done
  # The job API answers before the head's agent (which starts submitted jobs) is up, and
  # then refuses jobs after a 10 s wait: return only once the agent answers.
  PY="$(dirname "$RAY")/python"
  [ -x "$PY" ] || PY=python3
  "$PY" - "$AGENT_PORT" <<'WAIT'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/api/healthz"
deadline = time.monotonic() + 300
while True:
    try:
        urllib.request.urlopen(url, timeout=5).read()
        break
    except Exception as e:
        if time.monotonic() > deadline:
            sys.exit(f"the head's dashboard agent did not answer at {url} in 300 s ({e})")
        time.sleep(2)
WAIT
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
