"""Step cost of ``sdze`` against ``sdgd_adam`` at low d (issue 12: an ``sdze`` step ≤ 5× an ``sdgd_adam`` step at
d = 10^3), timed in one process, interleaved.

    OMP_NUM_THREADS=1 python benchmarks/bench_step_cost.py [--dims 1000 10000] [--steps 30] [--warmup 3]
        [--chain] [--label TEXT] [--out docs/bench_step_cost.json]

Both solvers are built from the default job specs ``{"problem": {"name": "sine_gordon_two_body", "dim": d},
"solver": {"method": M}}`` (N = 100, width 128, depth 4, float32; ``sdze``'s default Gauss–Newton step with exact
W₁ Jacobian and q = 8 forward-mode probes). After ``--warmup`` steps of each, ``--steps`` steps are timed
alternately (sdze step t, sdgd_adam step t, sdze step t+1, …) so that both see the same machine load at the same
moments; every figure is the median over the timed steps, in wall and in process CPU seconds, and the ratio is
sdze / sdgd_adam of the medians. One torch thread (``torch.set_num_threads(1)``). A step is ``Solver.local_step(t)``:
drawing the batch and the whole update (for sdze: Gauss–Newton probe pass, LM solve, backtracking trials, apply).
``--chain`` also times one order-2 tanh dual at the default step's shapes, eager against ``torch.compile``. Results
are appended to ``--out`` (a JSON list of runs); glibc ``MALLOC_*`` settings in the environment are recorded
in the run's command.
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


def chain(repeats: int) -> dict:
    """One order-2 tanh dual (``tangent.tanh_jet_dual``) at a default step's shapes (Q = 12 channels, N = 100,
    S = 16, h = 128, float32), the engine's eager in-place code against ``torch.compile`` of the same function
    (fresh outputs, static shapes), median wall ms of ``repeats`` calls after one; the compile time is the first
    call's. The in-place timing includes restoring the inputs (a copy of ż₁, ż₂), timed apart and subtracted."""
    from sdze_core.tangent import tanh_jet_dual

    Q, N, S, h = 12, 100, 16, 128
    g = torch.Generator().manual_seed(0)
    z = [torch.randn(N, 1, h, generator=g), torch.randn(N, S, h, generator=g), torch.randn(N, S, h, generator=g)]
    zd = [torch.randn(Q, N, 1, h, generator=g), torch.randn(Q, N, S, h, generator=g)]
    zd.append(torch.randn(Q, N, S, h, generator=g))
    work = [c.clone() for c in zd]

    def restore():
        for w, c in zip(work, zd, strict=True):
            w.copy_(c)

    def in_place():
        restore()
        tanh_jet_dual(z, work, overwrite=True)

    def fresh(*args):
        return tanh_jet_dual(list(args[:3]), list(args[3:]))[1]

    def median_ms(fn) -> float:
        fn()
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts) * 1e3

    out = {"eager_fresh_ms": median_ms(lambda: fresh(*z, *zd))}
    out["eager_in_place_ms"] = median_ms(in_place) - median_ms(restore)
    t0 = time.perf_counter()
    compiled = torch.compile(fresh, dynamic=False)
    got = compiled(*z, *zd)
    out["compile_s"] = time.perf_counter() - t0
    out["compiled_ms"] = median_ms(lambda: compiled(*z, *zd))
    want = fresh(*z, *zd)
    out["compiled_max_rel_diff"] = max(
        float((a - b).abs().max() / b.abs().max()) for a, b in zip(got, want, strict=True) if b is not None
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[1000])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--chain", action="store_true", help="also time one tanh dual: eager vs torch.compile")
    ap.add_argument("--label", default="", help="free text stored with the result (e.g. before/after)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = {
        "label": args.label,
        "command": " ".join(
            [f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_")]
            + ["OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "unset"), "python"]
            + sys.argv
        ),
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
    if args.chain:
        out["chain"] = chain(args.steps)
        print("tanh dual (order 2, Q = 12):", json.dumps(out["chain"]), flush=True)
    out["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.out:
        runs = []
        if args.out.exists():
            runs = json.loads(args.out.read_text()).get("runs", [])
        runs.append(out)
        args.out.write_text(json.dumps({"runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
