"""Source-term cost: hand-written closed form vs the compiled PDE language (given and derived source).

Times ``residual.source_chunked`` (what a training step calls: float64, rows chunked to 2^22 numbers) of
each catalogue problem built three ways, at the dimensions given, N points; median of ``--reps`` interleaved
runs after one warm-up each. Prints a Markdown table and writes JSON beside it.

    OMP_NUM_THREADS=1 python benchmarks/bench_pde.py --dims 1000000 --n 100 --reps 5 --out docs/bench_pde.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from sdze_core.pde.catalogue import catalogue_spec
from sdze_core.pde.problem import problem_from_spec
from sdze_core.problems import make_problem
from sdze_core.residual import source_chunked
from sdze_core.sampling import sample_points


def _time_interleaved(fns: dict, reps: int) -> dict[str, float]:
    """Median seconds of each function; runs are interleaved (a, b, c, a, b, c, …) after one warm-up each,
    so that load from other processes on a shared machine falls on all of them alike."""
    for fn in fns.values():
        fn()
    ts: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            ts[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in ts.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", default="sine_gordon_two_body")
    ap.add_argument("--dims", default="1000000")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    rows = []
    for name in a.problems.split(","):
        for d in (int(v) for v in a.dims.split(",")):
            hand = make_problem(name, d, seed=0)
            comp = problem_from_spec(catalogue_spec(name, d, seed=0))
            x = sample_points(hand, a.n, torch.Generator().manual_seed(0), torch.float32)
            fh = source_chunked(hand, x)
            fc = source_chunked(comp, x)
            fns = {
                "hand_s": lambda p=hand, x=x: source_chunked(p, x),
                "compiled_s": lambda p=comp, x=x: source_chunked(p, x),
            }
            row = {
                "problem": name,
                "d": d,
                "n": a.n,
                "compiled_max_rel_diff": float(((fc - fh).abs() / fh.abs().clamp_min(1e-300)).max()),
            }
            if comp.order == 2:
                der = problem_from_spec(catalogue_spec(name, d, seed=0, with_source=False))
                fd = source_chunked(der, x)
                fns["derived_s"] = lambda p=der, x=x: source_chunked(p, x)
                row["derived_max_rel_diff"] = float(((fd - fh).abs() / fh.abs().clamp_min(1e-300)).max())
            row.update(_time_interleaved(fns, a.reps))
            rows.append(row)
            print(json.dumps(row), flush=True)
    meta = {
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpu": platform.processor() or platform.machine(),
        "reps": a.reps,
    }
    print(f"\nthreads={meta['torch_threads']}  reps={a.reps} (median)\n")
    print("| problem | d | N | hand-written (s) | compiled source (s) | ratio | derived source (s) | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        der = f"{r['derived_s']:.3f} | {r['derived_s'] / r['hand_s']:.2f}x" if "derived_s" in r else "— | —"
        print(
            f"| {r['problem']} | {r['d']} | {r['n']} | {r['hand_s']:.3f} | {r['compiled_s']:.3f} | "
            f"{r['compiled_s'] / r['hand_s']:.2f}x | {der} |"
        )
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
