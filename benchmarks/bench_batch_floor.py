"""Batch cost against the hardware floor at high d (issue 12): what drawing points and evaluating the source costs,
against the least any batch + two-body source needs, and against whole optimizer steps.

    OMP_NUM_THREADS=1 python benchmarks/bench_batch_floor.py [--dim 1e6] [--batches 16 100] [--repeats 5]
        [--steps 3] [--lifetime 1] [--adam-lifetime 1] [--out docs/bench_batch_floor.json]

One torch thread; every figure is the median of ``--repeats`` timings (``--steps`` for whole steps, after one
warm-up step). Per batch size N, on ``sine_gordon_two_body`` at ``--dim`` d (width 128, depth 4, float32):

- floor:     ``torch.randn`` of N×d float32 into a preallocated buffer, plus one pass each of ``sin`` and ``cos``
             over it (preallocated outputs): the Gaussians a batch needs and the least transcendental work its
             two-body source needs (the source itself needs two such passes: sin/cos of x, then of φ);
- floor64:   the same Gaussians, their widening to float64 and two passes of float64 ``sin`` and ``cos``: the least
             work of the source as it is computed (float64, so that sums over d terms keep their digits);
- points:    ``sampling.sample_points`` (the radial law: Gaussians, uniform radii, row norms, scaling);
- source:    ``residual.source_chunked`` (f(x): per-term work in the points' float32, sums in float64 since
             commit 1b3a247, float64 throughout before; cast back: what a step's batch pays);
- batch:     a step's whole batch as the engines draw it (``BatchSource.get``: points, directions, boundary jet,
             source);
- sdze, sdgd_adam: whole steps (batch + update) through ``Solver.local_step``, the update timed apart; each with
             its points' lifetime (``--lifetime`` for sdze, ``--adam-lifetime`` for sdgd_adam; knob
             ``point_lifetime``: 1/L of the batch drawn and evaluated per step).

Every figure is also recorded in process CPU seconds (``cpu``, ``cpu_ratios``): on a shared machine the wall clock
stretches with the load, CPU time much less. Ratios: batch / floor, (points + source) / floor, whole sdze step /
floor and / whole sdgd_adam step (issue 12's targets: ≤ 3× the floor and ≤ 0.5× sdgd_adam at d = 10^6). The JSON
is rewritten after every batch size.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


CPU: dict[str, float] = {}  # the same medians in process CPU seconds (what a shared, loaded machine distorts least)


def median_time(fn, repeats: int, key: str | None = None) -> float:
    """Median wall seconds of ``repeats`` calls; the median CPU seconds go to ``CPU[key]``."""
    ts, cs = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    if key:
        CPU[key] = statistics.median(cs)
    return statistics.median(ts)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def floor_parts(n: int, d: int, repeats: int) -> dict:
    import torch

    gen = torch.Generator().manual_seed(0)
    buf, s, c = (torch.empty(n, d) for _ in range(3))
    randn = median_time(lambda: torch.randn(n, d, generator=gen, out=buf), repeats, "randn_s")
    sin = median_time(lambda: torch.sin(buf, out=s), repeats, "sin_s")
    cos = median_time(lambda: torch.cos(buf, out=c), repeats, "cos_s")
    s = c = None  # free them before the float64 buffers
    wide, s64 = torch.empty(n, d, dtype=torch.float64), torch.empty(n, d, dtype=torch.float64)
    cast = median_time(lambda: wide.copy_(buf), repeats, "cast64_s")
    sin64 = median_time(lambda: torch.sin(wide, out=s64), repeats, "sin64_s")
    cos64 = median_time(lambda: torch.cos(wide, out=s64), repeats, "cos64_s")
    return {
        "randn_s": randn,
        "sin_s": sin,
        "cos_s": cos,
        "floor_s": randn + sin + cos,
        "cast64_s": cast,
        "sin64_s": sin64,
        "cos64_s": cos64,
        # what our float64 source cannot avoid: the Gaussians, the widening, sin and cos of x and of φ in float64
        "floor64_s": randn + cast + 2 * (sin64 + cos64),
    }


def ours(n: int, d: int, repeats: int) -> dict:
    import torch

    from sdze_core.problems import make_problem
    from sdze_core.residual import source_chunked
    from sdze_core.sampling import sample_points

    problem = make_problem("sine_gordon_two_body", d)
    gen = torch.Generator().manual_seed(1)
    points = median_time(lambda: sample_points(problem, n, gen), repeats, "points_s")
    x = sample_points(problem, n, gen)
    source = median_time(lambda: source_chunked(problem, x).to(torch.float32), repeats, "source_s")
    return {"points_s": points, "source_s": source}


def steps(method: str, n: int, d: int, k: int, lifetime: int = 1) -> dict:
    """Median batch and update seconds of ``k`` steps after one warm-up step, as bench_core's ladder times them."""
    from bench_core import BASELINE_SETTINGS

    from sdze_core.solver import Solver
    from sdze_core.spec import JobSpec

    extra = BASELINE_SETTINGS if method == "sdgd_adam" else {}
    spec = JobSpec.model_validate(
        {
            "problem": {"name": "sine_gordon_two_body", "dim": d},
            "model": {"width": 128, "depth": 4},
            "solver": {
                "method": method,
                "batch_size": n,
                "steps": 10**6,
                "point_lifetime": lifetime,
                **{"samples": 16, **extra},
            },
            "eval": {"test_points": 16, "every": 10**7},
        }
    )
    solver = Solver(spec.to_config())
    tb, tu, cb, cu = [], [], [], []
    for t in range(k + lifetime):  # the first ``lifetime`` steps draw whole groups for the first time: warm-up
        a, ca = time.perf_counter(), time.process_time()
        solver.engine.batches.get(t, 0)
        b, cb0 = time.perf_counter(), time.process_time()
        solver.local_step(t)
        c, cc = time.perf_counter(), time.process_time()
        if t >= lifetime:
            tb.append(b - a)
            tu.append(c - b)
            cb.append(cb0 - ca)
            cu.append(cc - cb0)
    batch, update = statistics.median(tb), statistics.median(tu)
    cpu_batch, cpu_update = statistics.median(cb), statistics.median(cu)
    return {
        "batch_s": batch,
        "update_s": update,
        "step_s": batch + update,
        "cpu": {"batch_s": cpu_batch, "update_s": cpu_update, "step_s": cpu_batch + cpu_update},
        "point_lifetime": lifetime,
    }


def row(n: int, d: int, repeats: int, k: int, lifetime: int = 1, adam_lifetime: int = 1) -> dict:
    r = {"batch_size": n, "dim": d, "load_before": load()}
    CPU.clear()
    r["floor"] = floor_parts(n, d, repeats)
    r["ours"] = ours(n, d, repeats)
    c = dict(CPU)
    c["floor_s"] = c["randn_s"] + c["sin_s"] + c["cos_s"]
    c["floor64_s"] = c["randn_s"] + c["cast64_s"] + 2 * (c["sin64_s"] + c["cos64_s"])
    r["cpu"] = c
    r["sdze"] = steps("sdze", n, d, k, lifetime)
    r["sdgd_adam"] = steps("sdgd_adam", n, d, k, adam_lifetime)
    r["load_after"] = load()
    f = r["floor"]["floor_s"]
    o = r["ours"]
    r["ratios"] = {
        "points_over_randn": o["points_s"] / r["floor"]["randn_s"],
        "points_plus_source_over_floor": (o["points_s"] + o["source_s"]) / f,
        "points_plus_source_over_floor64": (o["points_s"] + o["source_s"]) / r["floor"]["floor64_s"],
        "batch_over_floor": r["sdze"]["batch_s"] / f,
        "sdze_step_over_floor": r["sdze"]["step_s"] / f,
        "sdze_step_over_sdgd_adam_step": r["sdze"]["step_s"] / r["sdgd_adam"]["step_s"],
        "sdze_update_over_sdgd_adam_update": r["sdze"]["update_s"] / r["sdgd_adam"]["update_s"],
    }
    z, a = r["sdze"]["cpu"], r["sdgd_adam"]["cpu"]
    r["cpu_ratios"] = {
        "points_plus_source_over_floor": (c["points_s"] + c["source_s"]) / c["floor_s"],
        "points_plus_source_over_floor64": (c["points_s"] + c["source_s"]) / c["floor64_s"],
        "batch_over_floor": z["batch_s"] / c["floor_s"],
        "sdze_step_over_floor": z["step_s"] / c["floor_s"],
        "sdze_step_over_sdgd_adam_step": z["step_s"] / a["step_s"],
    }
    return r


def cpu_table(rows: list[dict]) -> str:
    lines = [
        "| N | CPU s: floor | floor64 | points + source | batch | sdze step | sdgd_adam step "
        "| (points + source) / floor | … / floor64 | sdze step / floor | sdze / sdgd_adam |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c, z, a, q = r["cpu"], r["sdze"]["cpu"], r["sdgd_adam"]["cpu"], r["cpu_ratios"]
        lines.append(
            f"| {r['batch_size']} | {c['floor_s']:.3g} | {c['floor64_s']:.3g} | {c['points_s'] + c['source_s']:.3g} | "
            f"{z['batch_s']:.3g} | {z['step_s']:.3g} | {a['step_s']:.3g} | {q['points_plus_source_over_floor']:.1f} | "
            f"{q['points_plus_source_over_floor64']:.1f} | {q['sdze_step_over_floor']:.1f} | "
            f"{q['sdze_step_over_sdgd_adam_step']:.2f} |"
        )
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    lines = [
        "| N | floor s (randn + sin + cos) | floor64 s | points s | source s | batch s | sdze update s | sdze step s | "
        "sdgd_adam step s | (points + source) / floor | … / floor64 | sdze step / floor | sdze / sdgd_adam |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        fl, o, z, a, q = r["floor"], r["ours"], r["sdze"], r["sdgd_adam"], r["ratios"]
        lines.append(
            f"| {r['batch_size']} | {fl['floor_s']:.3g} ({fl['randn_s']:.3g} + {fl['sin_s']:.3g} + {fl['cos_s']:.3g}) "
            f"| {fl['floor64_s']:.3g} | {o['points_s']:.3g} | {o['source_s']:.3g} | {z['batch_s']:.3g} | "
            f"{z['update_s']:.3g} | {z['step_s']:.3g} | {a['step_s']:.3g} | "
            f"{q['points_plus_source_over_floor']:.1f} | {q['points_plus_source_over_floor64']:.1f} | "
            f"{q['sdze_step_over_floor']:.1f} | "
            f"{q['sdze_step_over_sdgd_adam_step']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=float, default=1e6)
    ap.add_argument("--batches", nargs="+", type=int, default=[16, 100])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--lifetime", type=int, default=1, help="sdze's point_lifetime")
    ap.add_argument("--adam-lifetime", type=int, default=1, help="sdgd_adam's point_lifetime")
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench_batch_floor.json"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    result = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/bench_batch_floor.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
        "threads": torch.get_num_threads(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows": [],
    }
    for n in args.batches:
        result["rows"].append(row(n, int(args.dim), args.repeats, args.steps, args.lifetime, args.adam_lifetime))
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result["rows"][-1]), flush=True)
    print(table(result["rows"]))
    print(cpu_table(result["rows"]))


if __name__ == "__main__":
    main()
