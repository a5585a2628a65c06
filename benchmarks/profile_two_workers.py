"""Where a two-worker step's time goes, measured in one process with one torch thread.

    OMP_NUM_THREADS=1 python benchmarks/profile_two_workers.py --dim 10000 --out docs/profile_two_workers_d1e4_s8.json

With Ray each replica probes its own batch, then applies every worker's report; applying another worker's report
first rebuilds that worker's batch (points and directions, from its seed) and its data-aligned basis. Here, for the
default ``sdze`` spec of ``bench_workers.py``: the median over steps 2 … ``--steps`` of one worker's probe, the apply
of two reports (the other batch already built) and of one report (a one-worker run), and the rebuild of another
worker's light batch and basis. What is replicated per extra worker is apply(2) − apply(1) + rebuild.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sdze_core.solver import Solver  # noqa: E402
from sdze_core.spec import JobSpec  # noqa: E402


def solver(dim: int, workers: int) -> Solver:
    spec = {
        "problem": {"name": "sine_gordon_two_body", "dim": dim, "seed": 0},
        "model": {"width": 128, "depth": 4},
        "solver": {"method": "sdze", "steps": 10_000, "batch_size": 100, "samples": 16, "q": 8},
        "resources": {"workers": workers},
        "seed": 0,
    }
    return Solver(JobSpec.model_validate(spec).to_config())


def ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1e3, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    load0 = os.getloadavg()[0]
    e = solver(a.dim, 2).engine
    probe, apply2 = [], []
    for t in range(a.steps):
        t0 = time.perf_counter()
        r0 = e.probe(t, 0)
        t1 = time.perf_counter()
        r1 = e.probe(t, 1)  # runs on the other worker under Ray; here it also leaves its batch built for apply
        t2 = time.perf_counter()
        e.apply(t, [r0, r1])
        t3 = time.perf_counter()
        if t >= 2:
            probe.append(t1 - t0)
            apply2.append(t3 - t2)
    e1 = solver(a.dim, 1).engine
    apply1 = []
    for t in range(a.steps):
        r0 = e1.probe(t, 0)
        t0 = time.perf_counter()
        e1.apply(t, [r0])
        if t >= 2:
            apply1.append(time.perf_counter() - t0)
    light, basis = [], []
    for t in range(a.steps, 2 * a.steps):
        t0 = time.perf_counter()
        b = e.step_data.light_batch(t, 1)
        t1 = time.perf_counter()
        e.step_data.data_basis(b)
        light.append(t1 - t0)
        basis.append(time.perf_counter() - t1)
    out = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/profile_two_workers.py " + " ".join(sys.argv[1:]),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip(),
        "load": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "dim": a.dim,
        "probe_ms": ms(probe),
        "apply_two_reports_ms": ms(apply2),
        "apply_one_report_ms": ms(apply1),
        "rebuild_light_batch_ms": ms(light),
        "rebuild_basis_ms": ms(basis),
    }
    extra = out["apply_two_reports_ms"] - out["apply_one_report_ms"] + out["rebuild_light_batch_ms"]
    out["replicated_per_extra_worker_ms"] = round(extra + out["rebuild_basis_ms"], 2)
    out["replicated_share_of_step"] = round(
        out["replicated_per_extra_worker_ms"] / (out["probe_ms"] + out["apply_one_report_ms"]), 3
    )
    print(json.dumps(out, indent=1))
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
