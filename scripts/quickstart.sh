#!/usr/bin/env bash
# Set up (.venv) and solve an example PDE on the embedded default (this process, CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
sdze solve examples/quick_d100.json --out runs/quickstart
echo "Open runs/quickstart/loss.png for the convergence plot; runs/quickstart/metrics.json for the figures."
