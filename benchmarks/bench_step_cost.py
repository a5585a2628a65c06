"""Step cost of ``sdze`` against ``sdgd_adam`` at low d (issue 12: an ``sdze`` step ≤ 5× an ``sdgd_adam`` step at
d = 10^3), timed in one process, interleaved.

    OMP_NUM_THREADS=1 python benchmarks/bench_step_cost.py [--dims 1000 10000] [--steps 30] [--warmup 3]
        [--out docs/bench_step_cost.json]

Both solvers are built from the default job specs ``{"problem": {"name": "sine_gordon_two_body", "dim": d},
"solver": {"method": M}}`` (N = 100, width 128, depth 4, float32; ``sdze``'s default Gauss–Newton step with exact
W₁ Jacobian and q = 8 forward-mode probes). After ``--warmup`` steps of each, ``--steps`` steps are timed
alternately (sdze step t, sdgd_adam step t, sdze step t+1, …) so that both see the same machine load at the same
moments; every figure is the median over the timed steps, in wall and in process CPU seconds, and the ratio is
sdze / sdgd_adam of the medians. One torch thread (``torch.set_num_threads(1)``). A step is ``Solver.local_step(t)``:
drawing the batch and the whole update (for sdze: Gauss–Newton probe pass, LM solve, backtracking trials, apply).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sdze_core.solver import Solver  # noqa: E402
from sdze_core.spec import JobSpec  # noqa: E402

METHODS = ("sdze", "sdgd_adam")


def solver_for(method: str, d: int) -> Solver:
    spec = {"problem": {"name": "sine_gordon_two_body", "dim": d}, "solver": {"method": method}}
    return Solver(JobSpec.model_validate(spec).to_config())


def interleaved(d: int, steps: int, warmup: int) -> dict:
    """Median wall and CPU seconds per step of each method at dimension ``d``, timed alternately."""
    solvers = {m: solver_for(m, d) for m in METHODS}
    wall: dict[str, list[float]] = {m: [] for m in METHODS}
    cpu: dict[str, list[float]] = {m: [] for m in METHODS}
    for t in range(warmup + steps):
        for m in METHODS:
            w0, c0 = time.perf_counter(), time.process_time()
            solvers[m].local_step(t)
            w1, c1 = time.perf_counter(), time.process_time()
            if t >= warmup:
                wall[m].append(w1 - w0)
                cpu[m].append(c1 - c0)
    med = {m: statistics.median(wall[m]) for m in METHODS}
    med_cpu = {m: statistics.median(cpu[m]) for m in METHODS}
    return {
        "dim": d,
        "steps_timed": steps,
        "warmup": warmup,
        "wall_median_s": med,
        "cpu_median_s": med_cpu,
        "ratio_wall": med["sdze"] / med["sdgd_adam"],
        "ratio_cpu": med_cpu["sdze"] / med_cpu["sdgd_adam"],
        "wall_s": wall,
        "cpu_s": cpu,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[1000])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--label", default="", help="free text stored with the result (e.g. before/after)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = {
        "label": args.label,
        "command": " ".join(["OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "unset"), "python"] + sys.argv),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "results": [],
    }
    for d in args.dims:
        r = interleaved(d, args.steps, args.warmup)
        out["results"].append(r)
        w, c = r["wall_median_s"], r["cpu_median_s"]
        print(
            f"d = {d}: sdze {w['sdze'] * 1e3:.1f} ms (cpu {c['sdze'] * 1e3:.1f}), sdgd_adam {w['sdgd_adam'] * 1e3:.1f} "
            f"ms (cpu {c['sdgd_adam'] * 1e3:.1f}); ratio {r['ratio_wall']:.2f} wall, {r['ratio_cpu']:.2f} cpu",
            flush=True,
        )
    out["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.out:
        runs = []
        if args.out.exists():
            runs = json.loads(args.out.read_text()).get("runs", [])
        runs.append(out)
        args.out.write_text(json.dumps({"runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
