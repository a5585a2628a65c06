"""Admission estimate against measured peak RSS: small real solves, one fresh process each.

    python benchmarks/bench_memory.py [--dims 1e4 1e5 1e6] [--out docs/bench_memory.json]

Each row runs ``sdze_core.trainer.Trainer`` in a fresh subprocess (one torch thread) on poisson_two_body with
the default model (width 128, depth 4) and method, batch 100, a few steps, a tiny test set, and reads the
child's peak RSS (``ru_maxrss``). ``sdze_core.memory.estimate`` is computed from the same spec; the row says
their ratio (the admission check needs it within 30 %). The JSON is rewritten after every row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from sdze_core.spec import JobSpec
from sdze_core.trainer import Trainer
spec = JobSpec.model_validate(json.loads(sys.argv[1]))
t0 = time.perf_counter()
m = Trainer(spec.to_config(), Path(sys.argv[2])).run()
print(json.dumps({"status": m.get("status"), "wall_s": time.perf_counter() - t0,
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def spec_for(dim: int, steps: int) -> dict:
    return {
        "problem": {"name": "poisson_two_body", "dim": dim},
        "solver": {"steps": steps, "batch_size": 100},
        "eval": {"test_points": 20, "every": steps, "sample_points": 10},
    }


def run_row(dim: int, steps: int) -> dict:
    from sdze_core.memory import estimate
    from sdze_core.spec import JobSpec

    spec = spec_for(dim, steps)
    est = estimate(JobSpec.model_validate(spec).to_config())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as out:
        p = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(spec), out], cwd=ROOT, env=env, capture_output=True, text=True
        )
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-3000:])
    got = json.loads(p.stdout.strip().splitlines()[-1])
    return {
        "dim": dim,
        "steps": steps,
        "spec": spec,
        "status": got["status"],
        "wall_s": round(got["wall_s"], 2),
        "measured_peak_rss_bytes": got["peak_rss_bytes"],
        "estimate_bytes": est.total,
        "estimate_parts": est.parts,
        "estimate_over_measured": round(est.total / got["peak_rss_bytes"], 3),
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| d | steps | measured peak RSS GiB | estimate GiB | estimate / measured | run s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dim']:.0e} | {r['steps']} | {r['measured_peak_rss_bytes'] / 2**30:.2f} | "
            f"{r['estimate_bytes'] / 2**30:.2f} | {r['estimate_over_measured']:.2f} | {r['wall_s']} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", nargs="+", type=float, default=[1e4, 1e5, 1e6])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench_memory.json"))
    args = ap.parse_args()
    import torch

    result = {
        "command": "python benchmarks/bench_memory.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows": [],
    }
    for d in args.dims:
        row = run_row(int(d), args.steps)
        result["rows"].append(row)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({k: v for k, v in row.items() if k not in ("spec", "estimate_parts")}), flush=True)
    print(table(result["rows"]))


if __name__ == "__main__":
    main()
