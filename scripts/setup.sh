#!/usr/bin/env bash
# Set up a virtual environment in .venv with everything the project needs (idempotent).
# CPU torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! python -c "import torch" >/dev/null 2>&1; then
  pip install -q "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
fi
pip install -q -e ".[dev]" 2>&1 | grep -vE "^WARNING: Location|^\s*$" || true
bash scripts/system_deps.sh
python -c "import torch, ray, fastapi, sdze_core; print(f'setup ok: torch {torch.__version__}, ray {ray.__version__}')"
