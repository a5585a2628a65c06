"""The example user PDEs (examples/pde_*.json) solved end to end through the REST API on the embedded
default (a real ``sdze serve`` on loopback, SQLite, local Ray), each with sdze and sdgd_adam.

    OMP_NUM_THREADS=1 python benchmarks/pde_examples.py --time-limit 45 --out docs/pde_examples.json

Prints a Markdown table of the final metrics.json figures and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import tempfile
import time

import httpx

from service.client import Client
from service.testing import ServerProcess, wait_for_job

ROOT = pathlib.Path(__file__).resolve().parents[1]
KEYS = ("rel_l2", "null_rel_l2", "aniso_ratio", "val_residual", "residual_rel", "boundary_rms", "steps_done", "wall_s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--time-limit", type=float, default=45.0)
    ap.add_argument("--methods", default="sdze,sdgd_adam")
    ap.add_argument("--only", default="", help="comma-separated example stems (default: every examples/pde_*.json)")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    rows = []
    env = {"SDZE_MAX_CONCURRENT_JOBS": "1", "SDZE_RAY_NUM_CPUS": "2", "SDZE_PROGRESS_INTERVAL_S": "1"}
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(pathlib.Path(tmp), env=env) as srv, Client(srv.url) as c:
        paths = sorted((ROOT / "examples").glob("pde_*.json"))
        if a.only:
            paths = [p for p in paths if p.stem in a.only.split(",")]
        for path in paths:
            for method in a.methods.split(","):
                spec = json.loads(path.read_text())
                spec["solver"] = {**spec["solver"], "method": method, "time_limit_s": a.time_limit}
                t0 = time.time()
                jid = c.submit(spec)["id"]
                job = wait_for_job(c, jid, lambda j: j["state"] in ("succeeded", "failed", "cancelled"), 3600)
                m = (
                    httpx.get(f"{srv.url}/v1/jobs/{jid}/artifacts/metrics.json").json()
                    if job["state"] == "succeeded"
                    else {}
                )
                row = {"example": path.stem, "method": method, "d": spec["problem"]["dim"], "state": job["state"]}
                row.update({k: m.get(k) for k in KEYS})
                row["job_s"] = round(time.time() - t0, 1)
                rows.append(row)
                print(json.dumps(row), flush=True)

    def f(v):
        return "—" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))

    print(f"\ntime_limit_s={a.time_limit} per job, one job at a time\n")
    print("| example | d | method | rel L2 | null | aniso | held-out residual | rel. residual | boundary rms | steps |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['example']} | {r['d']} | {r['method']} | {f(r['rel_l2'])} | {f(r['null_rel_l2'])} | "
            f"{f(r['aniso_ratio'])} | {f(r['val_residual'])} | {f(r['residual_rel'])} | {f(r['boundary_rms'])} | "
            f"{f(r['steps_done'])} |"
        )
    if a.out:
        pathlib.Path(a.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
