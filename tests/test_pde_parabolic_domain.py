"""Time-dependent PDEs on a bounded domain (``problem.domain`` + ``problem.boundary`` with ``time``; docs/pde.md).

u = G + (T − t)·B(x)·N with G = g(x) + h(x, t) − h(x, T): the jet residual equals float64 autograd of that u on
every domain kind, the sampled residual is unbiased, u meets g at t = T and h on ∂Ω whatever N is, the shipped
heat-kernel example satisfies its PDE and learns below its null, and the combinations that cannot hold are refused
naming the field.
"""

import itertools
import json
import math
import pathlib

import pytest
import torch
from core_helpers import assert_refused
from torch.func import grad, hessian

from sdze_core.estimators import Directions
from sdze_core.model import MLP
from sdze_core.parabolic.evaluation import evaluate, time_slices
from sdze_core.parabolic.residual import batch_from_points, net_jet, residual, u_jet
from sdze_core.parabolic.sampling import ParabolicTestSet, sample_points
from sdze_core.pde.problem import problem_from_spec
from sdze_core.seeds import generator
from sdze_core.spec import JobSpec

F64 = torch.float64
ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "heat_ball_time_d100.json"
DOMAINS = {
    "ball": {"kind": "ball", "radius": 1.5},
    "annulus": {"kind": "annulus", "inner": 0.5, "outer": 2.0},
    "cube": {"kind": "cube", "low": -1.0, "high": 2.0},
}
# h reads x and t, the reaction u, x and t; drift, diagonal diffusion and |∇u|² all present
USER = {
    "dim": 4,
    "pde": {
        "operator": {"laplacian": 0.7, "diffusion": 0.2, "drift": -0.3},
        "reaction": "sin(u) * exp(-t) + u * x[0]",
        "gradient_square": -0.4,
    },
    "time": {"horizon": 0.8, "terminal": "cos(x[0]) + norm2(x) / 4"},
    "boundary": "cos(x[0]) + norm2(x) / 4 + (0.8 - t) * sin(x[1] + t)",
}


def _user(kind: str) -> dict:
    spec = {**USER, "domain": DOMAINS[kind]}
    if kind == "annulus":  # x₀ = 0 is in the hole
        spec["time"] = {**USER["time"], "origin": [1.0, 0.0, 0.0, 0.0]}
    return spec


def _net(d: int, seed: int = 2):
    net = MLP.init(d + 1, 12, 3, seed, F64)

    def N(z):
        h = z
        for l in range(net.depth - 1):
            h = torch.tanh(h @ net.W[l].T + net.b[l])
        return (h @ net.W[-1].T + net.b[-1])[:, 0]

    return net, N


def _u_fn(p, N):
    def u_fn(x, t):
        xt = torch.cat([x, t.reshape(1)]).unsqueeze(0)
        return p.ansatz(xt, N(xt))[0]

    return u_fn


def _autograd_residual(p, u_fn, xi, ti):
    u = u_fn(xi, ti)
    ux, ut = grad(u_fn, 0)(xi, ti), grad(u_fn, 1)(xi, ti)
    H = torch.diagonal(hessian(u_fn, 0)(xi, ti))
    aux = p.reaction_aux(xi.unsqueeze(0), ti.reshape(1))
    R = ut + p.nu * H.sum() + p.kappa * (xi * xi * H).sum() + p.beta * (xi * ux).sum()
    return R + p.reaction_value(u.reshape(1), aux)[0] + p.grad_sq * (ux * ux).sum() + p.const


@pytest.mark.parametrize("kind", sorted(DOMAINS))
def test_jet_residual_is_the_autograd_residual_and_the_sampled_one_is_unbiased(kind):
    p = problem_from_spec(_user(kind))
    d = p.dim
    assert p.law == "domain"
    net, N = _net(d)
    xt = sample_points(p, 6, generator(3), F64)
    u_fn = _u_fn(p, N)
    want = torch.stack([_autograd_residual(p, u_fn, xt[i, :d], xt[i, d]) for i in range(6)])
    b = batch_from_points(p, xt, Directions(order=2, weight=1.0, idx=torch.arange(d)))
    got = residual(p, b, u_jet(b, net_jet(b, net.W, net.b)[1]))
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)
    # SDGD over every 2-subset of the coordinates, equally weighted: its mean is the exact residual
    Rs = []
    for pair in itertools.combinations(range(d), 2):
        b = batch_from_points(p, xt, Directions(order=2, weight=d / 2, idx=torch.tensor(pair)))
        Rs.append(residual(p, b, u_jet(b, net_jet(b, net.W, net.b)[1])))
    torch.testing.assert_close(torch.stack(Rs).mean(0), want, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("kind", sorted(DOMAINS))
def test_u_meets_g_at_T_and_h_on_the_boundary_whatever_the_network(kind):
    p = problem_from_spec(_user(kind))
    d = p.dim
    _, N = _net(d, seed=5)
    gen = generator(8)
    x = p.sample_domain(7, gen, F64)
    xT = torch.cat([x, torch.full((7, 1), p.T, dtype=F64)], 1)
    torch.testing.assert_close(p.ansatz(xT, N(xT)), p.terminal.value(x), rtol=1e-12, atol=1e-12)
    xb = p.domain_obj.sample_boundary(7, gen, F64)
    tb = torch.rand(7, generator=gen, dtype=F64) * p.T
    xtb = torch.cat([xb, tb.unsqueeze(1)], 1)
    n = N(xtb)
    assert float(n.abs().min()) > 1e-3  # the network is not 0 there: the factor does the work
    torch.testing.assert_close(p.ansatz(xtb, n), p.boundary_value(xb, tb), rtol=1e-10, atol=1e-10)
    # and inside, the network moves u (B(x)·τ ≠ 0)
    xt = sample_points(p, 5, generator(9), F64)
    assert float((p.ansatz(xt, N(xt)) - p.ansatz(xt, 0 * N(xt))).abs().min()) > 1e-6


def test_shipped_heat_kernel_example_satisfies_its_pde_and_its_nulls_are_reported():
    raw = json.loads(EXAMPLE.read_text())
    spec = {**raw["problem"], "dim": 5}
    p = problem_from_spec(spec)
    x, t = sample_points(p, 6, generator(1), F64).split([5, 1], 1)
    t = t[:, 0]

    def u_fn(xi, ti):
        return p.u_exact(xi.unsqueeze(0), ti.reshape(1))[0]

    R = torch.stack([_autograd_residual(p, u_fn, x[i], t[i]) for i in range(6)])
    assert float(R.abs().max()) < 1e-12, R
    assert JobSpec.model_validate(raw).problem.domain.kind == "ball"
    ts = ParabolicTestSet(p, 400, 3)
    zero = evaluate(p, lambda xt: p.ansatz(xt.double(), torch.zeros(xt.shape[0], dtype=F64)), ts, F64)
    assert zero["rel_l2"] == pytest.approx(zero["null_terminal_rel_l2"], rel=1e-12)
    assert 0 < zero["null_rel_l2"] < zero["null_terminal_rel_l2"] and not zero["null_exact"]

    # u* itself through the hard rule (N = (u* − G)/(τB)) scores 0, at every time slice too
    def exact_net(xt):
        x_, t_ = xt[:, :5].double(), xt[:, 5].double()
        return (p.u_exact(x_, t_) - p.lifted(x_, t_)) / p.factor(x_, t_)

    assert evaluate(p, lambda xt: p.ansatz(xt.double(), exact_net(xt)), ts, F64)["rel_l2"] < 1e-12
    slices, _ = time_slices(p, lambda xt: p.u_exact(xt[:, :5], xt[:, 5]), 64, 4, zero["null_K"], F64)
    assert [s["truth"] for s in slices] == ["exact"] * 4 + ["terminal condition"]
    assert all(s["rel_l2"] < 1e-12 for s in slices)
    assert slices[0]["null_rel_l2"] > 0


@pytest.mark.parametrize(
    ("patch", "field", "words"),
    [
        ({"time": {"horizon": 0.8, "terminal": "cos(x[0])", "rule": "soft"}}, "problem.time.rule", "hard rule"),
        ({"time": {"horizon": 0.8, "terminal": "cos(x[0])", "law": "gaussian"}}, "problem.time.law", "leave it out"),
        ({"time": {"horizon": 0.8, "terminal": "cos(x[0])", "origin": [3.0]}}, "problem.time.origin", "inside"),
        ({"domain": {"kind": "annulus"}}, "problem.time.origin", "annulus"),
        ({"boundary": "cos(x[0]) + t"}, "problem.boundary", "h(x, T) differs"),
        ({"exact": "cos(x[0]) + (0.8 - t) * x[1]"}, "problem.exact", "boundary"),
        ({"domain": None, "boundary": "t"}, "problem.boundary", "only with a domain"),
    ],
)
def test_bad_domain_combinations_are_refused_naming_the_field(patch, field, words):
    raw = {**_user("ball"), "time": {**USER["time"], "terminal": "cos(x[0])"}, "boundary": "cos(x[0])"}
    raw.update(patch)
    assert_refused({k: v for k, v in raw.items() if v is not None}, field, words)


def test_sdze_learns_the_heat_kernel_on_a_ball_below_its_null():
    """d = 5, float64, 80 steps of the default method: below the best-constant null (aniso < 0.5)."""
    from sdze_core.solver import Solver

    raw = json.loads(EXAMPLE.read_text())
    spec = {
        "problem": {**raw["problem"], "dim": 5},
        "model": {"width": 16, "depth": 3},
        "solver": {"method": "sdze", "steps": 80, "batch_size": 32, "samples": 5},
        "eval": {"test_points": 500, "every": 80},
        "dtype": "float64",
    }
    s = Solver(JobSpec.model_validate(spec).to_config(), device="cpu")
    for t in range(80):
        s.local_step(t)
    ev = s.evaluate_test()
    assert math.isfinite(ev["rel_l2"]) and ev["aniso_ratio"] < 0.5, ev


@pytest.mark.parametrize("kind", sorted(DOMAINS))
def test_u_jet_along_dense_directions_is_the_autograd_directional_derivative(kind):
    """The Rademacher (hte) route: u's jet along dense v is [u, v·∇u, vᵀ∇²u v / 2] and along e_t [u, u_t, u_tt / 2]."""
    spec = _user(kind)  # Rademacher probes serve νΔ, the drift and |∇u|², not the diagonal diffusion
    spec["pde"] = {**spec["pde"], "operator": {"laplacian": 0.7, "drift": -0.3}}
    p = problem_from_spec(spec)
    d = p.dim
    net, N = _net(d, seed=7)
    xt = sample_points(p, 4, generator(5), F64)
    v = (torch.randint(0, 2, (3, d), generator=generator(6)) * 2 - 1).to(F64)
    b = batch_from_points(p, xt, Directions(order=2, weight=1 / 3, vecs=v))
    u = u_jet(b, net_jet(b, net.W, net.b)[1])
    u_fn = _u_fn(p, N)
    for i in range(4):
        x, t = xt[i, :d], xt[i, d]
        g, H = grad(u_fn, 0)(x, t), hessian(u_fn, 0)(x, t)
        torch.testing.assert_close(u[0][i, 0], u_fn(x, t), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(u[1][i, :3], v @ g, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(u[2][i, :3], 0.5 * torch.einsum("sd,de,se->s", v, H, v), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(u[1][i, 3], grad(u_fn, 1)(x, t), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(u[2][i, 3], 0.5 * grad(grad(u_fn, 1), 1)(x, t), rtol=1e-10, atol=1e-10)
