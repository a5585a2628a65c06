"""Durability: SIGKILL the server while a job trains, start it again on the same data folder.

The interrupted job resumes from its last checkpoint (its first step after the restart is past that
checkpoint) and finishes; the finished job and its artifacts are still served; the queued job still runs.
"""

from __future__ import annotations

import json
import time

import pytest

from service.client import Client
from service.testing import ServerProcess, wait_for_job

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TINY = {
    "problem": {"name": "poisson_two_body", "dim": 20},
    "model": {"width": 16},
    "solver": {"steps": 30, "lr": 0.01},
    "eval": {"test_points": 200, "every": 10, "sample_points": 50},
    "checkpoint_every": 5,
}
WAIT_S = 240


def wait_for(c: Client, job_id: str, cond, timeout: float = WAIT_S) -> dict:
    return wait_for_job(c, job_id, cond, timeout)


def test_kill_and_restart_resumes_from_checkpoint(tmp_path):
    env = {"SDZE_MAX_CONCURRENT_JOBS": "1", "SDZE_PROGRESS_INTERVAL_S": "0.1"}
    srv = ServerProcess(tmp_path / "data", env=env).start()
    try:
        with Client(srv.url) as c:
            done = c.submit(TINY)
            done = wait_for(c, done["id"], lambda j: j["state"] == "succeeded")
            arts_before = {a["name"]: a["sha256"] for a in c.artifacts(done["id"])}
            long = c.submit({**TINY, "solver": {"steps": 120, "lr": 0.01}, "seed": 1})
            queued = c.submit({**TINY, "seed": 2})
            ckpt = srv.data_dir / "jobs" / long["id"] / "checkpoint" / "run_state.json"
            deadline = time.monotonic() + WAIT_S
            while not (ckpt.exists() and json.loads(ckpt.read_text())["step"] >= 10):
                assert time.monotonic() < deadline, c.get(long["id"])
                time.sleep(0.1)
            assert c.get(long["id"])["state"] == "running" and c.get(queued["id"])["state"] == "queued"
        srv.kill()  # SIGKILL: no shutdown hook runs
    finally:
        srv.stop()
    ckpt_step = json.loads(ckpt.read_text())["step"]
    assert 10 <= ckpt_step < 120

    srv = ServerProcess(tmp_path / "data", env=env).start()
    try:
        with Client(srv.url) as c:
            # Finished work survives.
            assert c.get(done["id"])["state"] == "succeeded"
            assert {a["name"]: a["sha256"] for a in c.artifacts(done["id"])} == arts_before
            assert len(c.evaluate(done["id"], [[0.1] * 20])) == 1
            # The interrupted job was re-queued and resumed from its checkpoint, then finished.
            job = wait_for(c, long["id"], lambda j: j["state"] in ("succeeded", "failed", "cancelled"))
            assert job["state"] == "succeeded", job
            assert job["attempt"] == 2 and job["progress"]["step"] == 120
            events = list(c.events(long["id"]))
            states = [(e["seq"], e["state"]) for e in events if e["kind"] == "state"]
            assert [s for _, s in states] == ["queued", "running", "queued", "running", "succeeded"], states
            rerun_at = states[3][0]
            after = [e["step"] for e in events if e["kind"] == "progress" and e["seq"] > rerun_at]
            assert after and after[0] > ckpt_step >= 10, (ckpt_step, after[:5])
            assert "model.safetensors" in {a["name"] for a in c.artifacts(long["id"])}
            # The job queued before the crash still runs.
            assert wait_for(c, queued["id"], lambda j: j["state"] not in ("queued", "running"))["state"] == "succeeded"
    finally:
        srv.stop()
