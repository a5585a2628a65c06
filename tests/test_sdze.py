"""Statistical claims of the SDZE estimator (fixed seeds, float64, honest tolerances)."""

import dataclasses
import math

import pytest
import torch
from core_helpers import params_equal, tiny_spec

from sdze_core.engine.probes_forward import residual_dual
from sdze_core.engine.probes_two_point import probe_loss, redrawn_context
from sdze_core.residual import residual, u_jet
from sdze_core.solver import Solver
from sdze_core.taylor import FirstLayer, hidden_jet


def _crns_std(eps_list, crns: bool, trials: int = 40):
    spec = tiny_spec(method="sdze_published", dtype="float64", batch_size=20, samples=4)
    e = Solver(spec.to_config()).engine
    stds = []
    ctx0 = e.context(e.make_batch(0, 0))
    z = e.draw(0, 0, 0, ctx0.data_basis)  # one fixed perturbation direction
    for eps in eps_list:
        deltas = []
        for t in range(trials):
            b = e.make_batch(100 + t, 0)
            ctx = e.context(b)
            if crns:
                lp, lm = probe_loss(e, ctx, z, eps), probe_loss(e, ctx, z, -eps)
            else:
                lp = probe_loss(e, redrawn_context(e, ctx, 100 + t, 0, 0, 0), z, eps)
                lm = probe_loss(e, redrawn_context(e, ctx, 100 + t, 0, 0, 1), z, -eps)
            deltas.append(float((lp - lm) / (2 * eps)))
        stds.append(float(torch.tensor(deltas).std()))
    return stds


def test_crns_keeps_variance_bounded_while_independent_noise_grows_like_inverse_eps():
    eps = [1e-1, 1e-2, 1e-3, 1e-4]
    with_crns = _crns_std(eps, crns=True)
    without = _crns_std(eps, crns=False)
    assert max(with_crns) / min(with_crns) < 1.5, with_crns  # bounded as ε → 0
    # without CRNS the spatial noise is divided by 2ε: std ∝ 1/ε, i.e. Var ∝ 1/ε²
    for a, b in zip(without[1:], without[2:], strict=False):
        assert 7 < b / a < 14, without
    assert without[-1] > 100 * with_crns[-1]


def _subspace_rel_error(width: int, rank: int, q: int = 64, reps: int = 40) -> tuple[float, float]:
    """Mean ‖Ĝ − UUᵀGVVᵀ‖²/‖UUᵀGVVᵀ‖² of the q-probe estimate of W₂'s gradient, and the same for
    dense Gaussian probes of W₂ (MeZO-style), with G from autograd."""
    spec = tiny_spec(
        method="sdze_published",
        rank=rank,
        model={"width": width, "depth": 4},
        dtype="float64",
        batch_size=20,
        samples=4,
    )
    s = Solver(spec.to_config())
    e, m = s.engine, s.model
    b = e.make_batch(0, 0)
    ctx = e.context(b)
    W2 = m.W[1].clone().requires_grad_(True)
    first = FirstLayer.compute(m.W[0], m.b[0], b.x, b.dirs)
    phi = hidden_jet(first, [W2, m.W[2]], m.b[1:3], 2)
    loss = residual(s.problem, b, u_jet(b, phi, m.W[-1], m.b[-1])).square().mean()
    (G,) = torch.autograd.grad(loss, W2)
    lay = e.layers[1]
    U, V = lay.U, lay.V
    target = U @ U.T @ G @ V @ V.T
    errs, dense_errs = [], []
    gen = torch.Generator().manual_seed(5)
    for rep in range(reps):
        zs = []
        for k in range(q):
            z = e.draw(rep + 1, 0, k, ctx.data_basis)
            zs.append(dataclasses.replace(z, S=tuple(S if l == 1 else torch.zeros_like(S) for l, S in enumerate(z.S))))
        R, _, _, Rd = residual_dual(e, ctx, zs)
        deltas = (2 * R * Rd).mean(1)
        k0 = U @ zs[0].S[1] @ V.T
        assert math.isclose(float(deltas[0]), float((G * k0).sum()), rel_tol=1e-8)  # δ is ⟨G, Z⟩ exactly
        est = sum(float(deltas[k]) * (U @ zs[k].S[1] @ V.T) for k in range(q)) / q
        errs.append(float((est - target).norm() ** 2 / target.norm() ** 2))
        Z = torch.randn(q, *G.shape, generator=gen, dtype=G.dtype)
        dense = torch.einsum("k,kij->ij", (Z * G).sum((1, 2)), Z) / q
        dense_errs.append(float((dense - G).norm() ** 2 / G.norm() ** 2))
    return sum(errs) / reps, sum(dense_errs) / reps


def test_subspace_estimate_variance_scales_with_rank_not_parameter_count():
    q = 64
    small_r2, dense_small = _subspace_rel_error(16, 2, q)
    large_r2, dense_large = _subspace_rel_error(48, 2, q)
    small_r4, _ = _subspace_rel_error(16, 4, q)
    # theory: E‖Ĝ − PG‖²/‖PG‖² ≈ (r² + 1)/q for a rank-r subspace, (P + 1)/q for dense probes
    for err, r in ((small_r2, 2), (large_r2, 2), (small_r4, 4)):
        assert 0.5 < err / ((r * r + 1) / q) < 2.0, (err, r)
    assert 0.5 < small_r2 / large_r2 < 2.0  # 9× more parameters in W₂, same variance
    assert small_r4 > 2 * small_r2  # grows with r
    assert dense_large > 5 * dense_small and dense_small > 10 * small_r2  # dense probes pay for P


@pytest.mark.parametrize("method", ["sdze", "sdze_published", "zo_full"])
def test_apply_is_a_deterministic_function_of_the_reports(method):
    spec = tiny_spec(method=method, steps=5)
    a, b = Solver(spec.to_config()), Solver(spec.to_config())
    for t in range(4):
        reports = [a.probe(t, w) for w in range(2)]
        a.apply_probes(t, reports)
        b.apply_probes(t, list(reversed(reports)))  # arrival order does not matter
    assert params_equal(a, b)
    assert a.checksum() == b.checksum()


def test_full_space_optimizer_state_takes_the_same_step_as_subspace_coordinates_without_momentum():
    """optimizer_state "full" keeps a dense momentum M per layer; with β = 0 its step W − η U G Vᵀ must equal the
    subspace variant's W + U C Vᵀ with C = −η G (float64), and with β > 0 it holds P extra numbers."""
    kw = dict(method="sdze_published", momentum=0.0, refresh_every=3, refresh_growth=1.0, dtype="float64", steps=8)
    a, b = Solver(tiny_spec(**kw).to_config()), Solver(tiny_spec(optimizer_state="full", **kw).to_config())
    for t in range(7):  # crosses two base refreshes (folds) on the subspace side
        a.local_step(t)
        b.local_step(t)
    a.engine.fold()
    for x, y in zip(a.model.params(), b.model.params(), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)
    c = Solver(tiny_spec(**{**kw, "momentum": 0.9, "optimizer_state": "full"}).to_config())
    c.local_step(0)
    assert sum(M.numel() for M in c.engine.full_mom) == sum(W.numel() for W in c.model.W[:-1])
    with pytest.raises(ValueError, match="optimizer_state"):
        Solver(tiny_spec(method="sdze", optimizer_state="full").to_config())


def test_published_variant_and_ablations_are_reachable_from_a_spec():
    cfg = tiny_spec(method="sdze_published").to_config()
    zo = cfg.solver.zo
    assert (zo.w1_basis, zo.update, zo.crns, zo.perturbation) == ("random", "sgd", True, "subspace")
    assert zo.refresh_every > 1 and zo.refresh_growth > 1  # lazy, annealed refresh
    assert tiny_spec(method="sdze_no_crns").to_config().solver.zo.crns is False
    assert tiny_spec(method="zo_full").to_config().solver.zo.perturbation == "full"
    default = tiny_spec(method="sdze").to_config().solver.zo
    assert (default.w1_basis, default.update, default.gradient) == ("data", "gn", "forward")
    with pytest.raises(ValueError, match="w1_probes"):  # the preset's exact W₁ needs what the override turns off
        tiny_spec(method="sdze", w1_basis="random", gradient="two_point")
    mixed = tiny_spec(method="sdze", w1_basis="random", gradient="two_point", w1_probes="random").to_config().solver.zo
    assert (mixed.w1_basis, mixed.gradient, mixed.w1_probes) == ("random", "two_point", "random")
    assert default.w1_probes == "jacobian"
    old_default = tiny_spec(method="sdze", w1_probes="random", w1_rank_out=8, gn_backtracks=0).to_config().solver.zo
    assert (old_default.w1_probes, old_default.update) == ("random", "gn")
    with pytest.raises(ValueError, match="jacobian"):
        Solver(tiny_spec(method="sdze", w1_probes="jacobian", update="sgd").to_config())
