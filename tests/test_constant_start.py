"""The constant start (``sdze_core.constant_start``): the output bias that minimizes the residual, before step 1."""

from __future__ import annotations

import pytest
import torch

from sdze_core.config import PRESETS
from sdze_core.constant_start import fit_output_bias
from sdze_core.model import MLP
from sdze_core.solver import LocalExecutor, Solver
from sdze_core.spec import JobSpec
from sdze_core.trainer import Trainer
from sdze_core.validation import second_order_residual, validation_residual


def _solver(name: str, dim: int, method: str = "sdze", steps: int = 10, **solver) -> Solver:
    if method == "sdze":  # the tests' d are below the preset's threshold (10⁴): start at any d unless told
        solver.setdefault("constant_start_min_dim", 0)
    spec = {"problem": {"name": name, "dim": dim}, "solver": {"method": method, "steps": steps, **solver}}
    spec["eval"] = {"test_points": 500}
    return Solver(JobSpec.model_validate(spec).to_config())


def test_affine_residual_is_solved_to_its_least_squares_constant():
    # R(b) = r0 + j·b: m(b) = mean R² has its minimum at b* = −Σ r0 j / Σ j² (closed form, float64)
    gen = torch.Generator().manual_seed(3)
    r0 = torch.randn(50, generator=gen, dtype=torch.float64) * 40.0 + 300.0
    j = torch.rand(50, generator=gen, dtype=torch.float64) + 0.5
    model = MLP.init(5, 8, 2, seed=1)
    rec = fit_output_bias(model, lambda: float((r0 + j * float(model.b[-1])).square().mean()))
    b_star = float(-(r0 * j).sum() / j.square().sum())
    assert float(model.b[-1]) == pytest.approx(b_star, rel=1e-6)
    assert rec.bias_after == float(model.b[-1])
    m_star = float((r0 + j * b_star).square().mean())
    assert rec.residual_after == pytest.approx(m_star**0.5, rel=1e-6)
    assert rec.residual_before > 3 * rec.residual_after
    assert rec.evaluations <= 7  # one Newton move solves it; the second iteration's move is below resolution


def test_no_move_where_the_residual_is_not_convex_in_the_bias():
    model = MLP.init(5, 8, 2, seed=1)
    b0 = float(model.b[-1])
    rec = fit_output_bias(model, lambda: 10.0 - float(model.b[-1]) ** 2)  # concave: no Newton step
    assert float(model.b[-1]) == b0 and rec.bias_after == b0 and rec.residual_after == rec.residual_before


def test_only_the_output_bias_moves():
    s = _solver("sine_gordon_two_body", 300)
    before = {k: v.clone() for k, v in s.model.state_dict().items()}
    rec = s.start()
    after = s.model.state_dict()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert moved == [f"layers.{s.model.depth - 1}.bias"]
    assert rec["bias_after"] == float(after[moved[0]])


@pytest.mark.parametrize("dim", [100, 2000])
def test_catalogue_start_reaches_the_constant_null(dim):
    # at init N ≈ 0 while u* ≈ B·K with K of order √d: the start brings the error to the best constant's
    s = _solver("sine_gordon_two_body", dim)
    a0 = s.evaluate_test()["aniso_ratio"]
    rec = s.start()
    ev = s.evaluate_test()
    assert a0 > 10.0
    assert ev["aniso_ratio"] < 1.1
    assert rec["residual_after"] < 0.2 * rec["residual_before"]


@pytest.mark.parametrize("name", ["hjb_cole_hopf", "bsb"])
def test_parabolic_start_fits_the_constant_of_g_plus_T_minus_t_times_K(name):
    s = _solver(name, 100)
    e0 = s.evaluate_test()["ref_rel_error"]
    s.start()
    assert s.evaluate_test()["ref_rel_error"] < 0.1 * e0


def test_published_recipe_and_the_knob_off_do_not_start():
    for method in ("sdze_published", "sdgd_adam"):
        s = _solver("sine_gordon_two_body", 300, method)
        b0 = float(s.model.b[-1].detach())
        assert s.start() == {} and float(s.model.b[-1].detach()) == b0
    s = _solver("sine_gordon_two_body", 300, constant_start_min_dim=301)
    assert s.start() == {}


def test_the_sdze_preset_starts_from_d_1e4_on():
    assert PRESETS["sdze"].constant_start_min_dim == 10_000

    def plain(d: int) -> Solver:
        spec = {"problem": {"name": "sine_gordon_two_body", "dim": d}, "solver": {"method": "sdze", "steps": 1}}
        return Solver(JobSpec.model_validate({**spec, "eval": {"test_points": 100}}).to_config())

    assert plain(9_999).start() == {}
    rec = plain(10_000).start()
    assert rec["residual_after"] < 0.1 * rec["residual_before"]


def test_trainer_starts_a_fresh_run_once_and_reports_it(tmp_path):
    spec = JobSpec.model_validate(
        {
            "problem": {"name": "sine_gordon_two_body", "dim": 200},
            "solver": {"method": "sdze", "steps": 6, "batch_size": 16, "constant_start_min_dim": 0},
            "eval": {"test_points": 300, "every": 2},
            "checkpoint_every": 2,
        }
    )
    calls = {"n": 0}

    def stop_after_4() -> bool:
        calls["n"] += 1
        return calls["n"] > 4

    part = Trainer(spec.to_config(), tmp_path, should_stop=stop_after_4).run()
    rec = part["constant_start"]
    assert part["status"] == "cancelled" and rec["residual_after"] < rec["residual_before"] and rec["evaluations"] >= 3
    rows = (tmp_path / "history.csv").read_text().splitlines()
    assert float(rows[1].split(",")[1]) > 0.0  # step 0's train_s counts the start
    # the resumed run keeps the record and does not start again (it would move the checkpoint's output bias)
    ex = LocalExecutor(spec.to_config())
    started = []
    ex.start = lambda: started.append(1) or {}
    resumed = Trainer(spec.to_config(), tmp_path, executor=ex).run()
    assert started == [] and resumed["constant_start"] == rec and resumed["steps_done"] == 6


def test_precomputed_residual_follows_the_output_layer():
    # second_order_residual computes the points, f, W₁x and the hidden jets once; each call reads (W_L, b_L)
    s = _solver("sine_gordon_two_body", 300)
    rms = second_order_residual(s.problem, s.model, None, 7, 32)
    with torch.no_grad():
        s.model.b[-1].add_(3.0)
        s.model.W[-1].mul_(0.5)
    fresh = second_order_residual(s.problem, s.model, None, 7, 32)()
    assert rms() == pytest.approx(fresh, rel=1e-12)
    assert validation_residual(s.problem, s.model, None, 7, 32)["val_residual"] == pytest.approx(fresh, rel=1e-12)
