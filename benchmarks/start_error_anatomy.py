"""Where the error of a fresh high-d run's started state comes from (issue 12, session 10).

    OMP_NUM_THREADS=1 python benchmarks/start_error_anatomy.py --dim 10000000 [--test-points 200] [--out FILE]

Builds the default ``sdze`` solver for ``sine_gordon_two_body`` at d (batch 16), runs the constant start (docs/method.md
step 0) and splits the started prediction u = B·N on the test set (the run's own seeded test points) into
- the constant's offset b − c* from the L2-best constant c* = Σ B²v / Σ B² (v = u*/B): ``offset_only_aniso`` is the
  aniso of u = b·B, and
- the network's own variation N − b across the points (a fresh network is nearly constant in x),
next to the aniso of the started state itself. Before session 10 the prediction's boundary factor B = 1 − |x|² came
from a float32 ``vector_norm`` over d coordinates (off by 6e-4 at d = 10^7), which showed up as variation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sdze_core.solver import Solver, test_set  # noqa: E402
from sdze_core.spec import JobSpec  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=10**7)
    ap.add_argument("--test-points", type=int, default=200)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    spec = JobSpec.model_validate(
        {
            "problem": {"name": "sine_gordon_two_body", "dim": a.dim},
            "solver": {"method": "sdze", "steps": 20, "batch_size": 16},
            "eval": {"test_points": a.test_points},
        }
    )
    s = Solver(spec.to_config(), "cpu")
    t0 = time.time()
    start = s.start()
    start_s = time.time() - t0
    cols = []
    for x in test_set(s.cfg, s.problem).chunks(torch.float64, "cpu"):
        B = s.problem.boundary(x)
        cols.append(torch.stack([B, s.problem.u_exact(x) / B, s.predict(x).double() / B], 1))
    B, v, N = torch.cat(cols).unbind(1)
    c_best = float((B * B * v).sum() / (B * B).sum())
    b = float(s.model.b[-1])

    def err(w: torch.Tensor) -> float:
        return float((w * B).square().sum().sqrt())

    null = err(c_best - v)
    out = {
        "command": f"OMP_NUM_THREADS=1 python benchmarks/start_error_anatomy.py --dim {a.dim} "
        f"--test-points {a.test_points}",
        "d": a.dim,
        "constant_start": start,
        "start_s": round(start_s, 1),
        "bias": b,
        "c_best": c_best,
        "std_v": float(v.std()),
        "network_variation_std": float((N - b).std()),
        "aniso_started": err(N - v) / null,
        "offset_only_aniso": err(b - v) / null,
        "network_variation_over_null": err(N - b) / null,
    }
    print(json.dumps(out, indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
