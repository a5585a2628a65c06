"""Service benchmark: status-poll latency with many concurrent clients, and submission throughput,
while one job trains on the same machine.

    python benchmarks/bench_service.py [--clients 200] [--polls 20] [--submit-s 10] [--no-append]

Starts a real ``sdze serve`` (SQLite, local Ray) in a temporary folder, prints a markdown table and appends it
to docs/api.md under "## Benchmark".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.testing import ServerProcess  # noqa: E402

TRAIN = {
    "problem": {"name": "sine_gordon_two_body", "dim": 100},
    "model": {"width": 64},
    "solver": {"steps": 100_000},
    "eval": {"test_points": 500, "every": 200},
}
TINY = {"problem": {"name": "poisson_two_body", "dim": 20}, "model": {"width": 16}, "solver": {"steps": 40}}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


async def poll_latency(url: str, job_id: str, clients: int, polls: int) -> tuple[list[float], float, int]:
    """``clients`` independent clients (one connection each), each polling the job ``polls`` times."""
    lat: list[float] = []
    errors = 0

    async def one_client() -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            await http.get("/healthz")  # connect first: the figure is the poll, not the TCP handshake
            for _ in range(polls):
                t0 = time.perf_counter()
                r = await http.get(f"/v1/jobs/{job_id}")
                lat.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    wall = time.perf_counter() - t0
    return lat, wall, errors


async def submit_throughput(url: str, seconds: float, concurrency: int) -> tuple[int, float, list[float], list[str]]:
    ids: list[str] = []
    lat: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        stop = time.perf_counter() + seconds

        async def one(worker: int) -> None:
            i = 0
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                r = await http.post("/v1/jobs", json={**TINY, "seed": worker * 100_000 + i})
                lat.append(time.perf_counter() - t0)
                if r.status_code == 202:
                    ids.append(r.json()["id"])
                i += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one(w) for w in range(concurrency)))
        wall = time.perf_counter() - t0
    return len(ids), wall, lat, ids


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--polls", type=int, default=20, help="status polls per client")
    ap.add_argument("--submit-s", type=float, default=10.0)
    ap.add_argument("--submit-concurrency", type=int, default=8)
    ap.add_argument("--no-append", action="store_true", help="only print the table")
    args = ap.parse_args()

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        env = {"SDZE_MAX_CONCURRENT_JOBS": "1", "SDZE_MAX_QUEUE": "100000"}
        with ServerProcess(Path(tmp), env=env) as srv:
            http = httpx.Client(base_url=srv.url, timeout=60)
            job = http.post("/v1/jobs", json=TRAIN).json()
            deadline = time.monotonic() + 300
            while True:
                j = http.get(f"/v1/jobs/{job['id']}").json()
                if j["state"] == "running" and (j["progress"]["step"] or 0) >= 5:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"training job did not start: {j}")
                time.sleep(0.5)
            lat, wall, errors = asyncio.run(poll_latency(srv.url, job["id"], args.clients, args.polls))
            n_sub, sub_wall, sub_lat, ids = asyncio.run(
                submit_throughput(srv.url, args.submit_s, args.submit_concurrency)
            )
            j = http.get(f"/v1/jobs/{job['id']}").json()
            still_training = j["state"] == "running"
            for jid in [*ids, job["id"]]:
                http.post(f"/v1/jobs/{jid}/cancel")
            http.close()

    ms = [x * 1000 for x in lat]
    sub_ms = [x * 1000 for x in sub_lat]
    load = os.getloadavg()[0]
    host = (
        f"{os.cpu_count()} CPU cores ({platform.machine()}, 1-min load average {load_before:.1f} before the run), "
        f"Python {platform.python_version()}"
    )
    table = "\n".join(
        [
            f"Measured {time.strftime('%Y-%m-%d')} on {host}; server, benchmark client and the training job share the "
            "machine (one uvicorn process, SQLite WAL, local Ray).",
            "",
            "| measurement | value |",
            "|---|---|",
            f"| status polls (`GET /v1/jobs/{{id}}`) | {len(lat)} from {args.clients} concurrent clients, "
            f"{errors} errors |",
            f"| poll latency p50 / p99 | {pct(ms, 50):.1f} ms / {pct(ms, 99):.1f} ms |",
            f"| poll throughput | {len(lat) / wall:.0f} requests/s |",
            f"| submissions (`POST /v1/jobs`, {args.submit_concurrency} concurrent clients, {args.submit_s:.0f} s) | "
            f"{n_sub} accepted, {n_sub / sub_wall:.1f} jobs/s |",
            f"| submission latency p50 / p99 | {pct(sub_ms, 50):.1f} ms / {pct(sub_ms, 99):.1f} ms |",
            f"| a job trained throughout | {'yes' if still_training else 'no'} ({TRAIN['problem']['name']}, "
            f"d={TRAIN['problem']['dim']}, width {TRAIN['model']['width']}) |",
            "",
            f"With {args.clients} clients polling back to back, the latency is mostly queueing behind the other "
            "clients' requests. One poll alone costs a few ms "
            "(one indexed SQLite read, served inline on the event loop); the ceiling is one uvicorn process on "
            f"shared cores (1-min load average {load:.1f} at the end, the benchmark client included).",
            "",
            f"Command: `python benchmarks/bench_service.py --clients {args.clients} --polls {args.polls} "
            f"--submit-s {args.submit_s:g}`",
        ]
    )
    print(table)
    if not args.no_append:
        doc = ROOT / "docs" / "api.md"
        text = doc.read_text() if doc.exists() else "# SDZE job service API\n"
        section = "## Benchmark\n\n" + table + "\n"
        if "## Benchmark" in text:
            text = re.sub(r"## Benchmark\n.*?(?=\n## |\Z)", section, text, flags=re.S)
        else:
            text = text.rstrip("\n") + "\n\n" + section
        doc.write_text(text)
        print(f"\nappended to {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
