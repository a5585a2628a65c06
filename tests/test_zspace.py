"""The z-space Laplacian of u = B·N against float64 autograd (exact to round-off) and its sampled variant."""

import pytest
import torch

from sdze_core.model import MLP
from sdze_core.taylor import LowRank
from sdze_core.zspace import effective_layers, first_layer_gram, first_layer_z, laplacian_bn, z_directions


def _u(model, x, poly, low0=None):
    W1 = model.W[0] if low0 is None else model.W[0] + low0.M @ low0.V.t()
    h = torch.tanh(x @ W1.t() + model.b[0])
    for l in range(1, model.depth - 1):
        h = torch.tanh(h @ model.W[l].t() + model.b[l])
    n = (h @ model.W[-1].t() + model.b[-1])[..., 0]
    s = (x * x).sum(-1)
    return (poly[0] + poly[1] * s + poly[2] * s * s) * n


def _autograd_laplacian(model, x, poly, low0=None):
    out = []
    for xi in x:
        H = torch.autograd.functional.hessian(lambda y: _u(model, y.unsqueeze(0), poly, low0)[0], xi)
        out.append(torch.diagonal(H).sum())
    return torch.stack(out)


@pytest.mark.parametrize("poly", [(1.0, -1.0, 0.0), (4.0, -5.0, 1.0), (1.0, -1.0 / 9, 0.0)])
@pytest.mark.parametrize("depth", [2, 4])
def test_eig_laplacian_matches_autograd_in_float64(poly, depth):
    d, h = 9, 6
    model = MLP.init(d, h, depth, seed=3, dtype=torch.float64)
    x = torch.randn(5, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    G = first_layer_gram(model.W[0])
    L, wgt = z_directions(G, "eig")
    z0, wx = first_layer_z(model, None, x)
    W, b = effective_layers(model, None)
    u, lap = laplacian_bn(z0, wx, (x * x).sum(1), L, wgt, W, b, model.W[-1], model.b[-1], poly, d)
    torch.testing.assert_close(u, _u(model, x, poly), rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(lap, _autograd_laplacian(model, x, poly), rtol=1e-11, atol=1e-11)


def test_pending_low_rank_first_layer_term_is_included():
    d, h, r = 11, 5, 3
    model = MLP.init(d, h, 3, seed=4, dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    V = torch.linalg.qr(torch.randn(d, r, generator=g, dtype=torch.float64))[0]
    low = LowRank(V, 0.3 * torch.randn(h, r, generator=g, dtype=torch.float64))
    x = torch.randn(4, d, generator=g, dtype=torch.float64)
    poly = (4.0, -5.0, 1.0)
    L, wgt = z_directions(first_layer_gram(model.W[0], low), "eig")
    z0, wx = first_layer_z(model, low, x)
    W, b = effective_layers(model, [low, None])
    _, lap = laplacian_bn(z0, wx, (x * x).sum(1), L, wgt, W, b, model.W[-1], model.b[-1], poly, d)
    torch.testing.assert_close(lap, _autograd_laplacian(model, x, poly, low), rtol=1e-11, atol=1e-11)


def test_gauss_directions_reproduce_the_gram_on_average():
    # E[l lᵀ] = W₁W₁ᵀ for l = C ξ: the sampled estimate is unbiased for tr(H W₁W₁ᵀ) for every H
    model = MLP.init(50, 8, 2, seed=5, dtype=torch.float64)
    G = first_layer_gram(model.W[0])
    L, wgt = z_directions(G, "gauss", samples=200_000, gen=torch.Generator().manual_seed(0))
    emp = wgt * L.t() @ L
    # entrywise standard error of the mean of l_i l_j is sqrt((G_ii G_jj + G_ij²)/S); allow 5 of them
    se = ((torch.diagonal(G)[:, None] * torch.diagonal(G)[None, :] + G * G) / 200_000).sqrt()
    assert bool(((emp - G).abs() <= 5 * se).all())
    Le, we = z_directions(G, "eig")
    torch.testing.assert_close(we * Le.t() @ Le, G, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["sine_gordon_two_body", "allen_cahn_two_body", "poisson_two_body"])
def test_validation_residual_equals_the_exact_coordinate_laplacian(name):
    from sdze_core.estimators import sample_directions
    from sdze_core.problems import make_problem
    from sdze_core.residual import StepBatch, residual, source_chunked, u_jet
    from sdze_core.sampling import sample_points
    from sdze_core.seeds import derive, generator
    from sdze_core.taylor import FirstLayer, boundary_jet, hidden_jet
    from sdze_core.validation import validation_residual

    d, n = 12, 70  # 70 points: two chunks of 64 rows
    problem = make_problem(name, d)
    model = MLP.init(d, 7, 3, seed=6, dtype=torch.float64)
    got = validation_residual(problem, model, None, seed=42, n=n, dtype=torch.float64)
    x = [
        sample_points(problem, m, generator(derive(42, "validation", i)), torch.float64) for i, m in enumerate((64, 6))
    ]
    x = torch.cat(x)
    dirs = sample_directions("exact", d, 0, 2, None, torch.float64)
    batch = StepBatch(x, source_chunked(problem, x), dirs, boundary_jet(problem.boundary_poly, x, dirs, 2))
    phi = hidden_jet(FirstLayer.compute(model.W[0], model.b[0], x, dirs), model.W[1:-1], model.b[1:-1], 2)
    R = residual(problem, batch, u_jet(batch, phi, model.W[-1], model.b[-1]))
    assert got["val_points"] == n
    assert abs(got["val_residual"] - float(R.square().mean().sqrt())) <= 1e-12 * float(R.abs().max())
