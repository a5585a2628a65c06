"""The randomized spatial operators are unbiased: their mean over many seeds converges to the exact one."""

import math

import pytest
import torch

from sdze_core.estimators import sample_directions
from sdze_core.model import MLP
from sdze_core.problems import make_problem
from sdze_core.residual import StepBatch, u_jet
from sdze_core.sampling import sample_points
from sdze_core.seeds import generator
from sdze_core.taylor import FirstLayer, boundary_jet, hidden_jet, operator_from_jet

F64 = torch.float64


def _operator(p, m, x, dirs):
    bj = boundary_jet(p.boundary_poly, x, dirs, dirs.order)
    b = StepBatch(x, torch.zeros(x.shape[0], dtype=F64), dirs, bj)
    first = FirstLayer.compute(m.W[0], m.b[0], x, dirs)
    return operator_from_jet(u_jet(b, hidden_jet(first, m.W[1:-1], m.b[1:-1], dirs.order), m.W[-1], m.b[-1]), dirs)


@pytest.mark.parametrize(
    "kind,name", [("sdgd", "poisson_two_body"), ("hte", "poisson_two_body"), ("gauss", "biharmonic_three_body")]
)
def test_estimator_is_unbiased(kind, name):
    d, S, trials = 12, 3, 4000
    p = make_problem(name, d, seed=0)
    m = MLP.init(d, 10, 3, seed=4, dtype=F64)
    x = sample_points(p, 2, generator(5), F64)
    order = p.order
    if order == 2:
        exact = _operator(p, m, x, sample_directions("exact", d, d, 2, generator(0), F64))
    else:  # Δ²u exactly = Σ_ij ∂²_i∂²_j u via the polarization of fourth directional derivatives
        exact = _bilaplacian_by_autograd(p, m, x)
    draws = torch.stack(
        [_operator(p, m, x, sample_directions(kind, d, S, order, generator(1000 + t), F64)) for t in range(trials)]
    )
    mean, se = draws.mean(0), draws.std(0) / math.sqrt(trials)
    z = ((mean - exact) / se).abs()
    assert bool((z < 4.5).all()), f"mean {mean} vs exact {exact} (z = {z})"  # unbiased within 4.5 standard errors
    assert bool((draws.std(0) > 0).all())  # and genuinely random


def _bilaplacian_by_autograd(p, m, x):
    def u(z):
        h = z
        for l in range(m.depth - 1):
            h = torch.tanh(h @ m.W[l].T + m.b[l])
        return p.boundary(z) * (h @ m.W[-1].T + m.b[-1])[:, 0]

    def lap(z):
        z = z.requires_grad_(True) if not z.requires_grad else z
        (g,) = torch.autograd.grad(u(z).sum(), z, create_graph=True)
        return sum(torch.autograd.grad(g[:, i].sum(), z, create_graph=True)[0][:, i] for i in range(z.shape[1]))

    xz = x.clone().requires_grad_(True)
    L = lap(xz)
    (g,) = torch.autograd.grad(L.sum(), xz, create_graph=True)
    return sum(torch.autograd.grad(g[:, i].sum(), xz, retain_graph=True)[0][:, i] for i in range(x.shape[1])).detach()


def test_sdgd_with_all_coordinates_is_exact():
    d = 9
    p = make_problem("sine_gordon_two_body", d)
    m = MLP.init(d, 8, 3, seed=0, dtype=F64)
    x = sample_points(p, 3, generator(1), F64)
    full = _operator(p, m, x, sample_directions("sdgd", d, d, 2, generator(2), F64))
    exact = _operator(p, m, x, sample_directions("exact", d, d, 2, generator(0), F64))
    torch.testing.assert_close(full, exact)
