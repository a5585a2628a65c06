"""The sign of semilinear heat's reference-point error over a run: is it noise around u* (averaging would help) or
a bias (it would not)?

    OMP_NUM_THREADS=1 python benchmarks/heat_signed_error.py --dim 1000 --steps 2000 \
        --out docs/heat_signed_error_d1000_s7.json

Trains ``sdze`` (the plain catalogue spec, one torch thread, the constant start where the preset asks for it) and
records (u(0, 0) − u*)/u* every ``--every`` steps (``--knob NAME=JSON`` overrides a solver knob); prints the mean
signed and mean absolute error of each 250 steps.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from knob_args import knob_override  # noqa: E402

from sdze_core.solver import Solver  # noqa: E402
from sdze_core.spec import JobSpec  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0, help="the job seed")
    ap.add_argument("--knob", type=knob_override, action="append", default=[], help="NAME=JSON, a solver knob")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    spec = {
        "problem": {"name": "semilinear_heat", "dim": a.dim},
        "solver": {"method": "sdze", "steps": a.steps, **dict(a.knob)},
        "seed": a.seed,
    }
    s = Solver(JobSpec.model_validate({**spec, "eval": {"test_points": 200}}).to_config())
    ref = s.problem.reference
    origin = torch.zeros(1, a.dim + 1)
    s.start()
    rows, windows, t0 = [], [], time.perf_counter()
    for t in range(a.steps):
        s.local_step(t)
        if (t + 1) % a.every == 0:
            rows.append([t + 1, (float(s.predict(origin)[0]) - ref) / ref])
        if (t + 1) % 250 == 0:
            w = [e for step, e in rows if step > t + 1 - 250]
            windows.append({"to_step": t + 1, "s": round(time.perf_counter() - t0), "mean_signed": sum(w) / len(w),
                            "mean_abs": sum(abs(e) for e in w) / len(w)})  # fmt: skip
            print(json.dumps(windows[-1]), flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    out = {"command": "OMP_NUM_THREADS=1 python benchmarks/heat_signed_error.py " + " ".join(sys.argv[1:]),
           "commit": commit.strip(), "spec": spec, "reference": ref, "windows": windows,
           "signed_errors": rows}  # fmt: skip
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
