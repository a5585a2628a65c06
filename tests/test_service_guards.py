"""The service's guards, driven as a new user would with curl: a real ``sdze serve`` on loopback, tokenless
(the default), a local Ray of 2 CPUs, two run slots.

Edge (Host allowlist, strict types, 400/415, problem types) → admission (placement, memory, work) → a job's
artifacts (ETag/304, HEAD) → evaluate off the event loop → a job that waits for resources and is cancelled at
once → counters that agree → a failure while recording a result → SIGTERM leaves no Ray process behind.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.client import Client
from service.local_ray import descendant_pids
from service.testing import ServerProcess, wait_for_job

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "problem": {"name": "poisson_two_body", "dim": 20},
    "model": {"width": 16},
    "solver": {"steps": 20, "lr": 0.01},
    "eval": {"test_points": 100, "every": 10, "sample_points": 50},
}
LONG = {**TINY, "solver": {"method": "sdze_published", "steps": 100_000}}
WAIT_S = 240


def documented_problem_types() -> set[str]:
    """The problem types docs/api.md lists (its table's first column: `type`)."""
    text = (ROOT / "docs" / "api.md").read_text()
    return set(re.findall(r"^\| `([a-z-]+)` \|", text, flags=re.M))


def assert_problem(r: httpx.Response, status: int, kind: str, field: str | None = None) -> dict:
    assert r.status_code == status, r.text[:1000]
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["status"] == status and body["type"] == f"https://sdze.dev/problems/{kind}", body
    assert kind in documented_problem_types(), f"{kind} is not documented in docs/api.md"
    if field is not None:
        assert field in [e["field"] for e in body.get("errors", [])], body
    return body


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {
        "SDZE_RAY_NUM_CPUS": "2",
        "SDZE_MAX_CONCURRENT_JOBS": "2",
        "SDZE_PROGRESS_INTERVAL_S": "0.2",
        "SDZE_MAX_EVAL_POINTS": "200000",
    }
    srv = ServerProcess(tmp_path_factory.mktemp("guards"), env=env).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    with Client(server.url) as c:
        yield c


@pytest.fixture(scope="module")
def shared() -> dict:
    return {}


def test_foreign_host_is_refused_without_tokens(server):
    url = server.url + "/v1/jobs"
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.nip.io"):
        assert_problem(httpx.get(url, headers={"Host": host}), 421, "host-not-allowed")
    assert_problem(httpx.post(url, json=TINY, headers={"Host": "rebind.example"}), 421, "host-not-allowed")
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", "localhost", f"[::1]:{server.port}"):
        assert httpx.get(url, headers={"Host": host}).status_code == 200, host


@pytest.mark.parametrize(
    "body,field",
    [
        ({"problem": {"name": "poisson_two_body", "dim": "10"}}, "problem.dim"),
        ({"problem": {"name": "poisson_two_body", "dim": 10.0}}, "problem.dim"),
        ({**TINY, "solver": {"steps": "20"}}, "solver.steps"),
        ({**TINY, "solver": {"steps": 20, "crns": "true"}}, "solver.crns"),
        ({**TINY, "resources": {"workers": 1.0}}, "resources.workers"),
    ],
)
def test_types_are_strict(server, body, field):
    assert_problem(httpx.post(server.url + "/v1/jobs", json=body), 422, "invalid-request", field)


def test_malformed_json_wrong_type_and_every_error_typed(server):
    url = server.url + "/v1/jobs"
    r = httpx.post(url, content=b'{"problem":\n  {name: 1}}', headers={"Content-Type": "application/json"})
    body = assert_problem(r, 400, "invalid-json")
    (err,) = body["errors"]
    assert err["field"] == "" and err["in"] == "body" and (err["line"], err["column"]) == (2, 4), err
    assert "line 2 column 4" in body["detail"]
    raw = json.dumps(TINY).encode()
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):  # curl -d sends a form
        assert_problem(httpx.post(url, content=raw, headers={"Content-Type": ctype}), 415, "unsupported-media-type")
    ok_type = {"Content-Type": "application/json; charset=utf-8"}  # parameters are fine: the spec is checked
    assert_problem(httpx.post(url, content=b'{"problem": 1}', headers=ok_type), 422, "invalid-request", "problem")
    assert_problem(httpx.delete(url), 405, "method-not-allowed")
    assert_problem(httpx.get(server.url + "/v1/nothing-here"), 404, "not-found")
    assert_problem(httpx.get(url + "/job_nope"), 404, "not-found")
    assert_problem(
        httpx.post(url, content=b"x" * (2 << 20), headers={"Content-Type": "application/json"}), 413, "too-large"
    )
    assert_problem(httpx.get(url + "?limit=0"), 422, "invalid-request", "limit")
    # docs/api.md lists each type with its status; all the ones answered above are among them.
    assert {"invalid-json", "unsupported-media-type", "method-not-allowed", "not-found", "too-large"} <= (
        documented_problem_types()
    )


@pytest.mark.parametrize(
    "override,field",
    [
        ({"problem": {"name": "poisson_two_body", "dim": 10_000_000}, "model": {"width": 4096}}, "model.width"),
        (
            {"problem": {"name": "poisson_two_body", "dim": 10_000_000}, "solver": {"batch_size": 100_000}},
            "solver.batch_size",
        ),
        (
            {"problem": {"name": "poisson_two_body", "dim": 10_000_000}, "eval": {"test_points": 10_000_000}},
            "eval.test_points",
        ),
    ],
)
def test_jointly_absurd_specs_are_refused_with_the_estimate(server, override, field):
    r = httpx.post(server.url + "/v1/jobs", json={**TINY, **override})
    body = assert_problem(r, 422, "not-admitted", field)
    adm = body["admission"]
    if field == "eval.test_points":
        assert adm["work"] == 10**14 and adm["work"] > adm["limit"]
        assert "1e+14" in body["detail"]
    else:
        assert adm["estimate_bytes"] > adm["limit_bytes"] > 0
        assert "GiB" in body["detail"] and "limit" in body["detail"]


def test_unplaceable_workers_are_refused_at_submit(server, client):
    before = len(list(client.iter_jobs()))
    r = httpx.post(server.url + "/v1/jobs", json={**TINY, "resources": {"workers": 3}})
    body = assert_problem(r, 422, "not-admitted", "resources.workers")
    assert "2 CPUs" in body["detail"] and "asked for 3" in body["detail"]
    r = httpx.post(server.url + "/v1/jobs", json={**TINY, "resources": {"gpus_per_worker": 1}})
    assert_problem(r, 422, "not-admitted", "resources.gpus_per_worker")
    assert len(list(client.iter_jobs())) == before  # nothing was queued


def test_artifacts_etag_304_and_head(server, client, shared):
    job = client.submit(TINY)
    job = wait_for_job(client, job["id"], lambda j: j["state"] not in ("queued", "running"), WAIT_S)
    assert job["state"] == "succeeded", job
    shared["done"] = job["id"]
    url = server.url + f"/v1/jobs/{job['id']}/artifacts/metrics.json"
    r = httpx.get(url)
    assert r.status_code == 200 and r.headers["etag"] == f'"{r.headers["x-content-sha256"]}"'
    etag = r.headers["etag"]
    for inm in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        r304 = httpx.get(url, headers={"If-None-Match": inm})
        assert r304.status_code == 304 and r304.content == b"" and r304.headers["etag"] == etag, inm
    assert httpx.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    h = httpx.head(url)
    assert h.status_code == 200 and h.content == b""
    assert int(h.headers["content-length"]) == len(r.content) and h.headers["etag"] == etag
    assert httpx.head(server.url + f"/v1/jobs/{job['id']}/artifacts/nope.bin").status_code == 404


def test_status_polls_stay_responsive_during_a_large_evaluate(server, client, shared):
    """A ~16 MiB JSON evaluate takes about a second to decode; status polls keep completing meanwhile."""
    jid = shared["done"]
    pts = np.random.default_rng(0).uniform(-0.5, 0.5, (36_000, 20))
    body = json.dumps({"points": pts.tolist()}).encode()
    assert len(body) < 16 << 20
    done = threading.Event()
    out: dict = {}

    def evaluate() -> None:
        t0 = time.monotonic()
        r = httpx.post(
            server.url + f"/v1/jobs/{jid}/evaluate",
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=120,
        )
        out.update(status=r.status_code, n=r.json().get("n"), t0=t0, t1=time.monotonic())
        done.set()

    httpx.get(server.url + f"/v1/jobs/{jid}")  # warm connection paths
    th = threading.Thread(target=evaluate)
    th.start()
    stamps = []
    with httpx.Client(timeout=60) as http:
        while not done.is_set():
            assert http.get(server.url + f"/v1/jobs/{jid}").status_code == 200
            stamps.append(time.monotonic())
    th.join()
    assert out["status"] == 200 and out["n"] == 36_000
    during = [t for t in stamps if out["t0"] <= t <= out["t1"]]
    span = out["t1"] - out["t0"]
    gaps = np.diff([out["t0"], *during, out["t1"]])
    # Decoding on the event loop froze every poll for the whole decode (one gap ≈ the evaluate's duration).
    assert len(during) >= 5 and gaps.max() < 0.5 * span, (span, len(during), float(gaps.max()))
    many = np.random.default_rng(1).uniform(-0.5, 0.5, (60_000, 20))
    big = json.dumps({"points": many.tolist()}).encode()  # over the JSON cap, under the .npy cap
    assert 16 << 20 < len(big) < 64 << 20
    r = httpx.post(server.url + f"/v1/jobs/{jid}/evaluate", content=big, headers={"Content-Type": "application/json"})
    assert_problem(r, 413, "too-large")
    buf = io.BytesIO()  # the same points as .npy are served
    np.save(buf, many)
    r = httpx.post(
        server.url + f"/v1/jobs/{jid}/evaluate", content=buf.getvalue(), headers={"Content-Type": "application/x-npy"}
    )
    assert r.status_code == 200 and np.load(io.BytesIO(r.content)).shape == (60_000,), r.text[:500]
    bad = httpx.post(
        server.url + f"/v1/jobs/{jid}/evaluate",
        content=b'{"points": [[1,2]',
        headers={"Content-Type": "application/json"},
    )
    assert_problem(bad, 400, "invalid-json")


def test_job_that_cannot_be_placed_now_waits_with_a_reason_and_cancels_at_once(server, client, shared):
    blocker = client.submit({**LONG, "resources": {"workers": 2}})
    wait_for_job(client, blocker["id"], lambda j: j["state"] == "running" and (j["progress"]["step"] or 0) >= 1)
    waiting = client.submit({**LONG, "seed": 1})
    job = wait_for_job(client, waiting["id"], lambda j: (j["reason"] or "").startswith("waiting for resources"), 30)
    assert job["state"] == "queued" and "0 free" in job["reason"], job
    c = client.cancel(waiting["id"])
    assert c["state"] == "cancelled", c  # at once: it never held a run slot
    client.cancel(blocker["id"])
    job = wait_for_job(client, blocker["id"], lambda j: j["state"] not in ("queued", "running"))
    assert job["state"] == "cancelled", job
    states = [e["state"] for e in client.events(waiting["id"]) if e["kind"] == "state"]
    assert "running" not in states and states[-1] == "cancelled", states
    shared["cancelled"] = [waiting["id"], blocker["id"]]


def _metric(text: str, name: str, state: str) -> float:
    m = re.search(rf'^{name}\{{state="{state}"\}} ([0-9.e+]+)$', text, flags=re.M)
    assert m, (name, state, text[-2000:])
    return float(m.group(1))


def test_finished_counters_agree_with_the_store(server, shared):
    text = httpx.get(server.url + "/metrics").text
    for state in ("succeeded", "failed", "cancelled"):
        assert _metric(text, "sdze_jobs_finished_total", state) == _metric(text, "sdze_jobs", state), state
    assert _metric(text, "sdze_jobs", "cancelled") >= 2  # one cancelled while queued, one while running


def test_a_failure_while_recording_the_result_fails_the_job(server, client):
    job = client.submit(LONG)
    wait_for_job(client, job["id"], lambda j: j["state"] == "running" and (j["progress"]["step"] or 0) >= 1)
    db = sqlite3.connect(server.data_dir / "jobs.db", timeout=30)
    db.execute("ALTER TABLE artifacts RENAME TO artifacts_hidden")  # recording the artifacts will fail
    db.commit()
    try:
        client.cancel(job["id"])
        job = wait_for_job(client, job["id"], lambda j: j["state"] != "running", 120)
    finally:
        db.execute("ALTER TABLE artifacts_hidden RENAME TO artifacts")
        db.commit()
        db.close()
    assert job["state"] == "failed" and "recording the result failed" in job["reason"], job
    assert "artifacts" in job["reason"]


def test_sigterm_leaves_no_ray_process_behind(server):
    """Last: stops the module's server. Ray's dashboard and runtime-env agents used to outlive it by a minute."""
    pid = server.proc.pid
    kids = descendant_pids(pid)
    names = {k: Path(f"/proc/{k}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace") for k in kids}
    assert any("raylet" in n for n in names.values()), names
    agents = [k for k, n in names.items() if "dashboard/agent.py" in n or "runtime_env" in n]
    assert agents, names  # the processes this test is about exist while the server runs
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(60)
    deadline = time.monotonic() + 10  # the server has exited: everything it started must be gone within seconds
    alive = kids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [k for k in kids if _alive(k)]
    assert not alive, {k: names[k][:120] for k in alive}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
