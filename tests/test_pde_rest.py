"""User PDEs through the REST API on the embedded default (a real ``sdze serve`` on loopback, local Ray):
the example PDEs run with sdze and sdgd_adam and report the metrics that apply; bad expressions are 422
naming the field and the position, and never reach the queue."""

from __future__ import annotations

import json
import math
import pathlib

import httpx
import pytest

from service.client import Client
from service.testing import ServerProcess, wait_for_job

pytestmark = [pytest.mark.ray, pytest.mark.slow]
# the manufactured bump (derived source), given source + boundary values (no u*), the annulus; the cube
# example runs in-process in test_pde_solve.py (each REST job costs a worker start)
EXAMPLES = [
    pathlib.Path(__file__).resolve().parents[1] / "examples" / f"pde_{n}.json"
    for n in ("gaussian_bump_ball", "source_boundary_ball", "annulus_three_body")
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"SDZE_MAX_CONCURRENT_JOBS": "1", "SDZE_PROGRESS_INTERVAL_S": "0.2", "SDZE_RAY_NUM_CPUS": "2"}
    srv = ServerProcess(tmp_path_factory.mktemp("svc"), env=env).start()
    yield srv
    srv.stop()


def _job(path: pathlib.Path, method: str) -> dict:
    spec = json.loads(path.read_text())
    spec["problem"]["dim"] = 12
    spec["model"] = {"width": 16, "depth": 3}
    spec["solver"] = {"method": method, "steps": 20, "batch_size": 32}
    spec["eval"] = {"test_points": 200, "every": 10, "sample_points": 50}
    return spec


def test_example_pdes_solve_through_rest(server):
    with Client(server.url) as c:
        jobs = [(p, m, c.submit(_job(p, m))["id"]) for p in EXAMPLES for m in ("sdze", "sdgd_adam")]
        for path, method, jid in jobs:
            job = wait_for_job(c, jid, lambda j: j["state"] in ("succeeded", "failed", "cancelled"), 300)
            assert job["state"] == "succeeded", (path.name, method, job)
            r = httpx.get(f"{server.url}/v1/jobs/{jid}/artifacts/metrics.json")
            m = r.json()
            assert m["problem"] == "user" and math.isfinite(m["val_residual"])
            if "exact" in json.loads(path.read_text())["problem"]:
                assert math.isfinite(m["rel_l2"]) and m["null_rel_l2"] > 0
            else:
                assert m["rel_l2"] is None  # no u*: residual metrics only


@pytest.mark.parametrize(
    "patch,field,where",
    [
        ({"exact": "x.__class__"}, "problem.exact", "position 1"),
        ({"pde": {"source": "__import__('os')"}}, "problem.pde.source", "position 0"),
        ({"pde": {"source": "sin(x[0]", "reaction": "u"}}, "problem.pde.source", "position 8"),
        ({"pde": {"source": "1", "reaction": "9^9^9 * u"}}, "problem.pde.reaction", "position 1"),
        ({"exact": "(1 - norm2(x)) * x[100]"}, "problem", "problem.exact at position 17: x[100] is outside"),
    ],
)
def test_bad_expressions_are_422_naming_field_and_position(server, patch, field, where):
    spec = json.loads(EXAMPLES[0].read_text())
    spec["problem"] = {**spec["problem"], **patch}
    before = httpx.get(f"{server.url}/v1/jobs").json()
    r = httpx.post(f"{server.url}/v1/jobs", json=spec)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), r.text
    errs = r.json()["errors"]
    assert any(e["field"] == field and where in e["msg"] for e in errs), errs
    assert httpx.get(f"{server.url}/v1/jobs").json() == before  # nothing was queued
