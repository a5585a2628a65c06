"""Accuracy against wall time on a parabolic problem: each method for a fixed budget, from one job spec each.

    python benchmarks/bench_parabolic.py --problem semilinear_heat --dim 1000 --budget 240 \
        --methods sdze sdgd_adam --out docs/time-dependent-runs.json

Each run: the spec {"problem": {"name", "dim"}, "solver": {"method", "steps"}} with the method's preset (nothing
else set); two warm-up steps, then three timed steps aim the lr-decay horizon at the budget's end (re-aimed every
20 steps from the last 20 step times, since the shared machine's load varies); then steps until the budget is
spent, evaluating every budget/10 seconds (evaluation time not counted). Records the reference-point error (and
rel L2 / nulls where a closed form exists), the terminal-only null beside it, steps, step time, threads and load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from sdze_core.parabolic.evaluation import evaluate
from sdze_core.parabolic.solving import test_set
from sdze_core.solver import Solver
from sdze_core.spec import JobSpec

KEYS = ("rel_l2", "null_rel_l2", "null_terminal_rel_l2", "ref_rel_error", "ref_null_rel_error", "ref_u")


def run(problem: str, dim: int, method: str, budget: float, seed: int, test_points: int) -> dict:
    spec = {
        "problem": {"name": problem, "dim": dim},
        "solver": {"method": method, "steps": 10**8},
        "eval": {"test_points": test_points},
        "seed": seed,
    }
    cfg = JobSpec.model_validate(spec).to_config()
    s = Solver(cfg, device="cpu")
    t0 = time.perf_counter()
    for t in range(2):  # warm-up (first-call costs), counted as training time
        s.local_step(t)
    t1 = time.perf_counter()
    for t in range(2, 5):
        s.local_step(t)
    per_step = (time.perf_counter() - t1) / 3
    train_s = time.perf_counter() - t0
    s.schedule.horizon = max(10, 5 + int((budget - train_s) / per_step))
    trace, step, next_eval = [], 5, 0.0

    def ev() -> dict:
        m = evaluate(s.problem, s.predict, test_set(cfg, s.problem), s.dtype, s.device)
        return {"step": step, "train_s": round(train_s, 2), **{k: m.get(k) for k in KEYS if k in m}}

    recent: list[float] = []
    while train_s < budget:
        if train_s >= next_eval:
            trace.append(ev())
            next_eval += budget / 10
        t1 = time.perf_counter()
        loss = s.local_step(step)
        dt = time.perf_counter() - t1
        train_s += dt
        step += 1
        recent = (recent + [dt])[-20:]
        if step % 20 == 0:  # the machine's load varies: re-aim the lr decay at the budget's end from recent steps
            s.schedule.horizon = max(step + 1, step + int((budget - train_s) / (sum(recent) / len(recent))))
    final = ev()
    final["loss"] = loss
    trace.append(final)
    return {
        "spec": spec,
        "horizon": s.schedule.horizon,
        "steps": step,
        "step_s": train_s / step,
        "final": final,
        "trace": trace,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problem", default="semilinear_heat")
    ap.add_argument("--dim", type=int, default=1000)
    ap.add_argument("--methods", nargs="+", default=["sdze", "sdgd_adam"])
    ap.add_argument("--budget", type=float, default=240.0, help="training seconds per method")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-points", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    meta = {
        "command": "python benchmarks/bench_parabolic.py " + " ".join(os.sys.argv[1:]),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "machine": platform.processor() or platform.machine(),
    }
    rows = []
    for m in a.methods:
        r = run(a.problem, a.dim, m, a.budget, a.seed, a.test_points)
        r["loadavg_end"] = os.getloadavg()
        rows.append(r)
        f = r["final"]
        print(
            f"{m:>10}  steps {r['steps']:>6}  {r['step_s']:.3f} s/step  "
            + "  ".join(f"{k} {f[k]:.3e}" for k in KEYS if f.get(k) is not None),
            flush=True,
        )
        if a.out:
            a.out.write_text(json.dumps({"meta": meta, "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
