"""Step cost against the collocation points' lifetime (knob ``point_lifetime``), side by side in one process.

    OMP_NUM_THREADS=1 python benchmarks/bench_point_lifetime.py --dim 100000 --lifetimes 1 2 4 10 \
        --method sdze --steps 20 --out docs/bench_point_lifetime_d1e5.json

One Solver per lifetime (same spec otherwise: the method's defaults, batch 100, width 128, depth 4, float32),
stepped in turn (lifetime a step t, lifetime b step t, …) so the machine's load falls on all alike; after 3
warm-up steps, per step: the whole step's wall time and the part spent getting the batch (``BatchSource.get``:
drawing points, their source values, directions and boundary jets). Medians over ``--steps``. Writes the command,
commit, torch threads and load averages beside the rows.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import torch

from sdze_core.residual import BatchSource
from sdze_core.solver import Solver
from sdze_core.spec import JobSpec


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=100_000)
    ap.add_argument("--lifetimes", type=int, nargs="+", default=[1, 2, 4, 10])
    ap.add_argument("--method", default="sdze")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    solvers = {}
    for L in a.lifetimes:
        spec = JobSpec.model_validate(
            {
                "problem": {"name": "sine_gordon_two_body", "dim": a.dim},
                "solver": {"method": a.method, "steps": 10**6, "batch_size": a.batch, "point_lifetime": L},
                "eval": {"test_points": 10, "every": 10**6},
            }
        )
        solvers[L] = Solver(spec.to_config())
        solvers[L].start()
    batch_s = {L: 0.0 for L in a.lifetimes}
    original = BatchSource.get

    def timed_get(self, step, worker, with_source=True):
        t0 = time.perf_counter()
        out = original(self, step, worker, with_source)
        batch_s[current[0]] += time.perf_counter() - t0
        return out

    BatchSource.get = timed_get
    current = [a.lifetimes[0]]
    rows = {L: {"step_s": [], "batch_s": []} for L in a.lifetimes}
    loads = [os.getloadavg()[0]]
    for t in range(3 + a.steps):
        for L, s in solvers.items():
            current[0], batch_s[L] = L, 0.0
            t0 = time.perf_counter()
            s.local_step(t)
            dt = time.perf_counter() - t0
            if t >= 3:
                rows[L]["step_s"].append(dt)
                rows[L]["batch_s"].append(batch_s[L])
        loads.append(os.getloadavg()[0])
    table = []
    base = statistics.median(rows[a.lifetimes[0]]["step_s"])
    for L in a.lifetimes:
        step, batch = statistics.median(rows[L]["step_s"]), statistics.median(rows[L]["batch_s"])
        table.append(
            {
                "lifetime": L,
                "step_s": round(step, 4),
                "batch_s": round(batch, 4),
                "rest_s": round(step - batch, 4),
                "steps_per_s_vs_first": round(base / step, 3),
            }
        )
        print(json.dumps(table[-1]), flush=True)
    result = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/bench_point_lifetime.py "
        + f"--dim {a.dim} --lifetimes {' '.join(map(str, a.lifetimes))} --method {a.method} --batch {a.batch} "
        + f"--steps {a.steps}"
        + (f" --out {a.out}" if a.out else ""),
        "commit": _commit(),
        "torch_threads": torch.get_num_threads(),
        "load1_min_max": [min(loads), max(loads)],
        "rows": table,
        "per_step": rows,
    }
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
