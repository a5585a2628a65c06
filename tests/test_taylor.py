"""Forward-mode Taylor jets and parameter tangents against autograd / torch.func in float64."""

import dataclasses
import math

import pytest
import torch
from core_helpers import tiny_spec
from torch.func import jacfwd

from sdze_core.engine.perturbed_forward import perturbed_residual
from sdze_core.engine.probes_forward import residual_dual, w1_jacobian_columns
from sdze_core.estimators import sample_directions
from sdze_core.model import MLP
from sdze_core.problems import make_problem
from sdze_core.residual import StepBatch, make_batch, u_jet
from sdze_core.seeds import generator
from sdze_core.solver import Solver
from sdze_core.subspace import DataBasis, random_basis
from sdze_core.taylor import FirstLayer, LowRank, boundary_jet, hidden_jet, operator_from_jet

F64 = torch.float64


def _res(e, ctx, z, eps):
    """Residuals at θ_eff + εZ through the engine's one perturbed forward."""
    return perturbed_residual(e, ctx, z.offset(eps, e.perturbs_output_layer))[0]


def _u_fn(problem, m, extra=None):
    def u(x):
        h = x
        for l in range(m.depth - 1):
            W = m.W[l] if extra is None or extra[l] is None else m.W[l] + extra[l]
            h = torch.tanh(h @ W.T + m.b[l])
        return problem.boundary(x) * (h @ m.W[-1].T + m.b[-1])[:, 0]

    return u


@pytest.mark.parametrize("name", ["sine_gordon_two_body", "biharmonic_three_body", "sine_gordon_two_body_scaled"])
def test_directional_derivatives_match_autograd(name):
    d = 9
    p = make_problem(name, d, seed=2)
    m = MLP.init(d, 12, 4, seed=1, dtype=torch.float64)
    b = make_batch(p, 3, "gauss", 4, generator(7), torch.float64)
    first = FirstLayer.compute(m.W[0], m.b[0], b.x, b.dirs)
    b = StepBatch(b.x, b.f, b.dirs, boundary_jet(p.boundary_poly, b.x, b.dirs, 4))  # order 4 whatever the PDE
    u = u_jet(b, hidden_jet(first, m.W[1:-1], m.b[1:-1], 4), m.W[-1], m.b[-1])
    uf = _u_fn(p, m)
    for n, s in ((0, 0), (2, 3)):
        if True:
            v = b.dirs.vecs[s]

            def g(t, n=n, v=v):
                return uf((b.x[n] + t * v)[None])[0]

            t0 = torch.zeros((), dtype=F64)
            d1 = jacfwd(g)(t0)
            d2 = jacfwd(jacfwd(g))(t0)
            d4 = jacfwd(jacfwd(jacfwd(jacfwd(g))))(t0)
            torch.testing.assert_close(u[1][n, s], d1, rtol=1e-10, atol=1e-10)
            torch.testing.assert_close(2 * u[2][n, s], d2, rtol=1e-10, atol=1e-10)
            torch.testing.assert_close(24 * u[4][n, s], d4, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(u[0][n, 0], uf(b.x[n : n + 1])[0])


def test_exact_laplacian_from_coordinate_jets_matches_hessian_trace():
    d = 8
    p = make_problem("poisson_two_body", d, seed=0)
    m = MLP.init(d, 10, 3, seed=3, dtype=torch.float64)
    b = make_batch(p, 4, "exact", 0, generator(1), torch.float64)
    first = FirstLayer.compute(m.W[0], m.b[0], b.x, b.dirs)
    lap = operator_from_jet(u_jet(b, hidden_jet(first, m.W[1:-1], m.b[1:-1], 2), m.W[-1], m.b[-1]), b.dirs)
    uf = _u_fn(p, m)
    for n in range(4):
        H = torch.autograd.functional.hessian(lambda z: uf(z[None])[0], b.x[n])
        torch.testing.assert_close(lap[n], torch.diagonal(H).sum(), rtol=1e-10, atol=1e-10)


def test_implicit_lowrank_forward_equals_materialized_matrix():
    d, h, r, eps = 30, 16, 3, 0.37
    p = make_problem("allen_cahn_two_body", d, seed=0)
    m = MLP.init(d, h, 4, seed=3, dtype=torch.float64)
    b = make_batch(p, 5, "sdgd", 6, generator(2), torch.float64)
    gen = generator(11)
    lows, mats = [], []
    for l in range(3):
        n_in = m.W[l].shape[1]
        U, V = random_basis(h, r, gen, torch.float64), random_basis(n_in, r, gen, torch.float64)
        S = torch.randn(r, r, generator=gen, dtype=F64)
        mats.append(eps * U @ S @ V.T)
        M = U @ (eps * S)
        lows.append(LowRank(V, M, b.x @ V, b.dirs.project(V.T)) if l == 0 else LowRank(V, M))
    first = FirstLayer.compute(m.W[0], m.b[0], b.x, b.dirs)
    implicit = u_jet(b, hidden_jet(first, m.W[1:-1], m.b[1:-1], 2, lows), m.W[-1], m.b[-1])
    Wp = [m.W[l] + mats[l] for l in range(3)]
    first_e = FirstLayer.compute(Wp[0], m.b[0], b.x, b.dirs)
    explicit = u_jet(b, hidden_jet(first_e, Wp[1:], m.b[1:-1], 2), m.W[-1], m.b[-1])
    for a, e in zip(implicit, explicit, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("basis", ["data", "random"])
def test_dual_tangents_equal_autograd_jvp_and_two_point_limit(basis):
    spec = tiny_spec(
        method="sdze", w1_basis=basis, w1_probes="random", q=3, dtype="float64", steps=10, batch_size=12, samples=4
    )
    s = Solver(spec.to_config())
    for t in range(2):
        s.local_step(t)
    e = s.engine
    ctx = e.context(e.make_batch(7, 0))
    zs = [e.draw(7, 0, k, ctx.data_basis) for k in range(3)]
    R, _, _, Rd = residual_dual(e, ctx, zs)
    one = torch.ones((), dtype=F64)
    for k, z in enumerate(zs):
        _, jvp = torch.func.jvp(lambda eps, z=z: _res(e, ctx, z, eps), (0 * one,), (one,))
        torch.testing.assert_close(Rd[k], jvp, rtol=1e-10, atol=1e-8)
        errs = []
        for eps in (1e-2, 1e-3):
            fd = (_res(e, ctx, z, eps) - _res(e, ctx, z, -eps)) / (2 * eps)
            errs.append(float((fd - Rd[k]).abs().max() / Rd[k].abs().max()))
        assert errs[1] < 1e-4 and errs[1] < errs[0] / 50  # O(ε²) truncation: the two-point limit is the JVP


def test_data_basis_is_orthonormal_spans_the_batch_and_contains_the_w1_gradient():
    spec = tiny_spec(
        method="sdze", w1_probes="random", dtype="float64", problem={"name": "poisson_two_body", "dim": 300}
    )
    s = Solver(spec.to_config())
    e = s.engine
    b = e.make_batch(0, 0)
    db = DataBasis.build(b.x, b.dirs)
    X = torch.cat([b.x, torch.eye(300, dtype=F64)[b.dirs.idx]], 0).T  # d × (N + S)
    V = X @ db.T
    torch.testing.assert_close(V.T @ V, torch.eye(db.rank, dtype=F64), atol=1e-8, rtol=0)
    torch.testing.assert_close(V @ (V.T @ X), X, atol=1e-8, rtol=1e-8)  # span{x_n, e_i} ⊆ span V
    torch.testing.assert_close(db.xv, b.x @ V)
    # ∂L/∂W1 (autograd) lies in span V: the aligned basis loses none of W1's gradient
    W1 = s.model.W[0].clone().requires_grad_(True)
    first = FirstLayer.compute(W1, s.model.b[0], b.x, b.dirs)
    from sdze_core.residual import residual

    phi = hidden_jet(first, s.model.W[1:-1], s.model.b[1:-1], 2)
    loss = residual(s.problem, b, u_jet(b, phi, s.model.W[-1], s.model.b[-1])).square().mean()
    (G,) = torch.autograd.grad(loss, W1)
    outside = G - (G @ V) @ V.T
    assert float(outside.norm() / G.norm()) < 1e-10
    # and the aligned directional derivative along U S Vᵀ equals autograd's ⟨G, U S Vᵀ⟩
    ctx = e.context(b)
    z = e.draw(0, 0, 0, ctx.data_basis)
    z = dataclasses.replace(z, S=(z.S[0], *(torch.zeros_like(S) for S in z.S[1:])))
    R, _, _, Rd = residual_dual(e, ctx, [z])
    delta = float((2 * R * Rd[0]).mean())
    Z1 = e.layers[0].U @ z.S[0] @ V.T
    assert math.isclose(delta, float((G * Z1).sum()), rel_tol=1e-8)


def test_directions_project_dot_and_norms():
    gen = generator(0)
    dirs = sample_directions("sdgd", 50, 7, 2, gen, torch.float64)
    M = torch.randn(4, 50, generator=gen, dtype=F64)
    torch.testing.assert_close(dirs.project(M), M[:, dirs.idx].T)
    assert dirs.weight == 50 / 7 and len(set(dirs.idx.tolist())) == 7
    hte = sample_directions("hte", 50, 5, 2, gen, torch.float64)
    assert set(hte.vecs.unique().tolist()) == {-1.0, 1.0}
    with pytest.raises(ValueError, match="gauss"):
        sample_directions("sdgd", 50, 5, 4, gen)


@pytest.mark.parametrize("name", ["sine_gordon_two_body", "biharmonic_three_body"])
def test_exact_w1_jacobian_columns_equal_autograd(name):
    """w1_probes="jacobian": 2 tangent channels per u_j give ∂R_n/∂A for W₁ + U A Vᵀ, all p × m' entries."""
    spec = tiny_spec(
        method="sdze",
        w1_probes="jacobian",
        w1_rank_out=3,
        q=2,
        dtype="float64",
        batch_size=10,
        samples=4,
        problem={"name": name, "dim": 40},
    )
    s = Solver(spec.to_config())
    s.local_step(0)
    e = s.engine
    b = e.make_batch(3, 0)
    ctx = e.context(b)
    zs = [e.draw(3, 0, k, ctx.data_basis) for k in range(2)]
    U = e.layers[0].U
    p = U.shape[1]
    R, _, _, (op, val) = residual_dual(e, ctx, zs, w1_U=U)
    J = w1_jacobian_columns(op, val, ctx.data_basis, p)  # (N, p·m')
    db = ctx.data_basis
    X = torch.cat([b.x, b.dirs.vecs if b.dirs.idx is None else torch.eye(40, dtype=F64)[b.dirs.idx]], 0).T
    V = X @ db.T
    m = s.model

    def res(A):
        first = FirstLayer.compute(m.W[0] + U @ A.reshape(p, -1) @ V.T, m.b[0], b.x, b.dirs)
        phi = hidden_jet(first, m.W[1:-1], m.b[1:-1], s.problem.order)
        from sdze_core.residual import residual

        return residual(s.problem, b, u_jet(b, phi, m.W[-1], m.b[-1]))

    J_auto = jacfwd(res)(torch.zeros(p * db.rank, dtype=F64))
    torch.testing.assert_close(J, J_auto, rtol=1e-9, atol=1e-9 * float(J_auto.abs().max()))
    torch.testing.assert_close(R, res(torch.zeros(p * db.rank, dtype=F64)))
    # the remaining channels are the hidden probes' tangents (W₂, W₃ only), as torch.func.jvp gives them
    one = torch.ones((), dtype=F64)
    for k, z in enumerate(zs):
        z0 = dataclasses.replace(z, S=(torch.zeros(U.shape[1], db.rank, dtype=F64), *z.S[1:]))
        _, jvp = torch.func.jvp(lambda eps, z0=z0: _res(e, ctx, z0, eps), (0 * one,), (one,))
        torch.testing.assert_close(op[2 * p + k].sum(-1) + val[2 * p + k], jvp, rtol=1e-10, atol=1e-8)


def test_data_basis_at_gives_other_points_coordinates_in_the_same_basis():
    """gn_holdout's held-out batch: ``DataBasis.at`` = Vᵀx and Vᵀv for points and directions V was not built from
    (coordinates and dense directions), and reproduces the basis's own xv / dv."""
    from sdze_core.estimators import sample_directions

    gen = torch.Generator().manual_seed(3)
    d = 200
    x, xo = torch.randn(12, d, generator=gen, dtype=F64), torch.randn(7, d, generator=gen, dtype=F64)
    for kind in ("sdgd", "hte"):
        dirs = sample_directions(kind, d, 5, 2, gen, F64)
        other = sample_directions(kind, d, 4, 2, gen, F64)
        dense = lambda D: torch.eye(d, dtype=F64)[D.idx] if D.idx is not None else D.vecs  # noqa: E731
        db = DataBasis.build(x, dirs)
        V = torch.cat([x, dense(dirs)], 0).T @ db.T  # d × m'
        own = db.at(x, dirs, x, dirs)
        torch.testing.assert_close(own.xv, db.xv)
        torch.testing.assert_close(own.dv, db.dv)
        at = db.at(x, dirs, xo, other)
        torch.testing.assert_close(at.xv, xo @ V)
        torch.testing.assert_close(at.dv, dense(other) @ V)
        assert at.T is db.T
