"""Step cost against the batch size and the collocation points' lifetime (knob ``point_lifetime``), side by side
in one process: what a step and what a fresh point cost.

    OMP_NUM_THREADS=1 python benchmarks/bench_point_lifetime.py --dim 100000 --configs 100:1 100:4 100:10 200:1 \
        --method sdze --steps 20 --out docs/bench_point_lifetime_d1e5.json

One Solver per ``N:L`` config (batch size N, point_lifetime L; otherwise the method's defaults, width 128,
depth 4, float32), stepped in turn (config a step t, config b step t, …) so the machine's load falls on all alike;
after ``max(3, L)`` warm-up steps, per step: the whole step's wall time and the part spent getting the batch
(``BatchSource.get``: drawing points, their source values, directions and boundary jets). Medians over ``--steps``,
and the seconds per 100 fresh points (a step draws N/L of them). Writes the command, commit, torch threads and load
averages beside the rows.
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
    ap.add_argument("--configs", nargs="+", default=["100:1", "100:4", "100:10"], help="N:L pairs")
    ap.add_argument("--method", default="sdze")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    configs = [tuple(int(v) for v in c.split(":")) for c in a.configs]
    solvers = {}
    for N, L in configs:
        spec = JobSpec.model_validate(
            {
                "problem": {"name": "sine_gordon_two_body", "dim": a.dim},
                "solver": {"method": a.method, "steps": 10**6, "batch_size": N, "point_lifetime": L},
                "eval": {"test_points": 10, "every": 10**6},
            }
        )
        solvers[(N, L)] = Solver(spec.to_config())
        solvers[(N, L)].start()
    batch_s = dict.fromkeys(configs, 0.0)
    original = BatchSource.get
    current = [configs[0]]

    def timed_get(self, step, worker, with_source=True):
        t0 = time.perf_counter()
        out = original(self, step, worker, with_source)
        batch_s[current[0]] += time.perf_counter() - t0
        return out

    BatchSource.get = timed_get
    rows = {c: {"step_s": [], "batch_s": []} for c in configs}
    loads = [os.getloadavg()[0]]
    warm = max(3, *(L for _, L in configs))
    for t in range(warm + a.steps):
        for c, s in solvers.items():
            current[0], batch_s[c] = c, 0.0
            t0 = time.perf_counter()
            s.local_step(t)
            dt = time.perf_counter() - t0
            if t >= warm:
                rows[c]["step_s"].append(dt)
                rows[c]["batch_s"].append(batch_s[c])
        loads.append(os.getloadavg()[0])
    table = []
    for N, L in configs:
        step, batch = statistics.median(rows[(N, L)]["step_s"]), statistics.median(rows[(N, L)]["batch_s"])
        table.append(
            {
                "batch_size": N,
                "point_lifetime": L,
                "step_s": round(step, 4),
                "batch_s": round(batch, 4),
                "rest_s": round(step - batch, 4),
                "s_per_100_fresh_points": round(step * 100 * L / N, 4),
            }
        )
        print(json.dumps(table[-1]), flush=True)
    result = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/bench_point_lifetime.py "
        + f"--dim {a.dim} --configs {' '.join(a.configs)} --method {a.method} --steps {a.steps}"
        + (f" --out {a.out}" if a.out else ""),
        "commit": _commit(),
        "torch_threads": torch.get_num_threads(),
        "load1_min_max": [min(loads), max(loads)],
        "rows": table,
        "per_step": {f"{N}:{L}": r for (N, L), r in rows.items()},
    }
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
