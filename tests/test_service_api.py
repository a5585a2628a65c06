"""The job service end to end: a real ``sdze serve`` on loopback (uvicorn, SQLite file, local Ray).

One server for the module (tokens on, one job at a time, a small queue); the tests run in file order and
share its jobs: lifecycle → auth isolation → cancel → queue/pagination/429 → fuzzing (the web pages:
test_service_browser.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys

import httpx
import numpy as np
import pytest

from service.client import ApiError, Client
from service.testing import ServerProcess, wait_for_job

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ALICE, BOB = "alice-token-123", "bob-token-4567"
TINY = {
    "problem": {"name": "poisson_two_body", "dim": 20},
    "model": {"width": 16},
    "solver": {"steps": 40, "lr": 0.01},
    "eval": {"test_points": 200, "every": 20, "sample_points": 100},
    "checkpoint_every": 10,
}
# Blocker/cancel jobs: the published recipe (small steps) cannot diverge and end early.
LONG = {**TINY, "solver": {"method": "sdze_published", "steps": 100_000}}
ARTIFACTS = {"model.safetensors", "metrics.json", "history.csv", "loss.png", "samples.npz"}
MAX_QUEUE = 4
WAIT_S = 240


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {
        "SDZE_TOKENS": f"{ALICE},{BOB}",
        "SDZE_MAX_CONCURRENT_JOBS": "1",
        "SDZE_MAX_QUEUE": str(MAX_QUEUE),
        "SDZE_MAX_DIM": "1000",
        "SDZE_MAX_BODY_BYTES": "65536",
        "SDZE_PROGRESS_INTERVAL_S": "0.2",
        "SDZE_RAY_NUM_CPUS": "2",
    }
    srv = ServerProcess(tmp_path_factory.mktemp("svc"), env=env).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def alice(server):
    with Client(server.url, token=ALICE) as c:
        yield c


@pytest.fixture(scope="module")
def bob(server):
    with Client(server.url, token=BOB) as c:
        yield c


@pytest.fixture(scope="module")
def done_job(alice):
    """The finished lifecycle job (shared by later tests)."""
    return {}


def wait_for(c: Client, job_id: str, cond, timeout: float = WAIT_S) -> dict:
    return wait_for_job(c, job_id, cond, timeout)


def assert_problem(r: httpx.Response, status: int, field: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["title"]
    if field is not None:
        assert field in [e["field"] for e in body.get("errors", [])], body
    return body


def test_health_metrics_docs(server):
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(server.url + "/readyz").status_code == 200
    m = httpx.get(server.url + "/metrics").text
    assert "sdze_jobs{" in m and "sdze_dispatcher_ready 1.0" in m
    assert httpx.get(server.url + "/docs").status_code == 200
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert {"/v1/jobs", "/v1/jobs/{job_id}/events", "/v1/jobs/{job_id}/evaluate"} <= set(paths)


def test_auth_required(server):
    r = httpx.get(server.url + "/v1/jobs")
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert_problem(httpx.get(server.url + "/v1/jobs", headers={"Authorization": "Bearer wrong-token"}), 401)
    assert_problem(httpx.post(server.url + "/v1/jobs", json=TINY), 401)
    assert_problem(httpx.get(server.url + "/v1/jobs", headers={"Authorization": f"Basic {ALICE}"}), 401)


@pytest.mark.parametrize(
    "body,status,field",
    [
        ({**TINY, "problem": {"name": "heat_equation", "dim": 20}}, 422, "problem.name"),
        ({**TINY, "problem": {"name": "poisson_two_body", "dim": 0}}, 422, "problem.dim"),
        ({**TINY, "problem": {"name": "poisson_two_body", "dim": 5000}}, 422, "problem.dim"),  # above the cap
        ({**TINY, "problem": {"name": "poisson_two_body", "dim": "twenty"}}, 422, "problem.dim"),
        ({**TINY, "solver": {"steps": 10, "lr": "__import__('os')"}}, 422, "solver.lr"),
        ({**TINY, "extra": 1}, 422, "extra"),
        ({**TINY, "model": {"width": 16, "activation": "relu"}}, 422, "model.activation"),
        ([1, 2, 3], 422, ""),
    ],
)
def test_bad_specs_are_named_4xx(server, body, status, field):
    r = httpx.post(server.url + "/v1/jobs", json=body, headers={"Authorization": f"Bearer {ALICE}"})
    assert_problem(r, status, field)


def test_nan_oversized_and_garbage_bodies(server, alice):
    before = len(list(alice.iter_jobs()))
    h = {"Authorization": f"Bearer {ALICE}", "Content-Type": "application/json"}
    for raw, field in [
        ('{"problem": {"name": "poisson_two_body", "dim": 20}, "solver": {"lr": NaN}}', "solver.lr"),
        ('{"problem": {"name": "poisson_two_body", "dim": 20}, "solver": {"eps": Infinity}}', "solver.eps"),
        ('{"problem": {"name": "poisson_two_body", "dim": 1e400}}', "problem.dim"),
    ]:
        assert_problem(httpx.post(server.url + "/v1/jobs", content=raw, headers=h), 422, field)
    assert_problem(httpx.post(server.url + "/v1/jobs", content=b"{not json", headers=h), 400)
    big = json.dumps({**TINY, "pad": "x" * 100_000})
    assert_problem(httpx.post(server.url + "/v1/jobs", content=big, headers=h), 413)

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(40):
            yield b" " * 4096

    assert_problem(httpx.post(server.url + "/v1/jobs", content=chunks(), headers=h), 413)
    assert len(list(alice.iter_jobs())) == before  # nothing reached the queue


def test_lifecycle_idempotency_sse_artifacts_evaluate(server, alice, done_job, tmp_path):
    r = httpx.post(
        server.url + "/v1/jobs",
        json=TINY,
        headers={"Authorization": f"Bearer {ALICE}", "Idempotency-Key": "lifecycle-1"},
    )
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/v1/jobs/{job['id']}" and job["state"] == "queued"
    # Same key, same body: the same job. Same key, another body: 422.
    assert alice.submit(TINY, idempotency_key="lifecycle-1")["id"] == job["id"]
    with pytest.raises(ApiError) as e:
        alice.submit({**TINY, "seed": 7}, idempotency_key="lifecycle-1")
    assert e.value.status == 422 and e.value.problem["type"].endswith("idempotency-conflict")

    events = list(alice.events(job["id"]))  # SSE until the terminal state event
    states = [ev["state"] for ev in events if ev["kind"] == "state"]
    assert states == ["queued", "running", "succeeded"], states
    seqs = [ev["seq"] for ev in events]
    assert seqs == list(range(1, len(seqs) + 1))  # gap-free ids
    steps = [ev["step"] for ev in events if ev["kind"] == "progress"]
    assert steps and steps == sorted(steps) and steps[-1] == 40
    assert any(ev.get("rel_l2") is not None for ev in events if ev["kind"] == "progress")

    # Last-Event-ID resumes right after the given id; the stream ends after the terminal state.
    h = {"Authorization": f"Bearer {ALICE}", "Last-Event-ID": str(seqs[-3])}
    with httpx.stream("GET", server.url + f"/v1/jobs/{job['id']}/events", headers=h, timeout=30) as s:
        assert s.headers["content-type"].startswith("text/event-stream")
        ids = [int(line[3:]) for line in s.iter_lines() if line.startswith("id:")]
    assert ids == seqs[-2:]
    page = httpx.get(
        server.url + f"/v1/jobs/{job['id']}/events?after=1&limit=2",
        headers={"Authorization": f"Bearer {ALICE}", "Accept": "application/json"},
    ).json()
    assert [e["seq"] for e in page["data"]] == [2, 3] and page["has_more"]

    job = alice.get(job["id"])
    assert job["state"] == "succeeded" and job["progress"]["step"] == 40 and job["progress"]["fraction"] == 1.0
    assert job["metrics"]["status"] == "succeeded" and job["metrics"]["rel_l2"] is not None
    assert job["finished_at"] >= job["started_at"] >= job["created_at"]

    arts = {a["name"]: a for a in alice.artifacts(job["id"])}
    assert set(arts) >= ARTIFACTS
    for name in ARTIFACTS:
        rr = httpx.get(server.url + arts[name]["url"], headers={"Authorization": f"Bearer {ALICE}"})
        assert rr.status_code == 200
        assert int(rr.headers["content-length"]) == arts[name]["size"] == len(rr.content)
        assert hashlib.sha256(rr.content).hexdigest() == arts[name]["sha256"]
    assert arts["loss.png"]["media_type"] == "image/png" and arts["metrics.json"]["media_type"] == "application/json"
    assert_problem(
        httpx.get(
            server.url + f"/v1/jobs/{job['id']}/artifacts/..%2Fjobs.db", headers={"Authorization": f"Bearer {ALICE}"}
        ),
        404,
    )

    # Evaluate at the saved test points: the service reproduces the stored prediction.
    path = alice.download(job["id"], "samples.npz", tmp_path)
    samples = np.load(path)
    u = alice.evaluate(job["id"], samples["x"])  # .npy in and out
    np.testing.assert_allclose(u, samples["u_pred"], rtol=1e-5, atol=1e-7)
    u_json = alice.evaluate(job["id"], samples["x"][:3].tolist())
    np.testing.assert_allclose(u_json, samples["u_pred"][:3], rtol=1e-5, atol=1e-7)
    url = server.url + f"/v1/jobs/{job['id']}/evaluate"
    h = {"Authorization": f"Bearer {ALICE}"}
    assert_problem(httpx.post(url, json={"points": [[0.1] * 19]}, headers=h), 422, "points")
    assert_problem(httpx.post(url, json={"points": [[0.1] * 20, [0.2]]}, headers=h), 422, "points")
    assert_problem(httpx.post(url, json={"points": [["a"] * 20]}, headers=h), 422, "points.0.0")
    nan = '{"points": [[' + ",".join(["NaN"] * 20) + "]]}"
    assert_problem(httpx.post(url, content=nan, headers={**h, "Content-Type": "application/json"}), 422, "points.0.0")
    buf = io.BytesIO()
    np.save(buf, np.zeros((2, 20), dtype=object), allow_pickle=True)
    assert_problem(httpx.post(url, content=buf.getvalue(), headers={**h, "Content-Type": "application/x-npy"}), 422)
    done_job["id"] = job["id"]


def test_cli_verbs(server, done_job, tmp_path):
    def sdze(*argv: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "service.cli", *argv, "--url", server.url, "--token", ALICE]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({**TINY, "solver": {"steps": 20, "lr": 0.01}}))
    p = sdze("submit", str(spec), "--wait")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "succeeded" in p.stdout and "step 20/20" in p.stdout
    assert "20/20" in p.stderr  # the progress bar reached the end on the SSE stream
    p = sdze("status", done_job["id"])
    assert p.returncode == 0 and done_job["id"] in p.stdout and "succeeded" in p.stdout
    p = sdze("list", "--state", "succeeded")
    assert p.returncode == 0 and done_job["id"] in p.stdout
    p = sdze("download", done_job["id"], "--out", str(tmp_path / "dl"), "--name", "metrics.json")
    assert p.returncode == 0 and json.loads((tmp_path / "dl" / "metrics.json").read_text())["status"] == "succeeded"
    np.save(tmp_path / "pts.npy", np.zeros((2, 20)))
    p = sdze("evaluate", done_job["id"], str(tmp_path / "pts.npy"))
    assert p.returncode == 0 and len(json.loads(p.stdout)) == 2
    p = sdze("cancel", done_job["id"])
    assert p.returncode == 1 and "409" in p.stderr and "Traceback" not in p.stderr


def test_jobs_are_private_to_their_token(server, alice, bob, done_job):
    jid = done_job["id"]
    assert jid not in [j["id"] for j in bob.iter_jobs()]
    assert jid in [j["id"] for j in alice.iter_jobs()]
    h = {"Authorization": f"Bearer {BOB}"}
    for method, path in [
        ("GET", ""),
        ("POST", "/cancel"),
        ("GET", "/artifacts"),
        ("GET", "/artifacts/metrics.json"),
        ("GET", "/events"),
        ("POST", "/evaluate"),
    ]:
        r = httpx.request(method, server.url + f"/v1/jobs/{jid}{path}", headers=h, json={"points": [[0.0] * 20]})
        assert_problem(r, 404)
    # Idempotency keys are per token too.
    assert bob.submit(TINY, idempotency_key="lifecycle-1")["id"] != jid
    bob_job = next(bob.iter_jobs())
    bob.cancel(bob_job["id"])


def test_cancel_running_job(server, alice, done_job):
    job = alice.submit(LONG)
    job = wait_for(alice, job["id"], lambda j: j["state"] == "running" and (j["progress"]["step"] or 0) >= 2)
    c = alice.cancel(job["id"])
    assert c["cancel_requested"] and c["state"] in ("running", "cancelled")
    job = wait_for(alice, job["id"], lambda j: j["state"] != "running")
    assert job["state"] == "cancelled" and "cancel" in job["reason"]
    assert job["progress"]["step"] < 100_000
    with pytest.raises(ApiError) as e:
        alice.cancel(job["id"])
    assert e.value.status == 409
    # A cancelled job still has its artifacts (and a model that can be evaluated).
    assert "model.safetensors" in {a["name"] for a in alice.artifacts(job["id"])}


def test_queue_bound_pagination_and_state_filter(server, alice, done_job):
    blocker = alice.submit(LONG)
    wait_for(alice, blocker["id"], lambda j: j["state"] == "running")
    queued = [alice.submit({**LONG, "seed": i})["id"] for i in range(MAX_QUEUE)]
    r = httpx.post(server.url + "/v1/jobs", json={**LONG, "seed": 99}, headers={"Authorization": f"Bearer {ALICE}"})
    assert_problem(r, 429)
    assert int(r.headers["retry-after"]) > 0
    assert alice.get(queued[-1])["queue_position"] == MAX_QUEUE - 1
    got, after = [], None
    while True:
        page = alice.list(state="queued", limit=3, after=after)
        assert len(page["data"]) <= 3
        got += [j["id"] for j in page["data"]]
        if not page["has_more"]:
            break
        after = page["next_cursor"]
    assert got == queued[::-1]  # newest first, no duplicates or gaps
    assert [j["id"] for j in alice.list(state="running")["data"]] == [blocker["id"]]
    assert_problem(
        httpx.get(server.url + "/v1/jobs?after=bogus", headers={"Authorization": f"Bearer {ALICE}"}), 422, "after"
    )
    assert_problem(
        httpx.get(server.url + "/v1/jobs?state=done", headers={"Authorization": f"Bearer {ALICE}"}), 422, "state"
    )
    done_job["blocker"], done_job["queued"] = blocker["id"], queued


def test_openapi_fuzz_no_server_errors(server, done_job):
    """Schemathesis over every operation (the queue is full, so valid specs get 429 and never run).

    No stateful phase: it would cancel the queue's jobs and let fuzzed specs run."""
    st = shutil.which("st", path=os.path.dirname(sys.executable)) or shutil.which("schemathesis")
    assert st, "schemathesis CLI not installed"
    cmd = [
        st,
        "run",
        server.url + "/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "10",
        "-H",
        f"Authorization: Bearer {ALICE}",
        "--no-color",
        "--seed",
        "1",
        "--phases",
        "examples,coverage,fuzzing",
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-2000:]


def test_hypothesis_bodies_no_server_errors(server, done_job):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    leaf = st.recursive(
        scalars,
        lambda ch: st.lists(ch, max_size=4) | st.dictionaries(st.text(max_size=12), ch, max_size=4),
        max_leaves=12,
    )
    keys = st.sampled_from(["problem", "model", "solver", "eval", "resources", "seed", "dtype", "checkpoint_every"])
    spec_like = st.dictionaries(keys, leaf, max_size=5)
    http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ALICE}"}, timeout=30)
    eval_url = f"/v1/jobs/{done_job['id']}/evaluate"

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=spec_like | leaf, points=leaf)
    def check(body, points):
        for url, payload in (("/v1/jobs", body), (eval_url, {"points": points})):
            r = http.post(url, content=json.dumps(payload), headers={"Content-Type": "application/json"})
            assert r.status_code < 500, (url, payload, r.text)

    check()
    http.close()


def test_cleanup_cancel_everything(alice, done_job):
    for jid in [*done_job.get("queued", []), done_job.get("blocker")]:
        if jid and alice.get(jid)["state"] in ("queued", "running"):
            alice.cancel(jid)
    last = alice.get(done_job["queued"][-1])
    assert last["state"] == "cancelled" or last["cancel_requested"]
