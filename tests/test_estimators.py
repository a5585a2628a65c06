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


@pytest.mark.parametrize(
    "name", ["sine_gordon_two_body", "sine_gordon_three_body", "allen_cahn_two_body", "sine_gordon_two_body_scaled"]
)
def test_zspace_estimator_equals_the_exact_laplacian_and_its_gradient_in_float64(name):
    """Row-space directions of W₁ give the exact Δ(B·N) (after the boundary correction); extended by the batch's
    points and held fixed within the step, the exact gradient of the loss with respect to every parameter too."""
    from sdze_core.estimators import sample_directions, zspace_boundary, zspace_directions, zspace_with_points
    from sdze_core.model import MLP
    from sdze_core.problems import make_problem
    from sdze_core.residual import StepBatch, residual, source_chunked, u_jet
    from sdze_core.taylor import FirstLayer, boundary_jet, hidden_jet

    d = 30
    problem = make_problem(name, d)
    model = MLP.init(d, 8, 3, seed=2, dtype=torch.float64)  # h = 8 < d: a proper row space
    x = torch.randn(6, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.15

    def loss_and_grads(dirs, zspace):
        params = [p.detach().clone().requires_grad_(True) for p in model.params()]
        W, b = params[0::2], params[1::2]
        bjet = boundary_jet(problem.boundary_poly, x, dirs, 2)
        if zspace:
            bjet = zspace_boundary(bjet, problem.boundary_poly, x, dirs)
        batch = StepBatch(x, source_chunked(problem, x), dirs, bjet)
        phi = hidden_jet(FirstLayer.compute(W[0], b[0], x, dirs), W[1:-1], b[1:-1], 2)
        R = residual(problem, batch, u_jet(batch, phi, W[-1], b[-1]))
        R.square().mean().backward()
        return R.detach(), [p.grad for p in params]

    rows = zspace_directions(model.W[0])
    assert rows.count == 8
    torch.testing.assert_close(rows.vecs @ rows.vecs.t(), torch.eye(8, dtype=torch.float64), rtol=0, atol=1e-12)
    Rrows = loss_and_grads(rows, True)[0]  # the row space alone: the exact residual already
    zd = zspace_with_points(rows, x)
    assert zd.count == 8 + 6
    torch.testing.assert_close(zd.vecs @ zd.vecs.t(), torch.eye(14, dtype=torch.float64), rtol=0, atol=1e-12)
    Rz, gz = loss_and_grads(zd, True)
    Re, ge = loss_and_grads(sample_directions("exact", d, 0, 2, None, torch.float64), False)
    torch.testing.assert_close(Rz, Re, rtol=1e-11, atol=1e-9)
    torch.testing.assert_close(Rrows, Re, rtol=1e-11, atol=1e-9)
    for a, b in zip(gz, ge, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9 * float(b.abs().max()))


def test_zspace_runs_through_the_spec_and_learns(tmp_path):
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from core_helpers import tiny_spec

    from sdze_core.trainer import Trainer

    spec = tiny_spec(method="sdze", estimator="zspace", steps=60, eval={"test_points": 300, "every": 30})
    m = Trainer(spec.to_config(), tmp_path).run()
    assert m["status"] == "succeeded" and m["aniso_ratio"] < 1.0


def test_zspace_is_refused_where_its_boundary_correction_does_not_hold():
    from pydantic import ValidationError

    from sdze_core.spec import JobSpec

    with pytest.raises(ValidationError, match="zspace"):
        JobSpec.model_validate(
            {
                "problem": {"name": "sine_gordon_two_body", "dim": 10},
                "solver": {"method": "zo_full", "estimator": "zspace"},
            }
        )
