"""Where a test-set evaluation's time goes at high d (``Solver.evaluate_test``: test points, u*, predictions, the
held-out residual), by cProfile, for a freshly initialized network (the cost does not depend on the weights).

    OMP_NUM_THREADS=1 python benchmarks/profile_evaluation.py --dim 10000000 --points 32 --batch 16 \
        --out docs/profile_evaluation_d1e7_s11.json

Writes the command, commit, seconds per test point and the top functions by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import time
from pathlib import Path

from sdze_core.solver import Solver
from sdze_core.spec import JobSpec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=10_000_000)
    ap.add_argument("--points", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    spec = JobSpec.model_validate(
        {
            "problem": {"name": "sine_gordon_two_body", "dim": a.dim},
            "solver": {"method": "sdze", "steps": 1, "batch_size": a.batch},
            "eval": {"test_points": a.points, "every": 1},
        }
    )
    solver = Solver(spec.to_config())
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    metrics = solver.evaluate_test()
    prof.disable()
    wall = time.perf_counter() - t0
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(25)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    result = {
        "command": f"OMP_NUM_THREADS=1 python benchmarks/profile_evaluation.py --dim {a.dim} --points {a.points} "
        f"--batch {a.batch}" + (f" --out {a.out}" if a.out else ""),
        "commit": commit,
        "load1": os.getloadavg()[0],
        "wall_s": round(wall, 2),
        "s_per_test_point": round(wall / a.points, 3),
        "metrics": metrics,
        "profile": text.getvalue().splitlines(),
    }
    print(json.dumps({k: result[k] for k in ("wall_s", "s_per_test_point", "load1")}))
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
