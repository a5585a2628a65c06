"""A time-dependent job through the real REST server (Ray worker, SQLite store, HTTP on loopback)."""

import time

import httpx
import pytest

from service.testing import ServerProcess

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_time_dependent_job_over_rest(tmp_path):
    spec = {
        "problem": {"name": "hjb_cole_hopf", "dim": 20},
        "model": {"width": 16, "depth": 3},
        "solver": {"method": "sdze", "steps": 10, "batch_size": 16, "samples": 4},
        "eval": {"test_points": 100, "every": 5, "sample_points": 20},
    }
    with (
        ServerProcess(tmp_path, env={"SDZE_RAY_NUM_CPUS": "2"}) as srv,
        httpx.Client(base_url=srv.url, timeout=30) as c,
    ):
        bad = c.post("/v1/jobs", json={"problem": {"name": "bsb", "dim": 10}, "solver": {"estimator": "hte"}})
        assert bad.status_code == 422 and "estimator" in bad.text
        r = c.post("/v1/jobs", json=spec)
        assert r.status_code == 202, r.text
        jid = r.json()["id"]
        deadline = time.monotonic() + 240
        while (job := c.get(f"/v1/jobs/{jid}").json())["state"] not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
        assert job["state"] == "succeeded", job
        m = c.get(f"/v1/jobs/{jid}/artifacts/metrics.json").json()
        for k in ("rel_l2", "null_rel_l2", "null_terminal_rel_l2", "ref_rel_error", "ref_value", "val_residual"):
            assert m[k] is not None, k
        ev = c.post(f"/v1/jobs/{jid}/evaluate", json={"points": [[0.0] * 21, [0.1] * 20 + [0.5]]})
        assert ev.status_code == 200 and ev.json()["n"] == 2, ev.text
        wrong = c.post(f"/v1/jobs/{jid}/evaluate", json={"points": [[0.0] * 20]})
        assert wrong.status_code == 422 and "then t" in wrong.text
