#!/usr/bin/env bash
# Set up (.venv), start the job service on the embedded default (SQLite + artifacts in ./sdze-data, a local Ray
# in-process) and solve an example PDE through its REST API; prints where to watch it and fetch the result.
# The service keeps running afterwards (its pid is printed); PORT=9000 bash scripts/quickstart_service.sh for another port.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
PORT=${PORT:-8000}
URL="http://127.0.0.1:${PORT}"
export SDZE_URL="$URL"
mkdir -p sdze-data
# readiness probe without curl (a fresh machine may not have it)
ready() { python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/readyz', timeout=2)" "$URL" >/dev/null 2>&1; }
if ! ready; then
  nohup sdze serve --port "$PORT" --data-dir sdze-data > sdze-data/server.log 2>&1 &
  echo $! > sdze-data/server.pid
  echo "starting the service (pid $!, log sdze-data/server.log) on $URL …"
  for _ in $(seq 180); do
    ready && break
    sleep 1
  done
  ready || { echo "service did not become ready; see sdze-data/server.log" >&2; exit 1; }
fi
JOB=$(sdze submit examples/quick_d100.json 2>/dev/null)
echo "submitted job $JOB"
echo "  watch it:  $URL/job?id=$JOB   (all jobs: $URL/ , API docs: $URL/docs)"
echo "  stream:    curl -sN $URL/v1/jobs/$JOB/events"
sdze status "$JOB" --wait
sdze download "$JOB" --out runs/quickstart-service >/dev/null
echo "result:"
echo "  downloaded to runs/quickstart-service/ (loss.png, metrics.json, history.csv, samples.npz, model.safetensors)"
echo "  fetch:     curl -sO $URL/v1/jobs/$JOB/artifacts/model.safetensors   (list: $URL/v1/jobs/$JOB/artifacts)"
echo "  evaluate:  sdze evaluate $JOB points.npy --out u.npy   (or POST $URL/v1/jobs/$JOB/evaluate)"
echo "the service keeps running on $URL (stop it: kill \$(cat sdze-data/server.pid))"
