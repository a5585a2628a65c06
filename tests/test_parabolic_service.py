"""A time-dependent job through the real REST server (Ray worker, SQLite store, HTTP on loopback)."""

import io
import json
import math
import pathlib
import time

import httpx
import numpy as np
import pytest

from service.cli import main
from service.client_cli import slices_table
from service.testing import ServerProcess

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _finished(c: httpx.Client, jid: str, timeout: float = 240) -> dict:
    """Poll the job until it ends; its last view."""
    deadline = time.monotonic() + timeout
    while (job := c.get(f"/v1/jobs/{jid}").json())["state"] not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    return job


def _solved(c: httpx.Client, body: dict, keys: tuple[str, ...]) -> tuple[str, dict]:
    """Submit, wait, require success and the metrics ``keys`` present; (job id, metrics.json)."""
    r = c.post("/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    jid = r.json()["id"]
    job = _finished(c, jid)
    assert job["state"] == "succeeded", job
    m = c.get(f"/v1/jobs/{jid}/artifacts/metrics.json").json()
    for k in keys:
        assert m[k] is not None, k
    return jid, m


def test_time_dependent_job_over_rest(tmp_path, capsys):
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
        keys = ("rel_l2", "null_rel_l2", "null_terminal_rel_l2", "ref_rel_error", "ref_value", "val_residual")
        jid, m = _solved(c, spec, keys)
        ev = c.post(f"/v1/jobs/{jid}/evaluate", json={"points": [[0.0] * 21, [0.1] * 20 + [0.5]]})
        assert ev.status_code == 200 and ev.json()["n"] == 2, ev.text
        wrong = c.post(f"/v1/jobs/{jid}/evaluate", json={"points": [[0.0] * 20]})
        assert wrong.status_code == 422 and "then t" in wrong.text
        # History: every evaluation row carries the reference-point error (steps 0, 5, 10), the last one the final.
        rows = c.get(f"/v1/jobs/{jid}/history").json()["data"]
        assert [r["step"] for r in rows if r.get("ref_rel_error") is not None] == [0, 5, 10]
        assert rows[-1]["ref_rel_error"] == pytest.approx(m["ref_rel_error"], rel=1e-12)
        # Error against t: time_slices.json and the slice_* arrays of samples.npz, from the exported state.
        ts = c.get(f"/v1/jobs/{jid}/artifacts/time_slices.json").json()
        S = ts["slices"]
        assert ts["problem"] == "hjb_cole_hopf" and [s["t"] for s in S] == [0.0, 0.25, 0.5, 0.75, 1.0]
        assert all(s["rel_l2"] > 0 and s["points"] == 20 for s in S) and S[-1]["truth"] == "terminal condition"
        ref = m["best_ref_rel_error"] if m["exported_state"] == "best" else m["ref_rel_error"]
        assert S[0]["origin_rel_error"] == pytest.approx(ref, rel=1e-6)  # u(0, x0) of the exported state
        z = np.load(io.BytesIO(c.get(f"/v1/jobs/{jid}/artifacts/samples.npz").content))
        assert z["slice_u_pred"].shape == (5, 20) and z["slice_t"].tolist() == [s["t"] for s in S]
        rel = np.linalg.norm(z["slice_u_pred"] - z["slice_u_ref"], axis=1) / np.linalg.norm(z["slice_u_ref"], axis=1)
        np.testing.assert_allclose(rel, [s["rel_l2"] for s in S], rtol=1e-9)
        # The client CLI prints the same table.
        assert main(["status", jid, "--url", srv.url]) == 0
        out = capsys.readouterr().out
        assert "ref_err" in out and slices_table(ts) in out
        # a time-dependent PDE written out in the language (docs/pde.md), not a catalogue name, on the same server
        user = {
            **spec,
            "problem": {
                "dim": 8,
                "pde": {"operator": {"laplacian": 1.0}, "reaction": "sin(t) - 2 + u - cos(t) - norm2(x) / d"},
                "time": {"horizon": 0.5, "terminal": "cos(0.5) + norm2(x) / d"},
                "exact": "cos(t) + norm2(x) / d",
            },
        }
        bad = c.post("/v1/jobs", json={**user, "problem": {**user["problem"], "time": {"horizon": 1, "terminal": "t"}}})
        assert bad.status_code == 422 and "time.terminal" in bad.text, bad.text
        uid, m = _solved(c, user, ("rel_l2", "null_rel_l2", "ref_rel_error", "val_residual"))
        ev = c.post(f"/v1/jobs/{uid}/evaluate", json={"points": [[0.0] * 9, [0.1] * 8 + [0.5]]})
        assert ev.status_code == 200 and ev.json()["n"] == 2, ev.text
        # at t = T the hard rule gives u = g exactly: cos(0.5) + 8·0.01/8
        assert abs(ev.json()["u"][1] - (math.cos(0.5) + 0.01)) < 1e-5, ev.text
        # the same on a bounded domain (the shipped heat-kernel example on the ball of radius √d, at d = 8)
        ball = json.loads((ROOT / "examples" / "heat_ball_time_d100.json").read_text())["problem"]
        ball = {**spec, "problem": {**ball, "dim": 8}}
        soft = {**ball["problem"], "time": {**ball["problem"]["time"], "rule": "soft"}}
        bad = c.post("/v1/jobs", json={**ball, "problem": soft})
        assert bad.status_code == 422 and "time.rule" in bad.text and "hard rule" in bad.text, bad.text
        keys = ("rel_l2", "null_rel_l2", "null_terminal_rel_l2", "ref_rel_error", "val_residual")
        bid, m = _solved(c, ball, keys)
        assert all(math.isfinite(m[k]) for k in keys), m
        # on the sphere |x|² = d the hard rule gives the boundary values h(x, t) whatever the network learned
        ev = c.post(f"/v1/jobs/{bid}/evaluate", json={"points": [[1.0] * 8 + [0.5]]})
        h = math.exp(-4 * math.log(1 + 4 * 0.5 / 8) - 8 / (8 + 4 * 0.5))
        assert ev.status_code == 200 and abs(ev.json()["u"][0] - h) < 1e-5, ev.text
