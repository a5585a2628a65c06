"""Admission estimate against measured peak RSS: small real solves, one fresh process each.

    python benchmarks/bench_memory.py [--dims 1e4 1e5 1e6] [--out docs/bench_memory.json]
    python benchmarks/bench_memory.py --phases [--dims 1e6] [--batches 16] [--out docs/bench_memory_phases.json]
    python benchmarks/bench_memory.py --bound [--dims 1e6 1e7] [--batches 16 100] [--steps 3] [--test-points 50]
        [--out docs/bench_memory_bound.json]

``--phases`` (issue 12): in one process (one thread), a Solver at ``--dims`` (first value) and batch ``--batches``
(first value) performs each phase of a run once (save and restore a checkpoint, evaluate, export, write samples,
a step) and records its resident-set rise above the level before it (RSS sampled every 2 ms), beside the old
‖W₁‖_F (``float(W₁.double().norm())``) and the blocked one (``probes_gauss_newton.frobenius``).

``--bound`` (issue 12): each row runs ``/usr/bin/time -v python -m service.cli solve SPEC --out DIR --quiet`` (one
torch thread) on sine_gordon_two_body with width 128, depth 4, the default method, an evaluation at step 0 and at
the last step (so the best state is checkpointed and exported), and compares the solve's peak RSS (``time``'s
maximum resident set size) with the bound 2 × weights + batch + 0.5 GiB = 2·4P + 4Nd + 0.5 GiB, beside the
admission estimate. Each row records the load average before and after it.

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


GiB = 1 << 30

PHASES = r"""
import json, os, sys, threading, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from safetensors.torch import load_file
from sdze_core.engine.probes_gauss_newton import frobenius
from sdze_core.solver import Solver, write_samples
from sdze_core.spec import JobSpec
PAGE = os.sysconf("SC_PAGE_SIZE")
peak = [0]
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE
def sample():
    while True:
        peak[0] = max(peak[0], rss())
        time.sleep(0.002)
threading.Thread(target=sample, daemon=True).start()
spec, out = json.loads(sys.argv[1]), Path(sys.argv[2])
s = Solver(JobSpec.model_validate(spec).to_config())
rows = []
def phase(name, fn):
    time.sleep(0.05)
    base = rss()
    peak[0] = base
    t0 = time.perf_counter()
    fn()
    time.sleep(0.05)
    rows.append({"phase": name, "before_bytes": base, "rise_bytes": peak[0] - base, "s": time.perf_counter() - t0})
W1 = s.model.W[0]
phase("norm W1: float(W1.double().norm())", lambda: float(W1.double().norm()))
phase("norm W1: frobenius (float32 row pieces, float64 sum)", lambda: frobenius(W1))
phase("save_checkpoint", lambda: s.save_checkpoint(out / "ck"))
phase("load_checkpoint", lambda: s.load_checkpoint(out / "ck"))
old_restore = lambda: s.load_state_tensors(load_file(str(out / "ck" / "state.safetensors")))  # noqa: E731
phase("load_state_tensors(load_file(...)): the old restore", old_restore)
phase("evaluate (test set + held-out residual)", s.evaluate_test)
phase("export (model.safetensors + samples.npz)", lambda: s.export(out / "export"))
phase("write_samples", lambda: write_samples(s, out / "samples.npz"))
phase("step 0 (batch + update)", lambda: s.local_step(0))
phase("step 1 (batch + update)", lambda: s.local_step(1))
print(json.dumps(rows))
"""


def phases(dim: int, batch: int) -> dict:
    """Each phase's resident-set rise in one fresh process (``PHASES``)."""
    spec = {
        "problem": {"name": "sine_gordon_two_body", "dim": dim},
        "model": {"width": 128, "depth": 4},
        "solver": {"steps": 10, "batch_size": batch},
        "eval": {"test_points": 50, "sample_points": 16},
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as out:
        p = subprocess.run(
            [sys.executable, "-c", PHASES, json.dumps(spec), out], cwd=ROOT, env=env, capture_output=True, text=True
        )
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-3000:])
    from sdze_core.memory import param_count

    return {
        "dim": dim,
        "batch_size": batch,
        "spec": spec,
        "weights_bytes": 4 * param_count(dim, 128, 4),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "phases": json.loads(p.stdout.strip().splitlines()[-1]),
    }


def bound_spec(dim: int, batch: int, steps: int, test_points: int) -> dict:
    return {
        "problem": {"name": "sine_gordon_two_body", "dim": dim},
        "model": {"width": 128, "depth": 4},
        "solver": {"steps": steps, "batch_size": batch},
        "eval": {"test_points": test_points, "every": steps, "sample_points": 16},
    }


def bound_row(dim: int, batch: int, steps: int, test_points: int) -> dict:
    """One ``sdze solve`` under /usr/bin/time -v: peak RSS against 2 × weights + batch + 0.5 GiB."""
    from sdze_core.memory import estimate, param_count
    from sdze_core.spec import JobSpec

    spec = bound_spec(dim, batch, steps, test_points)
    cfg = JobSpec.model_validate(spec).to_config()
    weights = 4 * param_count(dim, 128, 4)
    bound = 2 * weights + 4 * batch * dim + GiB // 2
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        out = Path(tmp) / "out"
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "service.cli", "solve", str(spec_path), "--out", str(out)]
        t0 = time.perf_counter()
        p = subprocess.run([*cmd, "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError(p.stderr[-3000:])
        metrics = json.loads((out / "metrics.json").read_text())
    kib = next(int(x.split(":")[1]) for x in p.stderr.splitlines() if "Maximum resident set size" in x)
    peak = kib * 1024
    return {
        "dim": dim,
        "batch_size": batch,
        "steps": steps,
        "test_points": test_points,
        "spec": spec,
        "command": "OMP_NUM_THREADS=1 /usr/bin/time -v python -m service.cli solve SPEC --out DIR --quiet",
        "status": metrics["status"],
        "exported_state": metrics.get("exported_state"),
        "best_step": metrics.get("best_step"),
        "aniso_ratio": metrics.get("aniso_ratio"),
        "solve_wall_s": round(wall, 1),
        "train_s": metrics.get("wall_s"),
        "eval_s": metrics.get("eval_s"),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "weights_bytes": weights,
        "batch_bytes": 4 * batch * dim,
        "bound_bytes": bound,
        "measured_peak_rss_bytes": peak,
        "metrics_peak_rss_bytes": metrics.get("peak_rss_bytes"),
        "within_bound": peak <= bound,
        "measured_over_bound": round(peak / bound, 3),
        "estimate_bytes": estimate(cfg).total,
    }


def bound_table(rows: list[dict]) -> str:
    lines = [
        "| d | N | steps | peak RSS GiB | bound GiB (2W + batch + 0.5) | peak / bound | weights GiB | estimate GiB | "
        "status | solve s | load (1-min, before → after) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dim']:.0e} | {r['batch_size']} | {r['steps']} | {r['measured_peak_rss_bytes'] / GiB:.2f} | "
            f"{r['bound_bytes'] / GiB:.2f} | {r['measured_over_bound']:.2f} | {r['weights_bytes'] / GiB:.2f} | "
            f"{r['estimate_bytes'] / GiB:.2f} | {r['status']} | {r['solve_wall_s']} | "
            f"{r['load_before'][0]} → {r['load_after'][0]} |"
        )
    return "\n".join(lines)


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
    ap.add_argument("--out", default=None)
    ap.add_argument("--bound", action="store_true", help="sdze solve's peak RSS against 2 x weights + batch + 0.5 GiB")
    ap.add_argument("--phases", action="store_true", help="each phase's resident-set rise in one process")
    ap.add_argument("--batches", nargs="+", type=int, default=[16, 100])
    ap.add_argument("--test-points", type=int, default=50)
    args = ap.parse_args()
    import torch

    if args.phases:
        out = Path(args.out or ROOT / "docs" / "bench_memory_phases.json")
        result = {
            "command": "python benchmarks/bench_memory.py " + " ".join(sys.argv[1:]),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **phases(int(args.dims[0]), args.batches[0]),
        }
        out.write_text(json.dumps(result, indent=2) + "\n")
        for r in result["phases"]:
            print(f"{r['phase']:45s} rise {r['rise_bytes'] / GiB:7.3f} GiB  {r['s']:.2f} s")
        return
    if args.bound:
        out = Path(args.out or ROOT / "docs" / "bench_memory_bound.json")
        result = {
            "command": "python benchmarks/bench_memory.py " + " ".join(sys.argv[1:]),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "rows": [],
        }
        for d in args.dims:
            for n in args.batches:
                result["rows"].append(bound_row(int(d), n, args.steps, args.test_points))
                out.write_text(json.dumps(result, indent=2) + "\n")
                print(json.dumps({k: v for k, v in result["rows"][-1].items() if k != "spec"}), flush=True)
        print(bound_table(result["rows"]))
        return
    args.out = args.out or str(ROOT / "docs" / "bench_memory.json")

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
