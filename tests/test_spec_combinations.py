"""Option combinations are checked once, at submit: a one-line error at ``sdze solve``, 422 at ``POST /v1/jobs``.

The check itself is ``sdze_core.build.conflicts``; both doors reach it through ``JobSpec`` validation.
"""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from pydantic import ValidationError

from sdze_core.spec import JobSpec
from service.testing import ServerProcess

BASE = {"problem": {"name": "poisson_two_body", "dim": 10}, "model": {"width": 8}, "eval": {"test_points": 50}}

# (solver section, resources, the fields the error must name)
CONFLICTS = [
    ({"method": "sdze", "optimizer_state": "full"}, {}, {"solver.optimizer_state", "solver.update", "solver.method"}),
    ({"method": "sdze", "gradient": "two_point"}, {}, {"solver.w1_probes", "solver.gradient", "solver.method"}),
    ({"method": "sdze", "w1_basis": "random"}, {}, {"solver.w1_probes", "solver.w1_basis"}),
    ({"method": "sdze_published", "w1_probes": "jacobian"}, {}, {"solver.w1_probes", "solver.update"}),
    ({"method": "zo_full", "update": "gn"}, {}, {"solver.update", "solver.perturbation"}),
    ({"method": "zo_full", "gradient": "forward"}, {}, {"solver.gradient", "solver.perturbation"}),
    ({"method": "sdze_no_crns", "w1_basis": "data"}, {}, {"solver.crns", "solver.w1_basis"}),
    ({"method": "sdgd_adam", "q": 4}, {}, {"solver.q"}),
    ({"method": "hte_adam"}, {"workers": 2}, {"solver.method", "resources.workers"}),
    ({"method": "sdze", "gn_holdout": "on", "gn_backtracks": 0}, {}, {"solver.gn_holdout", "solver.gn_backtracks"}),
    ({"method": "sdze_published", "gn_holdout": "on"}, {}, {"solver.gn_holdout", "solver.update"}),
]
VALID = [
    {"method": "sdze", "gradient": "two_point", "w1_probes": "random"},
    {"method": "sdze_published", "optimizer_state": "full"},
    {"method": "sdze_published", "w1_probes": "jacobian", "update": "gn", "gradient": "forward", "w1_basis": "data"},
    {"method": "sdgd_adam", "lr": 0.01},
    {"method": "sdze", "gn_holdout": "on"},
]


def _spec(solver: dict, resources: dict | None = None) -> dict:
    return {**BASE, "solver": {"steps": 3, **solver}, "resources": resources or {}}


@pytest.mark.parametrize("solver,resources,fields", CONFLICTS)
def test_each_conflict_names_its_fields(solver, resources, fields):
    with pytest.raises(ValidationError) as e:
        JobSpec.model_validate(_spec(solver, resources))
    named = {".".join(map(str, err["loc"])) for err in e.value.errors()}
    assert fields <= named, named


@pytest.mark.parametrize("solver", VALID)
def test_the_same_knobs_in_a_possible_combination_are_accepted(solver):
    JobSpec.model_validate(_spec(solver)).to_config()


def test_sdze_solve_prints_one_line_and_exits(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_spec({"method": "sdze", "optimizer_state": "full"})))
    r = subprocess.run(
        [sys.executable, "-m", "service.cli", "solve", str(bad), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "solver.optimizer_state" in lines[0] and "solver.method" in lines[0] and "'sgd'" in lines[0]
    assert not (tmp_path / "out").exists()  # refused before anything ran
    adam = tmp_path / "adam.json"
    adam.write_text(json.dumps(_spec({"method": "sdgd_adam"})))
    r = subprocess.run(
        [sys.executable, "-m", "service.cli", "solve", str(adam), "--out", str(tmp_path / "out"), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "resources.workers" in r.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("svc"), env={"SDZE_RAY_NUM_CPUS": "1"}).start()
    yield srv
    srv.stop()


@pytest.mark.ray
@pytest.mark.slow
def test_rest_submit_refuses_conflicts_with_422_naming_the_fields_and_queues_nothing(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for solver, resources, fields in CONFLICTS:
            r = c.post("/v1/jobs", json=_spec(solver, resources))
            assert r.status_code == 422, (solver, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            named = {e["field"] for e in r.json()["errors"]}
            assert fields <= named, (solver, named)
        assert c.get("/v1/jobs").json()["data"] == []  # no job was created, none fails later
        ok = c.post("/v1/jobs", json=_spec(VALID[0]))  # the control: the same override, made consistent
        assert ok.status_code == 202, ok.text
        c.post(f"/v1/jobs/{ok.json()['id']}/cancel")
