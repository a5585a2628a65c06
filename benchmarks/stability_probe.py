"""Diagnose the default step's stability at high d: per step the training loss, ‖W₁‖_F² = tr W₁W₁ᵀ (the scale of
every point's Laplacian, see sdze_core/zspace.py), ‖ΔW₁‖_F / ‖W₁‖_F, the largest column norm of W₁ (coordinate
estimators' directions are columns), and every ``every`` steps rel L2 / aniso and the held-out residual.

    python benchmarks/stability_probe.py --dim 100000 --steps 40 [--set key=value ...] --out docs/stab_1e5.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import torch
from knob_args import knob_override  # benchmarks/, the script's own folder

from sdze_core.solver import Solver
from sdze_core.spec import JobSpec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--problem", default="sine_gordon_two_body")
    ap.add_argument("--test-points", type=int, default=2000)
    ap.add_argument("--set", type=knob_override, action="append", default=[], help="solver override key=json-value")
    ap.add_argument("--estimator", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--seed", type=int, default=0, help="the job seed (initialization, batches); u* keeps seed 0")
    a = ap.parse_args()
    solver = {"method": "sdze", "steps": a.steps}
    solver.update(a.set)
    spec = JobSpec.model_validate(
        {
            "problem": {"name": a.problem, "dim": a.dim},
            "solver": solver,
            "eval": {"test_points": a.test_points, "every": a.every},
            "seed": a.seed,
        }
    )
    cfg = spec.to_config()
    if a.estimator:  # bypasses the spec's choices (experimental estimators)
        cfg = dataclasses.replace(cfg, solver=dataclasses.replace(cfg.solver, estimator=a.estimator))
    s = Solver(cfg)
    W1 = s.model.W[0]
    rows = []
    start = s.start()  # what the trainer does before step 1 (the constant start where the preset asks for it)
    if start:
        print(json.dumps({"constant_start": start}), flush=True)
    ev = s.evaluate_test()
    rows.append({"step": 0, "w1_fro2": float(W1.double().square().sum()), **ev})
    print(json.dumps(rows[-1]), flush=True)
    for t in range(a.steps):
        prev = W1.clone()
        t0 = time.perf_counter()
        loss = s.local_step(t)
        dt = time.perf_counter() - t0
        if hasattr(s.engine, "fold"):
            s.engine.fold()
        dW = float((W1 - prev).double().square().sum().sqrt())
        fro2 = float(W1.double().square().sum())
        row = {
            "step": t + 1,
            "loss": loss,
            "step_s": round(dt, 3),
            "w1_fro2": fro2,
            "dw1_rel": dW / fro2**0.5,
            "w1_colmax": float(W1.double().square().sum(0).max().sqrt()),
            "w_out": float(s.model.W[-1].double().norm()),
            "b_out": float(s.model.b[-1]),
            "w_hidden": [float(w.double().norm()) for w in s.model.W[1:-1]],
        }
        del prev
        if (t + 1) % a.every == 0 or t + 1 == a.steps:
            row.update(s.evaluate_test())
        rows.append(row)
        print(json.dumps(row), flush=True)
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(
                {
                    "dim": a.dim,
                    "problem": a.problem,
                    "solver": solver,
                    "threads": torch.get_num_threads(),
                    "estimator": cfg.solver.estimator,
                    "command": " ".join(sys.argv),
                    "gn_trust": getattr(cfg.solver.zo, "gn_trust", None),
                    "constant_start": start or None,
                    "rows": rows,
                },
                fh,
                indent=1,
            )


if __name__ == "__main__":
    main()
