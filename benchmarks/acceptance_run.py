"""Run one acceptance spec through the trainer and bundle what it produced into one JSON (docs/bench_*.json).

    python benchmarks/acceptance_run.py SPEC.json OUT.json [--threads 1]

Runs ``python -m service.cli solve SPEC --out DIR --quiet`` with OMP_NUM_THREADS set, samples the 1-minute load
average and the process tree's peak RSS (VmHWM of the solve process) while it runs, and writes
{spec, command, conditions, metrics, history (rows of history.csv)}.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_rss_gib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        return None
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("spec")
    ap.add_argument("out")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    spec = json.loads(Path(args.spec).read_text())
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "service.cli", "solve", args.spec, "--out", str(run_dir), "--quiet"]
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        t0, loads, peak = time.time(), [], 0.0
        proc = subprocess.Popen(cmd, env=env)
        while proc.poll() is None:
            loads.append(os.getloadavg()[0])
            peak = max(peak, _peak_rss_gib(proc.pid) or 0.0)
            time.sleep(5)
        wall = time.time() - t0
        metrics_path = run_dir / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else None
        hist_path = run_dir / "history.csv"
        history = list(csv.DictReader(hist_path.open())) if hist_path.exists() else []
    result = {
        "spec": spec,
        "command": f"python benchmarks/acceptance_run.py {args.spec} {args.out} --threads {args.threads}",
        "conditions": {
            "threads": args.threads,
            "returncode": proc.returncode,
            "wall_s": round(wall, 1),
            "load1_median": sorted(loads)[len(loads) // 2] if loads else None,
            "load1_max": max(loads) if loads else None,
            "peak_rss_gib": round(peak, 3),
            "cpus": os.cpu_count(),
        },
        "metrics": metrics,
        "history": history,
    }
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result["conditions"][k] for k in ("returncode", "wall_s", "peak_rss_gib", "load1_median")}))


if __name__ == "__main__":
    main()
