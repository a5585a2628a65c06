"""Parabolic problems: closed forms against their PDE (float64 autograd), the jet residual against autograd,
its exact linearization, unbiasedness of the sampled estimators, terminal jets, nulls and sampling."""

import math

import pytest
import torch
from torch.func import grad, hessian, jvp, vmap

from sdze_core.estimators import Directions
from sdze_core.model import MLP
from sdze_core.parabolic.evaluation import compose, evaluate
from sdze_core.parabolic.problems import PARABOLIC_NAMES, make_parabolic_problem
from sdze_core.parabolic.residual import (
    apply_linearization,
    batch_from_points,
    check_estimator,
    linearization,
    net_jet,
    residual,
    sample_spatial,
    tangent_u_jet,
    u_jet,
)
from sdze_core.parabolic.sampling import ParabolicTestSet, sample_points
from sdze_core.parabolic.terminal import Terminal
from sdze_core.seeds import generator

F64 = torch.float64


def pde_residual(p, u_fn, x, t, aux=None):
    """u_t + νΔu + κΣx_i²∂²_ii u + βx·∇u + reaction(u) + μ|∇u|² + ρΣ|∂_i u|^p + c₀ at one point, by autograd."""
    u = u_fn(x, t)
    ux = grad(u_fn, 0)(x, t)
    ut = grad(u_fn, 1)(x, t)
    H = torch.diagonal(hessian(u_fn, 0)(x, t))
    R = ut + p.nu * H.sum() + p.kappa * (x * x * H).sum() + p.beta * (x * ux).sum()
    R = R + p.reaction_value(u, aux) + p.grad_sq * (ux * ux).sum() + p.grad_pow * ux.abs().pow(p.power).sum()
    return R + p.const


def _points(p, n, seed=3):
    xt = sample_points(p, n, generator(seed), F64)
    return xt[:, : p.dim], xt[:, p.dim]


@pytest.mark.parametrize("name", ["hjb_lin", "bsb", "reaction_diffusion", "hjb_cole_hopf"])
def test_closed_form_satisfies_its_pde(name):
    d = 4
    p = make_parabolic_problem(name, d)
    x, t = _points(p, 5)
    t = t.clamp(max=0.9 * p.T)  # away from t = T where the Cole–Hopf route switches to g

    def u_fn(xi, ti):
        return p.u_exact(xi[None], ti[None])[0]

    aux = p.reaction_aux(x, t)
    R = vmap(lambda xi, ti, ai: pde_residual(p, u_fn, xi, ti, ai))(x, t, aux if aux is not None else t)
    scale = vmap(lambda xi, ti: grad(u_fn, 1)(xi, ti))(x, t).abs().max()
    assert float(R.abs().max()) < 1e-9 * max(1.0, float(scale)), R
    torch.testing.assert_close(p.u_exact(x, torch.full_like(t, p.T)), p.terminal.value(x))


def _net_u(p, m):
    def u_fn(xi, ti):
        xt = torch.cat([xi, ti[None]])[None]
        h = xt
        for l in range(m.depth - 1):
            h = torch.tanh(h @ m.W[l].T + m.b[l])
        n = (h @ m.W[-1].T + m.b[-1])[0, 0]
        if p.terminal_rule == "soft":
            return n
        return p.terminal.value(xi[None])[0] + (p.T - ti) * n

    return u_fn


@pytest.mark.parametrize("name", PARABOLIC_NAMES)
def test_jet_residual_matches_autograd(name):
    """With all d coordinates ("exact") the jet residual of u = g + τN is the PDE residual, to rounding."""
    d = 5
    p = make_parabolic_problem(name, d)
    m = MLP.init(d + 1, 10, 3, seed=1, dtype=F64)
    xt = sample_points(p, 6, generator(4), F64)
    b = batch_from_points(p, xt, sample_spatial("exact", d, d, generator(0), F64))
    R = residual(p, b, u_jet(b, net_jet(b, m.W, m.b)[1]))
    u_fn = _net_u(p, m)
    x, t = xt[:, :d], xt[:, d]
    aux = b.aux if b.aux is not None else t
    want = vmap(lambda xi, ti, ai: pde_residual(p, u_fn, xi, ti, ai))(x, t, aux)
    torch.testing.assert_close(R, want, rtol=1e-10, atol=1e-10)
    if p.terminal_rule == "hard":  # the hard constraint: u(T, x) = g(x) whatever the network
        xT = torch.cat([x, torch.full((6, 1), p.T, dtype=F64)], 1)
        torch.testing.assert_close(compose(p, xT, m.forward(xT)), p.terminal.value(x))


@pytest.mark.parametrize("name,est", [("hjb_cole_hopf", "hte"), ("bsb", "sdgd"), ("hjb_lin", "sdgd")])
def test_linearization_is_the_exact_parameter_derivative(name, est):
    d = 6
    p = make_parabolic_problem(name, d)
    m = MLP.init(d + 1, 8, 3, seed=2, dtype=F64)
    xt = sample_points(p, 5, generator(1), F64)
    b = batch_from_points(p, xt, sample_spatial(est, d, 3, generator(2), F64))
    params = m.W + m.b
    L = len(m.W)
    gen = torch.Generator().manual_seed(9)
    dirs = [torch.randn(q.shape, generator=gen, dtype=F64) for q in params]

    def jet_of(*ps):
        return tuple(net_jet(b, list(ps[:L]), list(ps[L:]))[1])

    def res_of(*ps):
        return residual(p, b, u_jet(b, list(jet_of(*ps))))

    _, Rdot = jvp(res_of, tuple(params), tuple(dirs))
    n, ndot = jvp(jet_of, tuple(params), tuple(dirs))
    got = apply_linearization(linearization(p, b, u_jet(b, list(n))), tangent_u_jet(b, list(ndot)))
    # the same with a leading channel axis (how the engines batch probes and output-layer features)
    nd2 = [torch.stack([c, 2 * c]) for c in ndot]
    got2 = apply_linearization(linearization(p, b, u_jet(b, list(n))), tangent_u_jet(b, nd2))
    torch.testing.assert_close(got2[1], 2 * Rdot, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(got, Rdot, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "name,est", [("hjb_cole_hopf", "sdgd"), ("hjb_cole_hopf", "hte"), ("hjb_lin", "sdgd"), ("bsb", "sdgd")]
)
def test_sampled_residual_is_unbiased(name, est):
    """Mean of R̂ over 1500 seeded direction draws vs the all-coordinate residual, within 4.5 standard errors.
    (hjb_cole_hopf carries |∇u|², hjb_lin Σ|∂_i u|^1.75, bsb the diagonal diffusion and the drift.)"""
    d, S, n_draws = 8, 3, 1500
    p = make_parabolic_problem(name, d)
    m = MLP.init(d + 1, 12, 3, seed=3, dtype=F64)
    xt = sample_points(p, 4, generator(6), F64)
    full = batch_from_points(p, xt, sample_spatial("exact", d, d, generator(0), F64))
    R = residual(p, full, u_jet(full, net_jet(full, m.W, m.b)[1]))
    draws = []
    for k in range(n_draws):
        b = batch_from_points(p, xt, sample_spatial(est, d, S, generator(1000 + k), F64))
        draws.append(residual(p, b, u_jet(b, net_jet(b, m.W, m.b)[1])))
    D = torch.stack(draws)
    se = D.std(0) / math.sqrt(n_draws)
    assert float(se.max()) > 0  # the estimate is random: the test can fail
    assert bool(((D.mean(0) - R).abs() < 4.5 * se + 1e-12).all()), (D.mean(0) - R) / se


def test_hte_refused_where_it_would_be_biased():
    check_estimator(make_parabolic_problem("hjb_cole_hopf", 5), "hte")
    for name in ("bsb", "hjb_lin"):
        with pytest.raises(ValueError, match="coordinate directions"):
            check_estimator(make_parabolic_problem(name, 5), "hte")
    with pytest.raises(ValueError, match="not available"):
        check_estimator(make_parabolic_problem("bsb", 5), "gauss")


@pytest.mark.parametrize(
    "term",
    [Terminal("radial", "heat"), Terminal("radial", "log"), Terminal("argmax"), Terminal("ridge", "sin", 0.7, 1.6)],
)
def test_terminal_jets_along_dense_directions(term):
    d = 5
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(4, d, generator=gen, dtype=F64)
    V = torch.randn(3, d, generator=gen, dtype=F64)
    g, g1, g2 = term.jets(x, Directions(order=2, weight=1.0, vecs=V))
    for n in range(4):
        for s in range(3):

            def f(e, n=n, s=s):
                return term.value((x[n] + e * V[s])[None])[0]

            e0 = torch.zeros((), dtype=F64)
            torch.testing.assert_close(g1[n, s], grad(f)(e0))
            torch.testing.assert_close(g2[n, s], grad(grad(f))(e0))
    torch.testing.assert_close(g, term.value(x))


def test_nulls_closed_form_and_the_exact_null_is_labelled():
    ts = lambda p: ParabolicTestSet(p, 300, seed=1)  # noqa: E731
    lin = make_parabolic_problem("hjb_lin", 20)
    out = evaluate(lin, lambda xt: compose(lin, xt, torch.ones(xt.shape[0], dtype=xt.dtype)), ts(lin), F64)
    assert out["null_exact"] == 1.0 and out["rel_l2"] < 1e-12 and out["null_rel_l2"] < 1e-12
    bsb = make_parabolic_problem("bsb", 20)
    zero = evaluate(bsb, lambda xt: compose(bsb, xt, torch.zeros(xt.shape[0], dtype=xt.dtype)), ts(bsb), F64)
    assert zero["null_exact"] == 0.0
    torch.testing.assert_close(zero["rel_l2"], zero["null_terminal_rel_l2"])  # N = 0 is the terminal null
    K = zero["null_K"]
    best = evaluate(bsb, lambda xt: compose(bsb, xt, torch.full((xt.shape[0],), K, dtype=xt.dtype)), ts(bsb), F64)
    torch.testing.assert_close(best["rel_l2"], best["null_rel_l2"], rtol=1e-9, atol=0)
    for dK in (-0.01, 0.01):  # K is the least-squares optimum
        other = evaluate(
            bsb, lambda xt, dK=dK: compose(bsb, xt, torch.full((xt.shape[0],), K + dK, dtype=xt.dtype)), ts(bsb), F64
        )
        assert other["rel_l2"] > best["rel_l2"]
    c = float(torch.cat([bsb.u_exact(xt[:, :-1], xt[:, -1]) for xt in ts(bsb).chunks(F64)]).mean())
    flat = evaluate(bsb, lambda xt: torch.full((xt.shape[0],), c, dtype=xt.dtype), ts(bsb), F64)
    torch.testing.assert_close(flat["rel_l2"], flat["null_flat_rel_l2"], rtol=1e-9, atol=0)  # the best c is the mean


def test_point_reference_of_the_heat_problem():
    p = make_parabolic_problem("semilinear_heat", 1000)
    out = evaluate(p, lambda xt: p.terminal.value(xt[:, :-1]), None, F64)  # the terminal-only null, u = g
    assert out["ref_value"] == 0.28753
    torch.testing.assert_close(out["ref_rel_error"], abs(0.5 - 0.28753) / 0.28753)  # g(0) = 5/10
    assert "rel_l2" not in out
    assert make_parabolic_problem("semilinear_heat", 37).reference_point() is None


def test_sampling_laws_are_seeded_and_have_the_named_marginals():
    p = make_parabolic_problem("semilinear_heat", 50)
    a = sample_points(p, 4000, generator(1), F64)
    torch.testing.assert_close(a, sample_points(p, 4000, generator(1), F64))
    t = a[:, -1]
    assert float(t.min()) >= 0 and float(t.max()) <= p.T
    z = a[:, :-1] / (2 * t).sqrt().unsqueeze(1)  # x = √(2t) ξ
    assert abs(float(z.var()) - 1) < 0.02 and abs(float(z.mean())) < 0.01
    q = make_parabolic_problem("bsb", 50)
    b = sample_points(q, 4000, generator(2), F64)
    x0 = q.origin()
    m = (b[:, :-1] / x0).mean(0)  # GBM without drift is a martingale: E[X_t] = x₀
    assert float((m - 1).abs().mean()) < 0.01


@pytest.mark.parametrize(
    "term",
    [Terminal("radial", "heat"), Terminal("radial", "log"), Terminal("argmax"), Terminal("ridge", "sin", 0.7, 1.6)],
)
def test_terminal_coordinate_sums_match_autograd(term):
    d = 6
    x = torch.randn(3, d, generator=torch.Generator().manual_seed(4), dtype=F64)
    lap, xxlap, xgrad, grad2 = term.sums(x)
    for n in range(3):
        f = lambda y: term.value(y[None])[0]  # noqa: E731
        H = torch.diagonal(hessian(f)(x[n]))
        gr = grad(f)(x[n])
        torch.testing.assert_close(lap[n], H.sum())
        torch.testing.assert_close(xxlap[n], (x[n] ** 2 * H).sum())
        torch.testing.assert_close(xgrad[n], (x[n] * gr).sum())
        torch.testing.assert_close(grad2[n], (gr * gr).sum())


@pytest.mark.parametrize("name", ["semilinear_heat", "allen_cahn_time", "hjb_cole_hopf"])
def test_exact_terminal_part_cuts_the_estimator_variance(name):
    """The control variate (g's sums exact, only τN sampled): same mean, much smaller spread at d = 200."""
    import dataclasses

    d, S, n_draws = 200, 4, 300
    p = dataclasses.replace(
        make_parabolic_problem(name, d), terminal_rule="hard"
    )  # the control variate is the hard ansatz's
    m = MLP.init(d + 1, 12, 3, seed=3, dtype=F64)
    xt = sample_points(p, 8, generator(6), F64)
    with_cv, without = [], []
    for k in range(n_draws):
        b = batch_from_points(p, xt, sample_spatial("sdgd", d, S, generator(2000 + k), F64))
        n = net_jet(b, m.W, m.b)[1]
        with_cv.append(residual(p, b, u_jet(b, n)))
        without.append(residual(p, dataclasses.replace(b, shift=None), u_jet(b, n)))
    v_cv, v_plain = torch.stack(with_cv).var(0).mean(), torch.stack(without).var(0).mean()
    assert float(v_cv) < 0.25 * float(v_plain), (float(v_cv), float(v_plain))


def test_paths_law_starts_at_the_origin_and_has_brownian_increments():
    p = make_parabolic_problem("semilinear_heat", 40)
    xt = sample_points(p, 4000, generator(3), F64, law="paths")
    t, x = xt[:, -1], xt[:, :-1]
    at0 = t == 0
    assert int(at0.sum()) == 400 and float(x[at0].abs().max()) == 0.0  # one point in K = 10 is (0, x₀)
    tk = t.reshape(400, 10)
    width = p.T / 9  # one uniform time in each of the 9 strata of (0, T]: no part of the time axis is left out
    lo, hi = torch.arange(9, dtype=F64) * width, torch.arange(1, 10, dtype=F64) * width
    assert bool(((tk[:, 1:] >= lo) & (tk[:, 1:] < hi)).all())
    assert float(tk[:, -1].max()) > p.T - 0.01 * width and float(tk[:, 1].min()) < 0.01 * width
    z = x / (2 * t).clamp_min(1e-300).sqrt().unsqueeze(1)  # x ~ N(0, 2tI) at every t > 0
    assert abs(float(z[~at0].var()) - 1) < 0.03
    dx = x.reshape(400, 10, 40).diff(dim=1)  # independent increments of variance 2ν·Δt
    dt = tk.diff(dim=1).unsqueeze(-1)
    assert abs(float((dx / (2 * dt).sqrt()).var()) - 1) < 0.03
    assert abs(float((dx[:, 1:] * dx[:, :-1]).mean())) < 0.01  # uncorrelated
