"""The CLI's one-line job summary: aniso beside rel L2, the held-out residual where no exact solution applies."""

from service.client_cli import _summary


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
