#!/usr/bin/env bash
# GPU check (run on a machine with a CUDA device and a CUDA build of torch installed, e.g. through the device tool):
# the CUDA-marked tests, the engine and Ray suites with CUDA visible, then a short cost ladder on CUDA
# (device "auto" resolves to cuda). Everything it prints and measures lands in $OUT (default runs/gpu_check/).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
if [ -x .venv/bin/python ]; then . .venv/bin/activate; fi
out=${OUT:-runs/gpu_check}
mkdir -p "$out"
python - <<'PY' | tee "$out/device.txt"
import torch
assert torch.cuda.is_available(), "no CUDA device visible to torch (CPU-only build, or no driver)"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}")
PY
# The suites that touch devices: report wire format (CUDA test included), engine, learning, Ray replicas.
python -m pytest -q -p no:cacheprovider tests/test_engine_guards.py tests/test_sdze.py tests/test_learning.py \
  tests/test_worker_ray.py 2>&1 | tee "$out/pytest.txt"
# A short cost ladder on CUDA: seconds per step and peak host RSS per method (bench_core writes docs/bench_ladder.*).
python benchmarks/bench_core.py ladder --dims "${GPU_DIMS:-1000,100000,1000000,10000000}" --steps 4 \
  --budget-gib "${GPU_BUDGET_GIB:-100}" 2>&1 | tee "$out/ladder.txt"
cp docs/bench_ladder.json "$out/bench_ladder_cuda.json"
cp docs/bench_ladder.md "$out/bench_ladder_cuda.md"
echo "gpu check done: $out"
