"""The CLI's one-line job summary: aniso beside rel L2, the held-out residual where no exact solution applies, the
reference-point error and the error against t for time-dependent problems."""

import json

from service.cli import main
from service.client_cli import _summary, slices_table


def _job(problem: dict, progress: dict) -> dict:
    return {"id": "j1", "state": "running", "spec": {"problem": problem}, "progress": progress}


def test_catalogue_job_shows_rel_l2_and_aniso():
    line = _summary(
        _job(
            {"name": "sine_gordon_two_body", "dim": 1000}, {"step": 5, "steps": 10, "rel_l2": 1e-3, "aniso_ratio": 0.1}
        )
    )
    assert "rel_l2 1.000e-03" in line and "aniso 0.100" in line and "sine_gordon_two_body d=1000" in line


def test_user_pde_without_exact_solution_shows_the_residual():
    problem = {"dim": 50, "domain": {"kind": "cube"}, "pde": {"operator": {"laplacian": 1.0}, "source": "1"}}
    line = _summary(_job(problem, {"step": 5, "steps": 10, "rel_l2": None, "val_residual": 0.25}))
    assert "residual 2.500e-01" in line and "aniso" not in line and "user PDE d=50" in line


def test_time_dependent_job_shows_the_reference_point_error():
    heat = _job({"name": "semilinear_heat", "dim": 1000}, {"step": 5, "steps": 10, "rel_l2": None, "val_residual": 2.0})
    heat["metrics"] = {"ref_rel_error": 0.0108}
    line = _summary(heat)
    assert "ref_err 1.080e-02 (at the reference point)" in line and "residual" not in line and "aniso" not in line
    # a closed form as well: rel L2 and aniso, with the reference-point error beside them (here from progress)
    hjb = _job(
        {"name": "hjb_cole_hopf", "dim": 100},
        {"step": 5, "steps": 10, "rel_l2": 0.04, "aniso_ratio": 0.39, "ref_rel_error": 7.5e-3},
    )
    line = _summary(hjb)
    assert "rel_l2 4.000e-02" in line and "aniso 0.390" in line and "ref_err 7.500e-03" in line


def test_sdze_solve_prints_the_error_against_t(tmp_path, capsys):
    """A real local solve of a point-reference problem: the summary carries ref_rel_error, the table the slices."""
    spec = {
        "problem": {"name": "semilinear_heat", "dim": 10},
        "model": {"width": 16, "depth": 3},
        "solver": {"method": "sdgd_adam", "steps": 6, "batch_size": 16, "samples": 3},
        "eval": {"test_points": 100, "every": 3, "sample_points": 20},
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    assert main(["solve", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[: out.index("}") + 1])
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert summary["ref_rel_error"] == metrics["ref_rel_error"] and summary["ref_null_rel_error"] > 0
    assert "null_terminal_rel_l2" not in summary and summary["rel_l2"] is None  # no closed form: no test-set figures
    ts = json.loads((tmp_path / "out" / "time_slices.json").read_text())
    assert slices_table(ts) in out and "time_slices.json" in out
    rows = slices_table(ts).splitlines()[2:]
    assert len(rows) == 5 and rows[0].split()[-2:] == ["reference", "point"]
    assert rows[2].endswith("nothing (no reference at this t)") and rows[4].endswith("terminal condition")
    assert rows[0].split()[1] == f"{ts['slices'][0]['rel_l2']:.3e}"
