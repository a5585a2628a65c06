"""Parabolic problems through the whole core: spec → Solver → every method's engine → metrics and artifacts."""

import json

import numpy as np
import pytest
import torch
from torch.func import jacfwd

from sdze_core.engine.probes_forward import residual_dual, w1_jacobian_columns
from sdze_core.parabolic.hooks import u_jet
from sdze_core.parabolic.residual import residual
from sdze_core.parabolic.solving import evaluate_solver
from sdze_core.parabolic.validation import validation_residual
from sdze_core.solver import Solver
from sdze_core.spec import JobSpec
from sdze_core.taylor import FirstLayer, hidden_jet
from sdze_core.trainer import Trainer

F64 = torch.float64


def _spec(name="hjb_cole_hopf", dim=6, **solver):
    solver = {"steps": 3, "batch_size": 16, "samples": 3, **solver}
    return JobSpec.model_validate(
        {
            "problem": {"name": name, "dim": dim},
            "model": {"width": 16, "depth": 3},
            "solver": solver,
            "eval": {"test_points": 200, "every": 5, "sample_points": 20},
        }
    )


def test_catalogue_name_and_dim_are_a_complete_spec():
    cfg = JobSpec.model_validate({"problem": {"name": "semilinear_heat", "dim": 1000}}).to_config()
    assert cfg.problem.name == "semilinear_heat" and cfg.solver.estimator == "sdgd"
    s = Solver(cfg, device="cpu")
    assert s.model.dim == 1001  # the network reads (x, t)
    with pytest.raises(ValueError, match="estimator"):
        JobSpec.model_validate({"problem": {"name": "bsb", "dim": 10}, "solver": {"estimator": "hte"}})


@pytest.mark.parametrize("method", ["sdze", "sdze_published", "sdgd_adam", "hte_adam", "sdze_no_crns", "zo_full"])
def test_every_method_steps_evaluates_and_exports(method, tmp_path):
    s = Solver(_spec(method=method).to_config(), device="cpu")
    before = [p.clone() for p in s.model.params()]
    losses = [s.local_step(t) for t in range(3)]
    assert all(np.isfinite(losses))
    assert any(not torch.equal(a, b) for a, b in zip(before, s.model.params(), strict=True))
    ev = s.evaluate_test()
    for k in ("rel_l2", "null_rel_l2", "null_terminal_rel_l2", "aniso_ratio", "val_residual", "ref_rel_error"):
        assert np.isfinite(ev[k]), k
    s.export(tmp_path)
    z = np.load(tmp_path / "samples.npz")
    assert z["x"].shape == (20, 6) and z["t"].shape == (20,) and "u_exact" in z.files
    np.testing.assert_allclose(z["u_pred"], s.predict(torch.tensor(np.c_[z["x"], z["t"]])).double().numpy())


def test_exact_w1_jacobian_columns_of_the_parabolic_residual():
    """sdze's exact W₁ columns in the data basis of x̃ = (x, t) and the S + 1 joint directions, against jacfwd."""
    spec = _spec(method="sdze", w1_rank_out=3, q=2, batch_size=6)
    cfg = JobSpec.model_validate({**spec.model_dump(), "dtype": "float64"}).to_config()
    s = Solver(cfg, device="cpu")
    s.local_step(0)
    e, m = s.engine, s.model
    b = e.make_batch(2, 0)
    ctx = e.context(b)
    zs = [e.draw(2, 0, k, ctx.data_basis) for k in range(2)]
    U = e.layers[0].U
    p = U.shape[1]
    R, _, _, (op, val) = residual_dual(e, ctx, zs, w1_U=U)
    J = w1_jacobian_columns(op, val, ctx.data_basis, p)
    X = torch.cat([b.x, torch.eye(7, dtype=F64)[b.dirs.idx]], 0).T
    V = X @ ctx.data_basis.T

    def res(A):
        first = FirstLayer.compute(m.W[0] + U @ A.reshape(p, -1) @ V.T, m.b[0], b.x, b.dirs)
        phi = hidden_jet(first, m.W[1:-1], m.b[1:-1], 2)
        return residual(s.problem, b, u_jet(b, phi, m.W[-1], m.b[-1]))

    J_auto = jacfwd(res)(torch.zeros(p * ctx.data_basis.rank, dtype=F64))
    torch.testing.assert_close(J, J_auto, rtol=1e-9, atol=1e-9 * float(J_auto.abs().max()))
    torch.testing.assert_close(R, res(torch.zeros(p * ctx.data_basis.rank, dtype=F64)))


def test_validation_residual_sees_pending_low_rank_updates():
    s = Solver(_spec(method="sdze_published").to_config(), device="cpu")
    for t in range(3):
        s.local_step(t)
    assert any(float(lay.C.abs().sum()) > 0 for lay in s.engine.layers if lay.V is not None)
    a = validation_residual(s.problem, s.model, s.engine.lowrank_terms(None), 7)
    s.engine.fold()
    b = validation_residual(s.problem, s.model, None, 7)
    assert abs(a["val_residual"] - b["val_residual"]) < 1e-5 * b["val_residual"]


@pytest.mark.parametrize("method,steps,extra", [("sdgd_adam", 400, {"lr": 1e-2}), ("sdze", 80, {"gn_trust": 0.1})])
def test_training_beats_the_best_constant_null(method, steps, extra):
    """HJB (Cole–Hopf) at d = 5: both nulls are far from u*; a short run must get below the best g + τK.

    sdze runs with the trust radius 0.1: at this d the default radius 1.0 learns more slowly (aniso 0.95 after 40
    steps, 0.72 after 80, against 0.69 and 0.56 at radius 0.1; measured with this spec)."""
    spec = _spec(method=method, steps=steps, batch_size=64, samples=5, dim=5, **extra).model_dump()
    spec["model"] = {"width": 32, "depth": 3}
    s = Solver(JobSpec.model_validate(spec).to_config(), device="cpu")
    for t in range(steps):
        s.local_step(t)
    ev = evaluate_solver(s)
    assert ev["null_rel_l2"] > 0.05 and ev["rel_l2"] < 0.7 * ev["null_rel_l2"], ev
    assert ev["rel_l2"] < 0.7 * ev["null_flat_rel_l2"], ev  # and below the best flat u ≡ c


def test_a_run_above_the_flat_null_is_flagged(tmp_path):
    # three steps of HJB at d = 6 stay far above the best flat constant u ≡ c: metrics must say so
    m = Trainer(_spec(method="sdze").to_config(), tmp_path).run()
    assert m["rel_l2"] > m["null_flat_rel_l2"] > 0
    assert m["above_null"] is True and "flat null" in m["warning"]


def test_metrics_json_carries_the_reference_point_error(tmp_path):
    cfg = _spec(name="semilinear_heat", dim=10, method="sdgd_adam", steps=6).to_config()
    m = Trainer(cfg, tmp_path).run()
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["status"] == "succeeded" and on_disk["rel_l2"] is None
    assert on_disk["ref_value"] == 0.47006 and np.isfinite(on_disk["ref_rel_error"])
    assert abs(on_disk["ref_null_rel_error"] - abs(0.5 - 0.47006) / 0.47006) < 1e-12
    assert m["ref_rel_error"] == on_disk["ref_rel_error"]


def test_two_workers_exchange_scalars_and_stay_identical():
    """Multi-worker sdze on a parabolic problem: replicas rebuild each other's data bases from seeds, apply the
    same reports and stay bit-identical."""
    spec = _spec(name="semilinear_heat", dim=30, method="sdze")
    cfg = JobSpec.model_validate({**spec.model_dump(), "resources": {"workers": 2}}).to_config()
    a, b = Solver(cfg, device="cpu"), Solver(cfg, device="cpu")
    for t in range(3):
        reports = [a.probe(t, 0), b.probe(t, 1)]
        assert a.apply_probes(t, reports) == b.apply_probes(t, reports)
        assert a.checksum() == b.checksum()
    assert all(r.payload_bytes() < 4096 for r in reports)  # seeds and coefficients only: nothing of size d or P


def test_exported_solution_evaluates_at_x_and_t(tmp_path):
    """The evaluate path (inference.load_solution): points carry d + 1 coordinates, u = the problem's ansatz."""
    from sdze_core.inference import load_solution

    s = Solver(_spec(method="sdgd_adam").to_config(), device="cpu")
    s.local_step(0)
    s.export(tmp_path)
    sol = load_solution(tmp_path)
    assert sol.dim == 7
    pts = torch.rand(5, 7, dtype=F64)
    torch.testing.assert_close(sol.predict(pts), s.predict(pts).double(), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        sol.predict(torch.zeros(2, 6, dtype=F64))


def test_soft_rule_validation_counts_the_terminal_mismatch():
    """u = N ≈ 0 nearly solves the PDE rows of HJB; the held-out yardstick must still see u(T) ≠ g."""
    s = Solver(_spec(method="sdgd_adam").to_config(), device="cpu")
    assert s.problem.terminal_rule == "soft"
    with torch.no_grad():
        s.model.W[-1].zero_()
        s.model.b[-1].zero_()  # N ≡ 0: zero PDE residual, terminal mismatch |g|
    v = validation_residual(s.problem, s.model, None, 3)["val_residual"]
    assert v > 0.5
