"""Scaling of the Ray worker group: perturbations/second with 1 and N workers, and bytes per step vs DDP's 4P.

Each worker is one Ray actor with one torch thread (one CPU bundle). For each dimension the same spec runs
with 1 and with N workers through ``RayExecutor`` (the executor ``sdze solve --workers N`` uses), after one
warm-up step; throughput counts every evaluated probe (N·q per step). Bytes per step are what the executor
accounts (``comm_bytes``: N · Σ payload) and the pickled size of the gathered list, against 4P for a
data-parallel all-reduce of the same model.

    python benchmarks/bench_workers.py                 # d = 1e4 and 1e6, writes the table into docs/distributed.md
    python benchmarks/bench_workers.py --dims 10000 --steps 3 --no-write
    python benchmarks/bench_workers.py --dims 10000 --methods sdze --no-write --ceiling   # + the machine's ceiling

``--ceiling`` adds the same work as N independent single-threaded processes without Ray (whole local steps over a
common wall-clock window): on a small machine the cores' shared memory bandwidth and Ray's own daemons bound what
N workers can reach, and this says by how much.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "distributed.md"
sys.path.insert(0, str(ROOT))  # the package, for the ``_solo`` children run as a script
START, END = "<!-- bench_workers:start -->", "<!-- bench_workers:end -->"


def spec_for(dim: int, workers: int, method: str, args: argparse.Namespace):
    from sdze_core.spec import JobSpec

    big = dim >= 10**6
    return JobSpec.model_validate(
        {
            "problem": {"name": "sine_gordon_two_body", "dim": dim, "seed": 0},
            "model": {"width": args.width_large if big else args.width, "depth": 4},
            "solver": {
                "method": method,
                "steps": 10_000,
                "batch_size": args.batch_large if big else args.batch,
                "samples": args.samples,
                "q": args.q,
            },
            "resources": {"workers": workers},
            "seed": 0,
        }
    )


def measure(dim: int, workers: int, method: str, args: argparse.Namespace) -> dict:
    from sdze_core.solver import initial_horizon
    from worker.executor import RayExecutor

    cfg = spec_for(dim, workers, method, args).to_config()
    t0 = time.perf_counter()
    ex = RayExecutor(cfg, check_every=10**9)  # replica checks are measured separately, not per step here
    start_s = time.perf_counter() - t0
    try:
        ex.set_horizon(initial_horizon(cfg))
        ex.step(0)  # warm-up: first-touch allocations, lazy imports
        import ray

        cpu0 = ray.get([a.cpu_seconds.remote() for a in ex.actors])
        t0 = time.perf_counter()
        for t in range(1, args.steps + 1):
            res = ex.step(t)
        dt = time.perf_counter() - t0
        cpu = sum(ray.get([a.cpu_seconds.remote() for a in ex.actors])) - sum(cpu0)
        last = ex.exchange_log[-1] if ex.exchange_log else None
        params = ex.describe()["params"]
        t1 = time.perf_counter()
        ex.check_replicas(force=True)
        check_s = time.perf_counter() - t1
    finally:
        ex.close()
    return {
        "method": method,
        "dim": dim,
        "workers": workers,
        "width": cfg.model.width,
        "batch": cfg.solver.batch_size,
        "q": cfg.solver.zo.q,
        "params": params,
        "step_s": dt / args.steps,
        "cpu_share": cpu / (workers * dt),  # 1.0 = every worker had a core to itself the whole time
        "pert_per_s": workers * cfg.solver.zo.q * args.steps / dt,
        "comm_bytes": res.comm_bytes,
        "pickled": last.pickled_bytes if last else 0,
        "payload": last.payload_bytes[0] if last else 0,
        "allreduce": 4 * params,
        "start_s": start_s,
        "check_s": check_s,
    }


def solo(dim: int, method: str, start_at: float, seconds: float, args: argparse.Namespace) -> dict:
    """One process, one torch thread, no Ray: whole local steps from ``start_at`` (wall clock) for ``seconds``."""
    import torch

    from sdze_core.solver import LocalExecutor, initial_horizon

    torch.set_num_threads(1)
    cfg = spec_for(dim, 1, method, args).to_config()
    ex = LocalExecutor(cfg)
    ex.set_horizon(initial_horizon(cfg))
    ex.step(0)  # warm-up
    time.sleep(max(0.0, start_at - time.time()))
    t0, steps = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        steps += 1
        ex.step(steps)
    return {"steps": steps, "seconds": time.perf_counter() - t0, "q": cfg.solver.zo.q}


def ceiling(dim: int, method: str, n: int, args: argparse.Namespace) -> dict:
    """The machine's own scaling: n independent single-threaded processes (no Ray, no exchange) stepping over the
    same wall-clock window; perturbations/s summed over them. What n Ray workers could reach at best here."""
    import subprocess

    start_at = time.time() + args.solo_setup_s
    cmd = [sys.executable, __file__, "_solo", str(dim), method, str(start_at), str(args.solo_seconds)]
    cmd += ["--q", str(args.q), "--width", str(args.width), "--batch", str(args.batch), "--samples", str(args.samples)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) for _ in range(n)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return {
        "method": method,
        "dim": dim,
        "processes": n,
        "pert_per_s": sum(o["q"] * o["steps"] / o["seconds"] for o in outs),
        "steps": [o["steps"] for o in outs],
    }


def table(rows: list[dict], args: argparse.Namespace) -> str:
    base = {(r["method"], r["dim"]): r for r in rows if r["workers"] == 1}
    out = [
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} with {os.cpu_count()} cores, "
        f"q = {args.q} probes per worker per step, depth 4, one torch thread per worker, "
        f"{args.steps} timed steps after one warm-up (`python benchmarks/bench_workers.py`). "
        f"Load average at the end: {os.getloadavg()[0]:.1f} (shared machine: absolute numbers are noisy).",
        "",
        "| method | d | width | batch | P | workers | step (s) | worker CPU share "
        "| perturbations/s | scaling | bytes/step (all-gather) "
        "| pickled list | DDP all-reduce 4P | 4P / bytes | replica check (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = base.get((r["method"], r["dim"]))
        scale = f"{r['pert_per_s'] / b['pert_per_s']:.2f}×" if b and r["workers"] > 1 else "1"
        ratio = f"{r['allreduce'] / r['comm_bytes']:.0f}×" if r["comm_bytes"] else "—"
        out.append(
            f"| `{r['method']}` | {r['dim']:.0e} "
            f"| {r['width']} | {r['batch']} | {r['params']:,} | {r['workers']} "
            f"| {r['step_s']:.3f} | {r['cpu_share']:.0%} "
            f"| {r['pert_per_s']:.1f} | {scale} | {r['comm_bytes']:,} | {r['pickled']:,} | {r['allreduce']:,} "
            f"| {ratio} | {r['check_s']:.2f} |"
        )
    return "\n".join(out)


def ceiling_table(args: argparse.Namespace) -> str:
    """The same methods and dimensions as independent processes (``ceiling``): the machine's scaling ceiling."""
    out = [
        f"Independent processes, no Ray (`--ceiling`): each one torch thread, whole local steps over the same "
        f"{args.solo_seconds:.0f} s window; what {args.workers} workers could reach at best on this machine.",
        "",
        "| method | d | processes | steps each | perturbations/s | scaling |",
        "|---|---|---|---|---|---|",
    ]
    for dim in args.dims:
        for method in args.methods:
            one = ceiling(dim, method, 1, args)
            many = ceiling(dim, method, args.workers, args)
            print(one, many, flush=True)
            for r in (one, many):
                scale = f"{r['pert_per_s'] / one['pert_per_s']:.2f}×" if r is many else "1"
                out.append(f"| `{method}` | {dim:.0e} | {r['processes']} | {r['steps']} | {r['pert_per_s']:.1f} "
                           f"| {scale} |")  # fmt: skip
    return "\n".join(out)


def write_doc(text: str) -> None:
    block = f"{START}\n{text}\n{END}"
    doc = DOC.read_text() if DOC.exists() else "# Distributed SDZE\n"
    if START in doc:
        doc = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, doc, flags=re.S)
    else:
        doc = doc.rstrip() + "\n\n## Measured scaling (benchmarks/bench_workers.py)\n\n" + block + "\n"
    DOC.write_text(doc)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dims", type=int, nargs="+", default=[10_000, 1_000_000])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--methods", nargs="+", default=["sdze", "sdze_published"])
    p.add_argument("--q", type=int, default=8)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--width-large", type=int, default=32, help="width at d ≥ 1e6 (keeps the run to minutes)")
    p.add_argument("--batch-large", type=int, default=8, help="collocation points per worker at d ≥ 1e6")
    p.add_argument("--no-write", action="store_true", help="print only; do not update docs/distributed.md")
    p.add_argument("--ceiling", action="store_true", help="also: 1 and N independent processes without Ray")
    p.add_argument("--solo-seconds", type=float, default=30.0, help="--ceiling: each process's timed window")
    p.add_argument("--solo-setup-s", type=float, default=20.0, help="--ceiling: time allowed to build the solvers")
    if len(sys.argv) > 1 and sys.argv[1] == "_solo":  # a child of --ceiling
        dim, method, start_at, seconds = sys.argv[2:6]
        args = p.parse_args(sys.argv[6:])
        print(json.dumps(solo(int(dim), method, float(start_at), float(seconds), args)))
        return
    args = p.parse_args()

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(num_cpus=max(args.workers, 2), include_dashboard=False, log_to_driver=False)
    rows = []
    try:
        for dim in args.dims:
            for method in args.methods:
                for n in (1, args.workers):
                    r = measure(dim, n, method, args)
                    print(r, flush=True)
                    rows.append(r)
    finally:
        ray.shutdown()
    text = table(rows, args)
    if args.ceiling:
        text += "\n\n" + ceiling_table(args)
    print(text)
    if not args.no_write:
        write_doc(text)
        print(f"updated {DOC}")


if __name__ == "__main__":
    main()
