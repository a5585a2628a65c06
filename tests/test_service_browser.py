"""The web pages in a real headless Chromium against a real ``sdze serve`` on loopback (real Ray, tiny jobs).

One server for the module runs three tiny jobs (``sdze`` and ``sdgd_adam`` on the same PDE, and one that
diverges); the tests then check what a person would see: curves with as many points as the history, the null
line, the compare view, a failed job's one-line reason, and ``/docs`` with the network cut. With
``SDZE_SCREENSHOTS=DIR`` each page is also saved as a PNG (the README's pictures come from
``SDZE_SCREENSHOTS=docs/img python -m pytest tests/test_service_browser.py``).
"""

from __future__ import annotations

import csv
import html
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from service.client import Client
from service.job_store import JobStore
from service.reasons import one_line, strip_ansi, write_error_log
from service.routers.history import null_rel_l2, rows_from_events
from service.testing import ServerProcess, wait_for_job

TOKEN = "page-token-123"
TINY = {
    "problem": {"name": "poisson_two_body", "dim": 20},
    "model": {"width": 16},
    "solver": {"method": "sdze", "steps": 40},
    "eval": {"test_points": 200, "every": 5, "sample_points": 100},
}
# Adam with lr 10 on the biharmonic: the loss explodes within a few steps (a diverged job, with history).
DIVERGES = {
    "problem": {"name": "biharmonic_three_body", "dim": 20},
    "model": {"width": 16},
    "solver": {"method": "sdgd_adam", "steps": 40, "lr": 10.0},
    "eval": {"test_points": 200, "every": 1, "sample_points": 100},
}
# A PDE written out, with no exact solution: the pages show its residual metrics instead of rel L2 and aniso.
NO_EXACT = {
    "problem": {
        "dim": 5,
        "domain": {"kind": "cube", "low": -1.0, "high": 1.0},
        "pde": {"operator": {"laplacian": 1.0}, "source": "-1 + x[0] * x[1]"},
        "boundary": "sum(x[i]^2, i) / d",
    },
    "model": {"width": 16},
    "solver": {"method": "sdze", "steps": 20},
    "eval": {"test_points": 200, "every": 5, "sample_points": 100},
}
# Time-dependent problems (parabolic/): one with an exact solution at every t, one known only at (0, x₀) and at T.
TIME_HJB = {  # no method named: "auto" (the default) resolves it, and the pages say so
    "problem": {"name": "hjb_cole_hopf", "dim": 10},
    "model": {"width": 16},
    "solver": {"steps": 20},
    "eval": {"test_points": 200, "every": 5, "sample_points": 50},
}
TIME_HEAT = {
    **TIME_HJB,
    "problem": {"name": "semilinear_heat", "dim": 10},
    "solver": {"method": "sdgd_adam", "steps": 20},
}
TERMINAL = ("succeeded", "failed", "cancelled")
# A real Ray ActorDiedError text (captured from an actor whose __init__ raised), colours included.
RAY_ERROR = (
    "worker-lost: workers lost 4 times; giving up. Last: ActorDiedError: The actor died because of an error raised "
    "in its creation task, \x1b[36mray::ReplicaWorker.__init__()\x1b[39m (pid=8496, ip=192.0.2.2, "
    "actor_id=d369201b1b73da8fe4fd0c7901000000, repr=<worker.actor.ReplicaWorker object at 0x7f80955bcb50>)\n"
    "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
    '  File "/app/worker/actor.py", line 6, in __init__\n'
    '    raise MemoryError("cannot allocate 8.0 GiB for the batch")\n'
    "MemoryError: cannot allocate 8.0 GiB for the batch"
)


# ------------------------------------------------------------------------------------- failure reasons
def test_one_line_strips_ansi_and_keeps_what_and_why():
    line = one_line(RAY_ERROR)
    assert "\x1b" not in line and "\n" not in line and "[36m" not in line
    assert line.startswith("worker-lost: workers lost 4 times")
    assert line.endswith("— MemoryError: cannot allocate 8.0 GiB for the batch")
    assert "pid=" not in line and "File " not in line
    assert len(line) <= 240


def test_one_line_traceback_only_and_plain_reasons():
    tb = 'Traceback (most recent call last):\n  File "x.py", line 1, in f\n    g()\nValueError: bad width'
    assert one_line(tb) == "ValueError: bad width"
    assert one_line("diverged: loss became inf at step 2") == "diverged: loss became inf at step 2"
    assert one_line(None) is None
    assert one_line("x" * 500).endswith("…") and len(one_line("x" * 500)) == 240
    assert strip_ansi("\x1b]8;;http://x\x07link\x1b]8;;\x07 \x1b[1;31mred\x1b[0m") == "link red"


def test_error_log_keeps_the_full_text_without_colours(tmp_path):
    write_error_log(tmp_path / "error.log", RAY_ERROR, "Traceback (most recent call last):\n  ...\nWorkersLost: x\n")
    text = (tmp_path / "error.log").read_text()
    assert "\x1b" not in text
    assert "ray::ReplicaWorker.__init__() (pid=8496" in text  # the log keeps what the line drops
    assert 'raise MemoryError("cannot allocate 8.0 GiB for the batch")' in text and "WorkersLost: x" in text


# ------------------------------------------------------------------------------ history from stored events
def test_rows_from_events_take_test_metrics_from_evaluations_only(tmp_path):
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    job, _ = store.create_job("me", {"problem": {"name": "poisson_two_body", "dim": 5}}, "sha", None, 10)
    base = {"steps": 30, "steps_per_s": 5.0, "eta_s": 1.0}
    for step, event, rel, val in [
        (1, "step", 0.9, 3.0),
        (5, "eval", 0.5, 2.0),
        (7, "step", 0.5, 2.0),
        (10, "done", 0.25, 1.5),
    ]:
        data = {**base, "step": step, "loss": 10.0 / step, "train_s": 0.1 * step, "event": event, "ref_rel_error": val}
        store.set_progress(job.id, {**data, "rel_l2": rel, "aniso_ratio": rel / 0.05, "val_residual": val})
    store.add_event(job.id, "state", {"state": "running"})
    store.set_progress(job.id, {**base, "step": 10, "loss": 1.0, "train_s": 1.0, "event": "step"})  # repeats step 10
    rows = rows_from_events(store, job.id)
    assert [r["step"] for r in rows] == [1, 5, 7, 10]
    assert [r.get("rel_l2") for r in rows] == [None, 0.5, None, 0.25]  # step events repeat the last evaluation
    assert [r.get("val_residual") for r in rows] == [None, 2.0, None, 1.5]  # residual metrics ride along
    assert [r.get("ref_rel_error") for r in rows] == [None, 2.0, None, 1.5]  # and the reference-point error
    assert rows[-1]["loss"] == 1.0 and rows[0]["train_s"] == pytest.approx(0.1)
    assert null_rel_l2(store.get(job.id), rows) == pytest.approx(0.05)  # rel_l2 / aniso_ratio of an evaluation
    store.close()


# ------------------------------------------------------------------------------- a real server, real jobs
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {
        "SDZE_TOKENS": TOKEN,
        "SDZE_MAX_CONCURRENT_JOBS": "2",
        "SDZE_PROGRESS_INTERVAL_S": "0.2",
        "SDZE_RAY_NUM_CPUS": "2",
    }
    srv = ServerProcess(tmp_path_factory.mktemp("page"), env=env).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    with Client(server.url, token=TOKEN) as c:
        yield c


@pytest.fixture(scope="module")
def jobs(client):
    """Six finished jobs: sdze and sdgd_adam on the same PDE, one that diverged, one without an exact solution, and
    two time-dependent ones (exact solution; point reference only)."""
    ids = {
        "sdze": client.submit(TINY)["id"],
        "adam": client.submit({**TINY, "solver": {"method": "sdgd_adam", "steps": 40, "lr": 0.01}})["id"],
        "failed": client.submit(DIVERGES)["id"],
        "no_exact": client.submit(NO_EXACT)["id"],
        "hjb": client.submit(TIME_HJB)["id"],
        "heat": client.submit(TIME_HEAT)["id"],
    }
    return {k: wait_for_job(client, v, lambda j: j["state"] in TERMINAL, timeout=240) for k, v in ids.items()}


def _get(server, path: str, **kw) -> httpx.Response:
    return httpx.get(server.url + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30, **kw)


def _csv_rows(server, job_id: str) -> list[dict]:
    r = _get(server, f"/v1/jobs/{job_id}/artifacts/history.csv")
    assert r.status_code == 200, r.text
    return list(csv.DictReader(io.StringIO(r.text)))


def test_history_is_the_history_csv(server, jobs):
    job = jobs["sdze"]
    assert job["state"] == "succeeded", job
    rows = _csv_rows(server, job["id"])
    h = _get(server, f"/v1/jobs/{job['id']}/history").json()
    assert h["source"] == "history.csv" and h["complete"] and not h["has_more"] and h["state"] == "succeeded"
    assert [r["step"] for r in h["data"]] == [int(r["step"]) for r in rows] == list(range(41))
    for got, want in zip(h["data"], rows, strict=True):
        assert got["loss"] == (float(want["loss"]) if want["loss"] else None)
        assert got["rel_l2"] == (float(want["rel_l2"]) if want["rel_l2"] else None)
    assert [r["step"] for r in h["data"] if r["rel_l2"] is not None] == list(range(0, 41, 5))
    assert h["null_rel_l2"] == pytest.approx(job["metrics"]["null_rel_l2"])
    # Incremental: ?after= returns only later steps, in pages of ?limit=.
    page = _get(server, f"/v1/jobs/{job['id']}/history?after=30&limit=4").json()
    assert [r["step"] for r in page["data"]] == [31, 32, 33, 34] and page["has_more"] and page["next_after"] == 34
    assert _get(server, f"/v1/jobs/{job['id']}/history?after=40").json()["data"] == []
    assert httpx.get(server.url + f"/v1/jobs/{job['id']}/history").status_code == 401
    assert _get(server, "/v1/jobs/job_nope/history").status_code == 404
    assert _get(server, f"/v1/jobs/{job['id']}/history?after=-5").status_code == 422


def test_failed_job_one_line_reason_and_full_log(server, jobs):
    job = jobs["failed"]
    assert job["state"] == "failed" and job["reason"].startswith("diverged:"), job
    assert "\n" not in job["reason"] and "\x1b" not in job["reason"]
    names = {a["name"] for a in _get(server, f"/v1/jobs/{job['id']}/artifacts").json()["data"]}
    assert {"error.log", "history.csv", "metrics.json"} <= names
    log = _get(server, f"/v1/jobs/{job['id']}/log")
    assert log.status_code == 200 and log.headers["content-type"].startswith("text/plain")
    assert job["reason"] in log.text and "attachment" in log.headers["content-disposition"]
    # Its curves go up to where it stopped: every step it took, from history.csv.
    h = _get(server, f"/v1/jobs/{job['id']}/history").json()
    steps_done = job["metrics"]["steps_done"]
    assert h["source"] == "history.csv" and [r["step"] for r in h["data"]] == list(range(steps_done + 1))
    assert _get(server, f"/v1/jobs/{jobs['sdze']['id']}/log").status_code == 404  # succeeded: nothing to log


def test_running_job_history_from_events_then_cancelled_curve(server, client, jobs, tmp_path):
    long = {**TINY, "solver": {"method": "sdze_published", "steps": 100_000}, "eval": {**TINY["eval"], "every": 10}}
    job_id = client.submit(long)["id"]
    wait_for_job(client, job_id, lambda j: (j["progress"].get("step") or 0) >= 25, timeout=120)
    h = _get(server, f"/v1/jobs/{job_id}/history").json()
    assert h["source"] == "events" and not h["complete"] and h["state"] == "running"
    steps = [r["step"] for r in h["data"]]
    assert steps == sorted(set(steps)) and steps[-1] >= 20
    # Test metrics only on evaluation rows (a step event repeats the last evaluation).
    assert {r["step"] % 10 for r in h["data"] if r.get("rel_l2") is not None} == {0}
    assert h["null_rel_l2"] is not None
    later = _get(server, f"/v1/jobs/{job_id}/history?after={steps[-1]}").json()
    assert all(r["step"] > steps[-1] for r in later["data"])
    if shutil.which("chromium") or Path("/usr/bin/chromium").exists():
        # The page follows the running job over its SSE stream ("live" is written by the event handler). On a
        # loaded machine the stream's first bytes may miss Chromium's virtual-time budget: look again, up to 3 times.
        for _ in range(3):
            dom = _browse(f"{server.url}/job?id={job_id}#token={TOKEN}", tmp_path, "running", 1500)
            if "live · updated" in dom:
                break
        status = re.search(r'<p id="status"[^>]*>([^<]*)<', dom)
        assert "live · updated" in dom, status.group(1) if status else dom[-3000:]
        assert "from progress events (thinned while it runs)" in dom
        assert int(_attrs(dom, "loss-chart")["data-points"]) >= len([r for r in h["data"] if r.get("loss")])
    client.cancel(job_id)
    job = wait_for_job(client, job_id, lambda j: j["state"] in TERMINAL, timeout=120)
    assert job["state"] == "cancelled"
    h = _get(server, f"/v1/jobs/{job_id}/history").json()
    assert h["source"] == "history.csv" and h["complete"]
    assert [r["step"] for r in h["data"]] == list(range(job["metrics"]["steps_done"] + 1))


# ------------------------------------------------------------------------------------ in a real browser
def _chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (scripts/system_deps.sh installs it)")
        pytest.skip("chromium not installed")
    return path


def _browse(url: str, tmp_path: Path, shot: str | None = None, height: int = 1400) -> str:
    """The page's DOM after its scripts ran (and a screenshot into $SDZE_SCREENSHOTS/<shot>.png if asked).

    Every host but the loopback address resolves to nothing, as on a cluster without internet access."""
    base = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        f"--user-data-dir={tmp_path / 'chromium'}",
        f"--window-size=1280,{height}",
        "--virtual-time-budget=6000",
    ]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    out = os.environ.get("SDZE_SCREENSHOTS")
    if out and shot:
        Path(out).mkdir(parents=True, exist_ok=True)
        path = Path(out).resolve() / f"{shot}.png"
        subprocess.run([*base, f"--screenshot={path}", url], capture_output=True, timeout=120, check=True)
    return dom


def _attrs(dom: str, elem_id: str) -> dict[str, str]:
    m = re.search(rf'<[a-z]+ id="{elem_id}"([^>]*)>', dom)
    assert m, f"no #{elem_id} in the page: {dom[-2000:]}"
    return {k: html.unescape(v) for k, v in re.findall(r'([\w-]+)="([^"]*)"', m.group(1))}


def _fmt(x: float) -> str:
    """common.js fmt(x): three decimals, or toExponential(3) (exponent unpadded) below 1e-2 and from 1e4."""
    if abs(x) >= 1e4 or (abs(x) < 1e-2 and x != 0):
        mant, exp = f"{x:.3e}".split("e")
        return f"{mant}e{int(exp):+d}"
    return f"{x:.3f}"


def _text(dom: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", dom))


@pytest.mark.browser
def test_browser_job_page_curves_spec_and_null_line(server, jobs, tmp_path):
    job = jobs["sdze"]
    rows = _csv_rows(server, job["id"])
    dom = _browse(f"{server.url}/job?id={job['id']}#token={TOKEN}", tmp_path, "job", 1500)
    # As many points as the history has: every step's loss, every evaluation's rel L2.
    n_loss = sum(1 for r in rows if r["loss"])
    n_rel = sum(1 for r in rows if r["rel_l2"])
    assert _attrs(dom, "loss-chart")["data-points"] == str(n_loss) == "40"
    err = _attrs(dom, "error-chart")
    assert err["data-points"] == f"{n_rel},{len(rows)}"  # rel L2, and the null across every x
    assert err["data-series"] == "rel L2 (test set)|constant null"
    assert float(err["data-null"]) == pytest.approx(job["metrics"]["null_rel_l2"])
    assert dom.count('class="uplot') == 2 and dom.count("<canvas") == 2  # both charts drawn by uPlot
    text = _text(dom)
    assert "Below the line = learned more than a constant" in text
    assert "poisson_two_body, d = 20" in text and "40 steps" in text and "sdze" in text
    assert "41 rows from history.csv" in text
    assert re.search(r"aniso\s+" + re.escape(f"{job['metrics']['aniso_ratio']:.3f}"), text), text[:3000]
    assert "model.safetensors" in text and "history.csv" in text


@pytest.mark.browser
def test_browser_list_has_aniso_reason_and_compare(server, jobs, tmp_path):
    dom = _browse(f"{server.url}/#token={TOKEN}", tmp_path, "jobs", 700)
    for key in ("sdze", "adam", "failed"):
        assert f'data-job="{jobs[key]["id"]}" data-state="{jobs[key]["state"]}"' in dom
    assert dom.count('class="pick"') >= 3 and 'id="compare"' in dom
    text = _text(dom)
    assert f"{jobs['adam']['metrics']['aniso_ratio']:.3f}" in text
    assert jobs["failed"]["reason"] in text and "below 1, the model learned more than a constant" in text
    # Without a token the page shows the API's refusal instead of jobs.
    dom = _browse(f"{server.url}/", tmp_path)
    assert "error: 401" in dom and 'data-job="' not in dom


@pytest.mark.browser
def test_browser_compare_two_jobs_on_one_plot(server, jobs, tmp_path):
    a, b = jobs["sdze"], jobs["adam"]
    dom = _browse(f"{server.url}/compare?ids={a['id']},{b['id']}#token={TOKEN}", tmp_path, "compare", 1000)
    box = _attrs(dom, "compare-chart")
    assert box["data-jobs"] == "2"
    labels = box["data-series"].split("|")
    assert labels[0].startswith("sdze · poisson_two_body d=20") and labels[1].startswith("sdgd_adam · poisson_two_body")
    assert labels[2] == "constant null"
    n_rel = [sum(1 for r in _csv_rows(server, j["id"]) if r["rel_l2"]) for j in (a, b)]
    assert box["data-points"].split(",")[:2] == [str(n) for n in n_rel]
    assert f'data-job="{a["id"]}"' in dom and f'data-job="{b["id"]}"' in dom


@pytest.mark.browser
def test_browser_compare_reference_point_errors(server, jobs, tmp_path):
    a, b = jobs["heat"], jobs["hjb"]
    url = f"{server.url}/compare?ids={a['id']},{b['id']}&metric=ref_rel_error#token={TOKEN}"
    box = _attrs(_browse(url, tmp_path, "compare-time", 1000), "compare-chart")
    labels = box["data-series"].split("|")
    assert labels[0].startswith("sdgd_adam · semilinear_heat d=10") and labels[1].startswith("auto → sdze · hjb_cole")
    assert labels[2:] == ["terminal-only null 1", "terminal-only null 2"]  # g(x₀) alone, one per problem
    n_ref = [sum(1 for r in _csv_rows(server, j["id"]) if r["ref_rel_error"]) for j in (a, b)]
    assert box["data-points"].split(",")[:2] == [str(n) for n in n_ref] == ["5", "5"]
    # a point-reference job alone has no rel L2: the page opens on the reference-point error
    box = _attrs(_browse(f"{server.url}/compare?ids={a['id']}#token={TOKEN}", tmp_path), "compare-chart")
    assert box["data-series"].split("|") == [labels[0], "terminal-only null"] and box["data-points"] == "5,5"


@pytest.mark.browser
def test_browser_failed_job_shows_one_line_reason(server, jobs, tmp_path):
    job = jobs["failed"]
    dom = _browse(f"{server.url}/job?id={job['id']}#token={TOKEN}", tmp_path, "failed", 1100)
    m = re.search(r'<span class="reason-line"[^>]*>([^<]*)</span>', dom)
    assert m and html.unescape(m.group(1)) == job["reason"], dom[-3000:]
    assert "full log" in dom and "\x1b" not in dom
    steps_done = job["metrics"]["steps_done"]
    assert _attrs(dom, "loss-chart")["data-points"] == str(steps_done)  # its curve up to where it stopped


@pytest.mark.browser
def test_browser_pde_without_exact_solution_shows_residual(server, jobs, tmp_path):
    job = jobs["no_exact"]
    assert job["state"] == "succeeded" and job["metrics"]["rel_l2"] is None, job
    n_val = sum(1 for r in _csv_rows(server, job["id"]) if r.get("val_residual"))
    dom = _browse(f"{server.url}/job?id={job['id']}#token={TOKEN}", tmp_path, "no-exact", 1500)
    err = _attrs(dom, "error-chart")
    assert err["data-series"] == "held-out residual (RMS)" and err["data-points"] == str(n_val) and n_val == 5
    assert err["data-null"] == ""  # no exact solution: no null line
    text = _text(dom)
    assert "PDE laplacian[u] = -1 + x[0] * x[1]" in " ".join(text.split())
    assert re.search(r'<th>held-out residual \(RMS\)</th><td id="f-held-out-residual-RMS-">[0-9.e+-]+</td>', dom)
    assert "rel L2 – (no exact solution: residual metrics instead)" in " ".join(text.split())
    dom = _browse(f"{server.url}/#token={TOKEN}", tmp_path)
    row = re.search(rf'<tr data-job="{job["id"]}".*?</tr>', dom, re.S)
    assert row and "held-out residual (RMS) instead of rel L2" in row.group(0) and "n/a" in row.group(0)


@pytest.mark.browser
@pytest.mark.parametrize("key", ["hjb", "heat"])
def test_browser_time_dependent_job_error_against_t(server, jobs, tmp_path, key):
    job = jobs[key]
    assert job["state"] == "succeeded", job
    m, rows = job["metrics"], _csv_rows(server, job["id"])
    ts = _get(server, f"/v1/jobs/{job['id']}/artifacts/time_slices.json").json()
    dom = _browse(f"{server.url}/job?id={job['id']}#token={TOKEN}", tmp_path, f"time-{key}", 2900)
    # The reference-point error over the run: every evaluation's row, and the terminal-only null across every x.
    n_ref = sum(1 for r in rows if r["ref_rel_error"])
    assert n_ref == 5  # steps 0, 5, 10, 15, 20
    ref = _attrs(dom, "ref-chart")
    assert (
        ref["data-points"] == f"{n_ref},{len(rows)}"
        and ref["data-series"] == "rel. error at the reference point|terminal-only null"
    )
    assert float(ref["data-null"]) == pytest.approx(m["ref_null_rel_error"])
    # Error against t from time_slices.json: one point per slice where u is known there (a zero is not drawable).
    S = ts["slices"]
    assert [s["t"] for s in S] == pytest.approx([k * ts["T"] / 4 for k in range(5)])

    def drawn(k):
        return sum(1 for s in S if s[k] is not None and s[k] > 0)

    tc = _attrs(dom, "time-chart")
    if key == "hjb":  # known at every t (u*, and g at T); the nulls are zero at t = T
        assert [drawn("rel_l2"), drawn("null_terminal_rel_l2"), drawn("null_rel_l2")] == [5, 4, 4]
        assert tc["data-points"] == "5,4,4" and tc["data-series"].endswith("|best-constant null g + (T − t)K")
        assert _attrs(dom, "origin-chart")["data-points"] == "5,5"
        assert "u is known at every t" in _text(dom)
        assert "the best constant K in g + (T − t)·K (the null" in _text(dom)
        assert m["method"] == "sdze" and m["method_choice"].startswith("auto: time_soft problems")
        flat = " ".join(_text(dom).split())
        assert "auto → sdze" in flat and " ".join(m["method_choice"].split()) in flat
    else:  # known only at (0, x₀) (the reference value) and at t = T (g)
        assert [s["truth"] for s in S] == ["reference point", None, None, None, "terminal condition"]
        assert tc["data-points"] == "2,1" and tc["data-series"] == "rel L2 at t (model)|terminal-only null (N = 0)"
        assert _attrs(dom, "origin-chart")["data-points"] == "5,2"
        known = "Known for this problem only at t = 0.000 (reference point), t = 0.300 (terminal condition)"
        assert known in _text(dom)
        # the job list shows its reference-point error where other jobs show rel L2
        row = re.search(rf'<tr data-job="{job["id"]}".*?</tr>', _browse(f"{server.url}/#token={TOKEN}", tmp_path), re.S)
        assert row and f"ref. point {_fmt(m['ref_rel_error'])}" in html.unescape(row.group(0)), row
    assert dom.count("<canvas") == 5  # loss, rel L2 or residual, reference point, error against t, u(t, x₀)
    text = " ".join(_text(dom).split())
    assert f"ref. point error {_fmt(m['ref_rel_error'])}" in text


@pytest.mark.browser
def test_browser_api_docs_render_offline(server, tmp_path):
    dom = _browse(f"{server.url}/docs", tmp_path, "docs", 900)
    assert "/static/vendor/swagger-ui-bundle.js" in dom and "cdn" not in dom.lower()
    assert 'class="opblock-summary-path"' in dom or "opblock-summary-path" in dom, dom[-2000:]
    assert "/v1/jobs/{job_id}/history" in html.unescape(dom)
    dom = _browse(f"{server.url}/redoc", tmp_path)
    assert "redoc.standalone.js" in dom and "Training history (curves)" in html.unescape(dom), dom[-2000:]
