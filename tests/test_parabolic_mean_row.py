"""The Feynman–Kac mean row (knob gn_mean_row, sdze_core/parabolic/mean_row.py).

By Itô (Dynkin), for any smooth u on the training law (Brownian paths from x₀, t uniform):
E[u(T, X_T)] − u(0, x₀) = ∫₀ᵀ E[(u_t + Δu)(t, X_t)] dt, so the row times T/√(κn) equals
u(0, x₀) − E[g(X_T)] − ∫₀ᵀ E[F(u)] dt — checked on a random network at fixed seeds within four standard errors;
the Gauss–Newton problem carries it as one more row of R and of every Jacobian column.
"""

import math

import pytest
import torch

from sdze_core.engine.probes_gauss_newton import jacobian_columns
from sdze_core.model import MLP
from sdze_core.parabolic.mean_row import follows_the_law, mean_row
from sdze_core.parabolic.problems import make_parabolic_problem
from sdze_core.parabolic.residual import batch_from_points, net_jet, residual, sample_spatial, u_jet
from sdze_core.parabolic.sampling import sample_points, terminal_points
from sdze_core.seeds import generator
from sdze_core.solver import Solver
from sdze_core.spec import JobSpec

F64 = torch.float64
NAMES = ("semilinear_heat", "allen_cahn_time", "hjb_cole_hopf", "hjb_lin", "bsb", "reaction_diffusion")


def _u_at_origin(m: MLP, d: int) -> float:
    h = torch.zeros(1, d + 1, dtype=F64)
    for l in range(m.depth - 1):
        h = torch.tanh(h @ m.W[l].t() + m.b[l])
    return float((h @ m.W[-1].t() + m.b[-1])[0, 0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_row_is_the_ito_error_at_the_origin(seed):
    d, n, nT, kappa = 5, 40_000, 10_000, 2.0
    p = make_parabolic_problem("semilinear_heat", d)
    m = MLP.init(d + 1, 16, 3, seed, F64)
    m.W[0].mul_(3.0)  # a network that varies in x and t on this law
    gen = generator(100 + seed)
    xt = torch.cat([sample_points(p, n, gen, F64, law="paths"), terminal_points(p, nT, gen, F64)])
    b = batch_from_points(p, xt, sample_spatial("exact", d, d, gen, F64), terminal_rows=nT)
    uj = u_jet(b, net_jet(b, m.W, m.b)[1])
    R = residual(p, b, uj)
    extended = mean_row(b, kappa, p.T)(R)
    assert extended.shape == (n + nT + 1,) and torch.equal(extended[:-1], R)
    row = float(extended[-1]) * p.T / math.sqrt(kappa * (n + nT))
    inner = ~b.term_mask & (b.x[:, -1] > 0)
    u = uj[0][:, 0]
    F = p.reaction_value(u, b.aux)
    ito = _u_at_origin(m, d) - float(b.term_value[b.term_mask].mean()) - p.T * float(F[inner].mean())
    se = math.sqrt(float(u[b.term_mask].var()) / nT + p.T**2 * float(R[inner].var()) / int(inner.sum()))
    assert abs(row - ito) < 4 * se, (row, ito, se)
    assert abs(ito) > 20 * se  # the identity is not trivially 0 = 0 here


def test_the_row_maps_jacobian_columns_like_residuals():
    d = 4
    p = make_parabolic_problem("semilinear_heat", d)
    gen = generator(7)
    xt = torch.cat([sample_points(p, 40, gen, F64, law="paths"), terminal_points(p, 10, gen, F64)])
    b = batch_from_points(p, xt, sample_spatial("exact", d, d, gen, F64), terminal_rows=10)
    extend = mean_row(b, 10.0, p.T)
    P = torch.randn(50, 3, generator=gen, dtype=F64)
    a = torch.randn(3, generator=gen, dtype=F64)
    torch.testing.assert_close(extend(P) @ a, extend(P @ a))  # linear in the rows: the row of P a is (row of P) a
    inner = ~b.term_mask & (b.x[:, -1] > 0)
    assert int(inner.sum()) == 36  # the 4 paths' rows at (0, x₀) are not part of the time mean
    expect = math.sqrt(10.0 * 50) * (P[b.term_mask].mean(0) / (b.term_weight * p.T) - P[inner].mean(0))
    torch.testing.assert_close(extend(P)[-1], expect)


def _engine_rows(kappa: float):
    spec = {
        "problem": {"name": "semilinear_heat", "dim": 20},
        "model": {"width": 20, "depth": 3},
        "solver": {"method": "sdze", "steps": 5, "batch_size": 40, "gn_mean_row": kappa},
    }
    s = Solver(JobSpec.model_validate(spec).to_config())
    e = s.engine
    ctx = e.context(e.make_batch(0, 0))
    zs = [e.draw(0, 0, k, ctx.data_basis) for k in range(e.cfg.q)]
    return jacobian_columns(e, ctx, zs)


def test_the_gauss_newton_problem_carries_the_row_only_when_asked():
    P0, R0, _, _ = _engine_rows(0.0)
    P1, R1, _, _ = _engine_rows(10.0)
    assert P1.shape[0] == P0.shape[0] + 1 and R1.shape[0] == R0.shape[0] + 1
    torch.testing.assert_close(R1[:-1], R0)  # the point rows are the same; the W₁ time column's step reads the row
    h1 = 21  # width 20 + bias: the output layer's exact columns do not depend on the row
    torch.testing.assert_close(P1[:-1, :h1], P0[:, :h1])


def test_the_row_is_left_out_where_the_points_are_not_the_diffusion_of_the_operator():
    follows = {name: follows_the_law(make_parabolic_problem(name, 10)) for name in NAMES}
    assert follows == {n: n != "bsb" for n in NAMES}  # BSB: GBM points, x²-diffusion and a drift the law lacks
    spec = {
        "problem": {"name": "bsb", "dim": 10},
        "model": {"width": 20, "depth": 3},
        "solver": {"method": "sdze", "steps": 5, "batch_size": 40, "gn_mean_row": 10.0},
    }
    e = Solver(JobSpec.model_validate(spec).to_config()).engine
    ctx = e.context(e.make_batch(0, 0))
    P, R, _, _ = jacobian_columns(e, ctx, [e.draw(0, 0, k, ctx.data_basis) for k in range(e.cfg.q)])
    assert R.shape[0] == P.shape[0] == 40
