"""Why `sdze` failed on semilinear_heat (issue 14): short runs of the Gauss–Newton knobs side by side.

    OMP_NUM_THREADS=1 python benchmarks/heat_sdze_sweep.py --dim 100 --steps 300 --out docs/heat_sdze_sweep_d100.json
    OMP_NUM_THREADS=1 python benchmarks/heat_sdze_sweep.py --problem hjb_cole_hopf --rows 1 2 \
        --out docs/hjb_time_only_d100.json

Each row trains the catalogue problem (``--problem``, default semilinear_heat) from its plain spec plus one set of
knobs (``ROWS``; ``--rows`` picks some) in this process, one torch thread, and records every 100 steps the
reference-point error |u(0,0) − u*|/u*, the held-out residual and, where u* is known, rel L2 and aniso; then the
seconds, the Gauss–Newton counters and the load average. The JSON is rewritten after every row.
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

from sdze_core.solver import Solver  # noqa: E402
from sdze_core.spec import JobSpec  # noqa: E402

ROWS = [  # the default (W₁'s time column only), the previous exact W₁ step over all of W₁, and knobs tried on it
    ("sdgd_adam", {}),
    ("sdze", {}),
    ("sdze", {"gn_w1_time_only": False}),
    ("sdze", {"gn_w1_time_only": False, "gn_damping": 1.0}),
    ("sdze", {"gn_w1_time_only": False, "gn_holdout": "on"}),
    ("sdze", {"gn_w1_time_only": False, "samples": 64}),
    ("sdze", {"gn_w1_time_only": False, "estimator": "hte"}),
]


def run(problem: str, dim: int, steps: int, method: str, knobs: dict, every: int = 100) -> dict:
    spec = {
        "problem": {"name": problem, "dim": dim},
        "solver": {"method": method, "steps": steps, **knobs},
        "eval": {"test_points": 200, "every": every},
    }
    s = Solver(JobSpec.model_validate(spec).to_config())
    load0, t0, evals = os.getloadavg()[0], time.perf_counter(), []
    start = s.start()  # what the trainer does before step 1 (the constant start where the preset asks for it)
    for t in range(steps):
        s.local_step(t)
        if (t + 1) % every == 0:
            ev = s.evaluate_test()
            evals.append(
                {
                    "step": t + 1,
                    "s": round(time.perf_counter() - t0, 1),
                    **{k: ev.get(k) for k in ("ref_rel_error", "val_residual", "rel_l2", "aniso_ratio")},
                }
            )
            print(method, knobs, evals[-1], flush=True)
    counters = dict(s.engine.counters) if hasattr(s.engine, "counters") else {}
    return {
        "method": method,
        "knobs": knobs,
        "spec": spec,
        "constant_start": start or None,
        "evals": evals,
        "counters": counters,
        "load": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", default="semilinear_heat")
    ap.add_argument("--rows", type=int, nargs="+", default=None, help="indices into ROWS (default: all)")
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument(
        "--row",
        action="append",
        default=[],
        metavar="METHOD:JSON",
        help='an extra row, e.g. sdze:{"samples": 64} (repeatable; runs after --rows)',
    )
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/heat_sdze_sweep.py " + " ".join(sys.argv[1:]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "threads": 1,
        "rows": [],
    }
    # --rows picks from ROWS; with only --row given, just those extra rows run
    rows = [ROWS[i] for i in args.rows] if args.rows is not None else ([] if args.row else list(ROWS))
    rows += [(r.split(":", 1)[0], json.loads(r.split(":", 1)[1])) for r in args.row]
    for method, knobs in rows:
        out["rows"].append(run(args.problem, args.dim, args.steps, method, knobs, args.every))
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
