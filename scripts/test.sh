#!/usr/bin/env bash
# Set up (.venv) and run the whole test suite, slow tests included (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
ruff check .
ruff format --check .
python -m pytest -q "$@"
