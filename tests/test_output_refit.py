"""The output refit (``sdze_core.output_refit``): the output layer re-solved by least squares after the last step."""

from __future__ import annotations

import pytest
import torch

from sdze_core.config import PRESETS
from sdze_core.output_refit import MIN_POINTS_PER_UNKNOWN, refit_output_layer, refit_points, refit_rows
from sdze_core.output_refit import solve_output_layer as solve
from sdze_core.solver import Solver
from sdze_core.spec import JobSpec
from sdze_core.trainer import Trainer
from sdze_core.validation import validation_residual


def _solver(name: str, dim: int, method: str = "sdze", steps: int = 10, **solver) -> Solver:
    spec = {"problem": {"name": name, "dim": dim}, "solver": {"method": method, "steps": steps, **solver}}
    return Solver(JobSpec.model_validate({**spec, "eval": {"test_points": 2000}}).to_config())


def _theta(s: Solver) -> torch.Tensor:
    return torch.cat([s.model.W[-1].detach().reshape(-1), s.model.b[-1].detach()]).double()


@pytest.mark.parametrize("name", ["sine_gordon_two_body", "allen_cahn_two_body", "sine_gordon_two_body_scaled"])
def test_rows_reproduce_the_held_out_residual(name):
    # the rows are u and Δu per feature: at the model's own θ they give the residual validation_residual computes
    # (same seeded points) for the model as it stands — after some steps, so every layer has moved
    s = _solver(name, 150, batch_size=32)
    for t in range(5):
        s.local_step(t)
    rows = refit_rows(s.problem, s.model, s.engine.lowrank_terms(None), 11, 96)
    rms = float(rows.residual(_theta(s), s.problem.nonlinearity).square().mean().sqrt())
    held = validation_residual(s.problem, s.model, s.engine.lowrank_terms(None), 11, 96)["val_residual"]
    assert rows.U.shape == rows.A.shape == (96, s.model.width + 1)
    assert rms == pytest.approx(held, rel=1e-9)


def test_affine_residual_is_solved_to_its_least_squares_solution():
    # Poisson: F ≡ 0, R(θ) = Aθ − f; the solution is lstsq(A, f) (closed form, float64)
    s = _solver("poisson_two_body", 40)
    rows = refit_rows(s.problem, s.model, None, 5, 600)
    theta = solve(rows, _theta(s), s.problem.nonlinearity, s.problem.nonlinearity_derivative)
    best = torch.linalg.lstsq(rows.A, rows.f.unsqueeze(1)).solution[:, 0]
    r_theta = (rows.A @ theta - rows.f).square().mean()
    r_best = (rows.A @ best - rows.f).square().mean()
    assert float(r_theta) == pytest.approx(float(r_best), rel=1e-6)
    assert float(r_theta) < 0.01 * float((rows.A @ _theta(s) - rows.f).square().mean())


def test_refit_learns_after_a_short_run():
    # fixed seeds: 30 steps at d = 300, then the refit on 1 024 points lowers the held-out residual and rel L2
    s = _solver("sine_gordon_two_body", 300, output_refit_points=1024)
    for t in range(30):
        s.local_step(t)
    before = s.evaluate_test()
    rec = s.refit()
    after = s.evaluate_test()
    assert rec["accepted"] and rec["points"] == 1024
    assert rec["residual_after"] < rec["residual_before"] and rec["cross_after"] < rec["cross_before"]
    assert after["val_residual"] < before["val_residual"]
    assert after["rel_l2"] < 0.9 * before["rel_l2"]


def test_a_refit_that_does_not_generalize_across_the_halves_is_not_applied():
    # 40 points for 129 unknowns: each half's least-squares fit interpolates it and misses the other half
    s = _solver("sine_gordon_two_body", 300)
    for t in range(5):
        s.local_step(t)
    rows = refit_rows(s.problem, s.model, None, 3, 40)
    w0, b0 = s.model.W[-1].detach().clone(), s.model.b[-1].detach().clone()
    rec = refit_output_layer(s.model, rows, s.problem.nonlinearity, s.problem.nonlinearity_derivative).as_dict()
    assert not rec["accepted"] and rec["cross_after"] > rec["cross_before"]
    assert rec["residual_after"] == rec["residual_before"]
    assert torch.equal(s.model.W[-1].detach(), w0) and torch.equal(s.model.b[-1].detach(), b0)


def test_points_cap_and_skip():
    assert refit_points(16_384, 1000, 128) == 16_384
    assert refit_points(4096, 100_000, 128) == (1 << 28) // 100_000
    assert refit_points(4096, 10_000_000, 128) == 0  # 26 points for 129 unknowns
    assert refit_points(4096, 1000, 2000) == 0 and MIN_POINTS_PER_UNKNOWN * 2001 > 4096


def test_refit_is_opt_in_and_not_where_the_residual_is_not_linear_in_the_output_layer():
    assert all(getattr(p, "output_refit_points", 0) == 0 for p in PRESETS.values())  # opt-in everywhere
    assert _solver("sine_gordon_two_body", 50, "sdze_published").refit() == {}
    assert _solver("sine_gordon_two_body", 50, "sdgd_adam").refit() == {}
    assert _solver("sine_gordon_two_body", 50, output_refit_points=0).refit() == {}
    assert _solver("biharmonic_three_body", 20, output_refit_points=1024).refit() == {}  # fourth order
    s = _solver("sine_gordon_two_body", 300, output_refit_points=100)  # 100 < 4·129 points
    assert s.refit() == {"points": 0, "accepted": False, "skipped": s.refit()["skipped"]}


def test_trainer_refits_once_after_the_budget_and_reports_it(tmp_path):
    spec = {
        "problem": {"name": "sine_gordon_two_body", "dim": 200},
        "solver": {"method": "sdze", "steps": 12, "output_refit_points": 700},
        "eval": {"test_points": 500, "every": 6},
    }
    m = Trainer(JobSpec.model_validate(spec).to_config(), tmp_path / "a").run()
    rec = m["output_refit"]
    assert m["status"] == "succeeded" and rec["points"] == 700
    rows = (tmp_path / "a" / "history.csv").read_text().splitlines()
    assert rec["accepted"]  # (at these seeds)
    # the refit state is evaluated into the last step's row: one row per step, the figures before it in the record
    last = dict(zip(rows[0].split(","), rows[-1].split(","), strict=True))
    assert len(rows) == 1 + 13 and last["step"] == "12" and float(last["loss"]) == m["final_loss"]
    assert float(last["val_residual"]) == pytest.approx(m["val_residual"], rel=1e-12)
    assert rec["before"]["val_residual"] != m["val_residual"]
    assert float(last["train_s"]) == pytest.approx(m["wall_s"], abs=1e-3)
    # a cancelled run does not refit
    c = Trainer(JobSpec.model_validate(spec).to_config(), tmp_path / "b", should_stop=lambda: True).run()
    assert c["status"] == "cancelled" and c["output_refit"] is None


def test_time_dependent_problems_do_not_refit():
    # measured on semilinear heat: the refit lowered the residual and raised the error at the reference point
    for name in ("semilinear_heat", "bsb"):
        assert _solver(name, 20, output_refit_points=1024).refit() == {}
