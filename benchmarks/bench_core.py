"""Core benchmarks: the cost ladder (seconds per step and peak memory against d) and accuracy against time.

    python benchmarks/bench_core.py ladder   [--dims 100,1000,...] [--steps 5]      → docs/bench_ladder.md
    python benchmarks/bench_core.py accuracy [--budget 120] [--seeds 0,1,2]       → docs/bench_accuracy.md
    python benchmarks/bench_core.py report --tags accuracy[,more] --out NAME     → docs/bench_NAME.{md,png}

Every (d, method) cell runs in its own process, so peak RSS is that method's alone. Step times are medians;
"batch" is the shared cost of drawing the step's points and evaluating the closed-form source f (identical
for every method, O(Nd)); "step" is the optimizer step given that batch; "floor" is one plain dense forward
pass of the network on the same batch (N × d × h multiply-adds in layer 1).
Accuracy rows always carry the constant null and aniso_ratio = rel_l2 / null_rel_l2.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
METHODS = ("sdze", "sdze_published", "sdgd_adam", "hte_adam")


# The first-order baselines run with the SDGD authors' settings (4 sampled dimensions, Adam lr 1e-3 decaying over
# 10 000 steps): at d = 1000 they reach the authors' 7.5e-3 in 60 s here, where 16 samples and a decay over the
# time budget sit at the constant null (docs/benchmarks.md). A weak baseline would make every ratio meaningless.
BASELINE_SETTINGS = {"samples": 4, "lr_decay_steps": 10_000}


def _spec(name: str, d: int, method: str, **solver):
    from sdze_core.spec import JobSpec

    return JobSpec.model_validate(
        {
            "problem": {"name": name, "dim": d},
            "model": {"width": 128, "depth": 4},
            "solver": {"method": method, "batch_size": 100, **{"samples": 16, **solver}},
            "eval": {
                "test_points": int(os.environ.get("BENCH_TEST_POINTS", 20000 if d <= 10**4 else 2000)),
                "every": 10**7,
            },
        }
    )


def estimated_bytes(d: int, method: str, width: int = 128, n: int = 100) -> int:
    """Rough peak need: parameters × copies + one float32 batch (+ its float64 chunks, small)."""
    P = width * (d + 1) + 2 * width * (width + 1) + width + 1
    copies = {"sdgd_adam": 4, "hte_adam": 4, "zo_full": 3}.get(method, 1)  # param+grad+2 Adam moments
    extra = 4 * n * d * (2 if method == "hte_adam" else 1)  # HTE: dense probe vectors too (S × d)
    return 4 * P * copies + 4 * n * d + extra


def measure(d: int, method: str, steps: int) -> dict:
    """One cell of the ladder, in this process."""
    import torch

    from sdze_core.solver import Solver

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    solver = Solver(_spec("sine_gordon_two_body", d, method, steps=10**6).to_config())
    src = solver.engine.batches
    tb, ts, tf = [], [], []
    for t in range(steps + 1):
        a = time.perf_counter()
        batch = src.get(t, 0)
        b = time.perf_counter()
        solver.local_step(t)
        c = time.perf_counter()
        with torch.no_grad():
            solver.model.forward(batch.x)
        e = time.perf_counter()
        if t > 0:  # the first step pays one-off allocations
            tb.append(b - a), ts.append(c - b), tf.append(e - c)
        batch = None  # do not hold this step's batch while the next one is drawn
    return {
        "d": d,
        "method": method,
        "batch_s": statistics.median(tb),
        "step_s": statistics.median(ts),
        "floor_s": statistics.median(tf),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "params": solver.model.num_params(),
        "weights_bytes": 4 * solver.model.num_params(),
        "batch_bytes": 4 * 100 * d,
    }


def ladder(dims: list[int], steps: int, budget_bytes: int) -> list[dict]:
    rows = []
    for d in dims:
        for method in METHODS:
            need = estimated_bytes(d, method)
            if need > budget_bytes:
                rows.append(
                    {
                        "d": d,
                        "method": method,
                        "skipped": f"needs ≈{need / 2**30:.1f} GiB > {budget_bytes / 2**30:.0f} GiB",
                    }
                )
                print(rows[-1], flush=True)
                continue
            n = steps if d < 10**6 else max(2, steps // 2)
            r = subprocess.run(
                [sys.executable, __file__, "_cell", str(d), method, str(n)],
                capture_output=True,
                text=True,
                timeout=3600,
            )
            if r.returncode != 0:
                rows.append({"d": d, "method": method, "skipped": "failed: " + r.stderr.strip().splitlines()[-1][:200]})
            else:
                rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    return rows


def ladder_table(rows: list[dict]) -> str:
    out = [
        "| d | method | batch s (shared) | step s | floor s | step / floor | peak RSS GiB | weights GiB | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "skipped" in r:
            out.append(f"| {r['d']:.0e} | {r['method']} | | | | | | | {r['skipped']} |")
            continue
        out.append(
            f"| {r['d']:.0e} | {r['method']} | {r['batch_s']:.3g} | {r['step_s']:.3g} | {r['floor_s']:.3g} | "
            f"{r['step_s'] / r['floor_s']:.1f} | {r['peak_rss_bytes'] / 2**30:.2f} | "
            f"{r['weights_bytes'] / 2**30:.2f} | |"
        )
    return "\n".join(out)


def accuracy_run(name: str, d: int, method: str, budget: float, seed: int) -> dict:
    """Train for ``budget`` seconds (evaluation excluded), evaluating at 8 points in time."""
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    extra = BASELINE_SETTINGS if method in ("sdgd_adam", "hte_adam") else {}
    spec = _spec(name, d, method, steps=None, time_limit_s=budget, **extra)
    spec = spec.model_copy(update={"seed": seed})
    from sdze_core.trainer import Trainer

    out = Path(os.environ.get("BENCH_OUT", "/tmp/sdze-bench")) / f"{name}-{d}-{method}-{seed}"
    cfg = spec.to_config()
    cfg = type(cfg)(**{**cfg.__dict__, "eval": type(cfg.eval)(**{**cfg.eval.__dict__, "every": 10**7})})
    curve = []
    tr = Trainer(cfg, out)
    marks = [budget * k / 8 for k in range(1, 9)]

    def progress(p):
        if marks and p.train_s >= marks[0]:
            marks.pop(0)
            m = tr._evaluate()
            curve.append((round(p.train_s, 1), m["rel_l2"]))

    tr.progress = progress
    m = tr.run()
    return {
        "problem": name,
        "d": d,
        "method": method,
        "seed": seed,
        "budget_s": budget,
        "rel_l2": m["rel_l2"],
        "best_rel_l2": m["best_rel_l2"],
        "null_rel_l2": m["null_rel_l2"],
        "aniso_ratio": m["aniso_ratio"],
        "steps": m["steps_done"],
        "step_s": m["step_s_median"],
        "curve": curve,
        "load_1min_end": round(os.getloadavg()[0], 2),  # the machine's load when the run ended (a noisy machine)
        "commit": subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
    }


def summarize(rows: list[dict]) -> tuple[str, list[tuple]]:
    """Seed-aggregated accuracy table (median and range of the final aniso_ratio; null on every row)."""
    groups: dict[tuple, list[dict]] = {}
    for x in rows:
        groups.setdefault((x["problem"], x["d"], x["method"]), []).append(x)
    lines = [
        "| problem | d | method | seeds | budget s | steps (median) | rel L2 final (median) | null (median) | "
        "aniso final: median [min, max] | aniso at ½ budget (median) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (name, d, method), xs in groups.items():
        aniso = [x["aniso_ratio"] for x in xs]
        half = [x["curve"][len(x["curve"]) // 2 - 1][1] / x["null_rel_l2"] for x in xs if len(x["curve"]) >= 2]
        lines.append(
            f"| {name} | {d} | {method} | {len(xs)} | {xs[0]['budget_s']:.0f} | "
            f"{statistics.median(x['steps'] for x in xs):.0f} | {statistics.median(x['rel_l2'] for x in xs):.3e} | "
            f"{statistics.median(x['null_rel_l2'] for x in xs):.3e} | {statistics.median(aniso):.3f} "
            f"[{min(aniso):.3f}, {max(aniso):.3f}] | {statistics.median(half) if half else float('nan'):.3f} |"
        )
    return "\n".join(lines), list(groups.items())


def leaders(groups: list[tuple]) -> str:
    """Median aniso over seeds at each evaluation mark (1/8 … 8/8 of the budget), one column per method, the lowest
    in bold: who leads when, per (problem, d). Marks are matched by index (each run evaluates at the same fractions
    of its own training time)."""
    cases = sorted({(n, d) for (n, d, _), _ in groups}, key=lambda c: (c[0], c[1]))
    out = []
    for name, d in cases:
        cols = [(m, xs) for (n2, d2, m), xs in groups if (n2, d2) == (name, d)]
        k = min(len(x["curve"]) for _, xs in cols for x in xs)
        out.append(f"{name}, d = {d}: median aniso at each mark (seconds: median over runs)\n")
        out.append("| mark | s | " + " | ".join(m for m, _ in cols) + " |")
        out.append("|---|---|" + "---|" * len(cols))
        for i in range(k):
            t = statistics.median(x["curve"][i][0] for _, xs in cols for x in xs)
            med = [statistics.median(x["curve"][i][1] / x["null_rel_l2"] for x in xs) for _, xs in cols]
            best = min(med)
            cells = [f"**{v:.3f}**" if v == best else f"{v:.3f}" for v in med]
            out.append(f"| {i + 1}/{k} | {t:.0f} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def plot_accuracy(groups: list[tuple], path: Path) -> None:
    """aniso_ratio against training seconds, one panel per (problem, d): median over seeds, min–max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = sorted({(n, d) for (n, d, _), _ in groups}, key=lambda c: (c[0], c[1]))
    fig, axes = plt.subplots(1, len(cases), figsize=(4.2 * len(cases), 3.6), squeeze=False)
    for ax, (name, d) in zip(axes[0], cases, strict=True):
        for (n2, d2, method), xs in groups:
            if (n2, d2) != (name, d):
                continue
            k = min(len(x["curve"]) for x in xs)
            if k == 0:
                continue
            t = [statistics.median(x["curve"][i][0] for x in xs) for i in range(k)]
            a = [[x["curve"][i][1] / x["null_rel_l2"] for x in xs] for i in range(k)]
            ax.plot(t, [statistics.median(v) for v in a], marker="o", ms=3, label=method)
            ax.fill_between(t, [min(v) for v in a], [max(v) for v in a], alpha=0.2)
        ax.axhline(1.0, color="k", lw=0.8, ls="--", label="constant null")
        ax.set_yscale("log")
        ax.set_title(f"{name}, d={d}", fontsize=9)
        ax.set_xlabel("training seconds (evaluation excluded)")
        ax.set_ylabel("rel L2 / null (aniso_ratio)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("ladder")
    a.add_argument("--dims", default="100,1000,10000,100000,1000000,10000000")
    a.add_argument("--steps", type=int, default=6)
    a.add_argument("--budget-gib", type=float, default=20.0)
    b = sub.add_parser("accuracy")
    b.add_argument("--cases", default="sine_gordon_two_body:1000,sine_gordon_two_body:10000,biharmonic_three_body:100")
    b.add_argument("--methods", default=",".join(METHODS))
    b.add_argument("--budget", type=float, default=120.0)
    b.add_argument("--seeds", default="0")
    b.add_argument("--tag", default="accuracy")
    r = sub.add_parser("report")
    r.add_argument("--tags", required=True, help="comma-separated accuracy tags (docs/bench_TAG.json) to merge")
    r.add_argument("--out", required=True)
    c = sub.add_parser("_cell")
    c.add_argument("d", type=int)
    c.add_argument("method")
    c.add_argument("steps", type=int)
    d = sub.add_parser("_acc")
    d.add_argument("name")
    d.add_argument("d", type=int)
    d.add_argument("method")
    d.add_argument("budget", type=float)
    d.add_argument("seed", type=int)
    args = ap.parse_args()
    DOCS.mkdir(exist_ok=True)
    if args.cmd == "_cell":
        print(json.dumps(measure(args.d, args.method, args.steps)))
    elif args.cmd == "_acc":
        print(json.dumps(accuracy_run(args.name, args.d, args.method, args.budget, args.seed)))
    elif args.cmd == "report":
        rows = [x for tag in args.tags.split(",") for x in json.loads((DOCS / f"bench_{tag}.json").read_text())]
        table, groups = summarize(rows)
        (DOCS / f"bench_{args.out}.md").write_text(
            f"<!-- python benchmarks/bench_core.py report --tags {args.tags} --out {args.out} -->\n{table}\n\n"
            f"{leaders(groups)}\n![accuracy against time](bench_{args.out}.png)\n"
        )
        plot_accuracy(groups, DOCS / f"bench_{args.out}.png")
        print(table)
    elif args.cmd == "ladder":
        rows = ladder([int(x) for x in args.dims.split(",")], args.steps, int(args.budget_gib * 2**30))
        (DOCS / "bench_ladder.json").write_text(json.dumps(rows, indent=1))
        table = ladder_table(rows)
        (DOCS / "bench_ladder.md").write_text(f"<!-- python benchmarks/bench_core.py ladder -->\n{table}\n")
        print(table)
    else:
        rows = []
        for case in args.cases.split(","):
            name, d = case.split(":")
            for seed in [int(s) for s in args.seeds.split(",")]:
                for method in args.methods.split(","):
                    r = subprocess.run(
                        [sys.executable, __file__, "_acc", name, d, method, str(args.budget), str(seed)],
                        capture_output=True,
                        text=True,
                        timeout=int(args.budget * 4 + 600),
                    )
                    if r.returncode != 0:
                        print("failed", name, d, method, r.stderr[-500:], flush=True)
                        continue
                    rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
                    (DOCS / f"bench_{args.tag}.json").write_text(json.dumps(rows, indent=1))  # survives an interrupt
                    x = rows[-1]
                    print(
                        f"{name} d={d} {method} seed={seed}: rel {x['rel_l2']:.3e} null {x['null_rel_l2']:.3e} "
                        f"ratio {x['aniso_ratio']:.3f} steps {x['steps']}",
                        flush=True,
                    )
        (DOCS / f"bench_{args.tag}.json").write_text(json.dumps(rows, indent=1))
        lines = [
            "| problem | d | method | seed | budget s | steps | rel L2 (final) | best | null | aniso (final) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for x in rows:
            lines.append(
                f"| {x['problem']} | {x['d']} | {x['method']} | {x['seed']} | {x['budget_s']:.0f} | "
                f"{x['steps']} | {x['rel_l2']:.3e} | {x['best_rel_l2']:.3e} | {x['null_rel_l2']:.3e} | "
                f"{x['aniso_ratio']:.3f} |"
            )
        (DOCS / f"bench_{args.tag}.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
