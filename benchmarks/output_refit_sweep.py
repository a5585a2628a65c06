"""How much the output refit (``sdze_core.output_refit``) gives after a run, and whether its two-fold check keeps it.

    OMP_NUM_THREADS=1 python benchmarks/output_refit_sweep.py --dim 1000 --steps 300 1500 3000 \
        --points 4096 16384 --out docs/output_refit_sweep_d1000.json

Trains ``sdze`` on sine_gordon_two_body (one torch thread, no refit of its own) and at each step count in
``--steps`` refits a copy of the output layer from each batch size in ``--points``: the test aniso ratio before,
after the least-squares solve whatever the check says, and the check's verdict (two-fold cross-validated RMS
residual before/after). The model then continues from its own (unrefitted) state. The JSON is rewritten after
every step count.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sdze_core.output_refit import refit_output_layer, refit_points, refit_rows, solve_output_layer  # noqa: E402
from sdze_core.seeds import derive  # noqa: E402
from sdze_core.solver import Solver  # noqa: E402
from sdze_core.spec import JobSpec  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", default="sine_gordon_two_body")
    ap.add_argument("--dim", type=int, default=1000)
    ap.add_argument("--steps", type=int, nargs="+", default=[300, 1500])
    ap.add_argument("--points", type=int, nargs="+", default=[4096])
    ap.add_argument("--test-points", type=int, default=20000)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    spec = {
        "problem": {"name": a.problem, "dim": a.dim},
        "solver": {"method": "sdze", "steps": max(a.steps), "output_refit_points": 0},
        "eval": {"test_points": a.test_points},
    }
    s = Solver(JobSpec.model_validate(spec).to_config())
    p, m = s.problem, s.model
    out = {"command": "OMP_NUM_THREADS=1 python benchmarks/output_refit_sweep.py " + " ".join(sys.argv[1:]),
           "spec": spec, "threads": 1, "rows": []}  # fmt: skip
    s.start()
    t0, done = time.perf_counter(), 0
    for target in sorted(a.steps):
        for t in range(done, target):
            s.local_step(t)
        done = target
        train_s = time.perf_counter() - t0
        s.engine.fold()
        before = s.evaluate_test()
        w, b = m.W[-1].detach().clone(), m.b[-1].detach().clone()
        for n_req in a.points:
            n = refit_points(n_req, p.dim, m.width)
            t1 = time.perf_counter()
            rows = refit_rows(p, m, None, derive(0, "output_refit_sweep", n), n)
            rec = refit_output_layer(m, rows, p.nonlinearity, p.nonlinearity_derivative).as_dict()
            refit_s = time.perf_counter() - t1
            if not rec["accepted"]:  # the solve the check turned down, to see what it would have given
                theta0 = torch.cat([w.reshape(-1), b.reshape(-1)]).double()
                theta = solve_output_layer(rows, theta0, p.nonlinearity, p.nonlinearity_derivative)
                with torch.no_grad():
                    m.W[-1].copy_(theta[:-1].reshape(w.shape).to(w))
                    m.b[-1].copy_(theta[-1:].to(b))
            after = s.evaluate_test()
            row = {"steps": target, "train_s": round(train_s, 1), "points": n, "refit_s": round(refit_s, 1),
                   "aniso_before": before["aniso_ratio"], "aniso_after_solve": after["aniso_ratio"],
                   "val_before": before["val_residual"], "val_after_solve": after["val_residual"],
                   "load": round(os.getloadavg()[0], 2), **rec}  # fmt: skip
            out["rows"].append(row)
            print(json.dumps(row), flush=True)
            with torch.no_grad():  # training continues from its own state
                m.W[-1].copy_(w)
                m.b[-1].copy_(b)
            Path(a.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
