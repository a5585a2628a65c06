"""The nulls of the time-dependent catalogue problems on a run's own test set (no training).

    python benchmarks/parabolic_nulls.py --problems hjb_cole_hopf bsb reaction_diffusion --dims 100 10000 \
        --out docs/parabolic_nulls.json

For each (problem, d) with a closed form: the terminal-only null (N = 0), the best K in g + (T − t)·K, and the best
flat constant u ≡ c, as ``metrics.json`` reports them (``parabolic.evaluation``), on the test set a job with
``seed`` 0 and ``--test-points`` points draws (the same seed rule as the acceptance runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sdze_core.parabolic.evaluation import evaluate  # noqa: E402
from sdze_core.parabolic.problems import make_parabolic_problem  # noqa: E402
from sdze_core.parabolic.solving import test_set  # noqa: E402
from sdze_core.spec import JobSpec  # noqa: E402

KEYS = ("null_terminal_rel_l2", "null_rel_l2", "null_K", "null_flat_rel_l2", "null_exact")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", nargs="+", default=["hjb_cole_hopf", "bsb", "reaction_diffusion"])
    ap.add_argument("--dims", type=int, nargs="+", default=[100, 10_000])
    ap.add_argument("--test-points", type=int, default=2000)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rows = []
    for name in a.problems:
        for d in a.dims:
            spec = {"problem": {"name": name, "dim": d}, "eval": {"test_points": a.test_points}}
            cfg = JobSpec.model_validate(spec).to_config()
            p = make_parabolic_problem(name, d)
            t0 = time.perf_counter()
            # u ≡ 0 as the "prediction": only the nulls are read, they do not depend on it
            out = evaluate(p, lambda xt: torch.zeros(xt.shape[0], dtype=xt.dtype), test_set(cfg, p), torch.float64)
            rows.append({"problem": name, "dim": d, **{k: out.get(k) for k in KEYS}, "s": time.perf_counter() - t0})
            print(json.dumps(rows[-1]), flush=True)
    cmd = "python benchmarks/parabolic_nulls.py " + " ".join(sys.argv[1:])
    Path(a.out).write_text(json.dumps({"command": cmd, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
