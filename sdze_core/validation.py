"""The held-out residual: how well the network satisfies the PDE on a fixed seeded validation batch.

Best-state keeping needs a yardstick that users of their own PDEs have, so it never reads the exact solution:

    val_residual = sqrt(mean_n R_n²),   R_n = Δu(x_n) + F(u(x_n)) − f(x_n)   (or Δ²u for the biharmonic)

at n seeded points (the same points at every evaluation; the boundary condition holds exactly by u = B·N, so
there is no boundary term). Second-order operators use the exact z-space Laplacian (``zspace``: no sampling
noise, cost O(h²d + n d h)); fourth-order ones a fixed seeded set of Gaussian directions (the same every time,
so the yardstick is a deterministic function of the weights). Points are drawn and consumed a few rows at a time,
so at d = 10^7 the batch is never held whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from .model import MLP
from .norms import squared_row_norms
from .problems import Problem
from .residual import make_batch, residual, source_chunked, u_jet
from .sampling import sample_points
from .seeds import derive, generator
from .taylor import FirstLayer, LowRank, hidden_jet
from .zspace import (
    bn_from_jets,
    effective_layers,
    first_layer_gram,
    first_layer_z,
    hidden_jets,
    laplacian_bn,
    laplacian_directions,
    output_jets,
    z_directions,
)

MAX_POINTS = 256
BIHARMONIC_DIRECTIONS = 16


def validation_points(dim: int) -> int:
    """n = 256, fewer at very high d (n·d ≤ 2^26 random numbers, at least 16 points: the source f costs O(d)
    transcendentals per point, seconds per evaluation at d = 10^6)."""
    return max(16, min(MAX_POINTS, (1 << 26) // dim))


@torch.no_grad()
def validation_residual(
    problem: Problem,
    model: MLP,
    lowrank: list[LowRank | None] | None,
    seed: int,
    n: int | None = None,
    dtype: torch.dtype = torch.float32,
    device="cpu",
) -> dict[str, float]:
    """{"val_residual": RMS residual, "val_points": n} of u = B·N(θ_eff) at the seeded points of ``seed``."""
    n = n or validation_points(problem.dim)
    if problem.order != 2:
        return _fourth_order(problem, model, lowrank, seed, n, dtype, device)
    low0, L, wgt, W, b = zspace_layers(model, lowrank)
    w_out, b_out = model.W[-1].detach().double(), model.b[-1].detach().double()
    ss = 0.0
    for z0, wx, sq, f in seeded_chunks(problem, model, low0, seed, n, dtype, device):
        u, lap = laplacian_bn(z0, wx, sq, L, wgt, W, b, w_out, b_out, problem.boundary_poly, problem.dim)
        ss += _square_sum(problem, u, lap, f)
    return {"val_residual": math.sqrt(ss / n), "val_points": n}


@torch.no_grad()
def second_order_residual(
    problem: Problem,
    model: MLP,
    lowrank: list[LowRank | None] | None,
    seed: int,
    n: int,
    dtype: torch.dtype = torch.float32,
    device="cpu",
) -> Callable[[], float]:
    """``validation_residual``'s RMS residual as a function of the model's output layer (W_L, b_L read at each
    call). Everything else — the points, f, W₁x, the z-space directions and the hidden layers' jets — is computed
    once here: at d = 10^7 that is nearly all of the cost, and the constant start (``constant_start``) evaluates
    the residual for several b_L. Memory: the hidden jets of all n points, 2·n·(h+1)·h doubles (68 MB at n = 256,
    h = 128); the points themselves are consumed a few rows at a time."""
    low0, L, wgt, W, b = zspace_layers(model, lowrank)
    parts = [
        (hidden_jets(z0, laplacian_directions(L, wx), W, b), sq, f)
        for z0, wx, sq, f in seeded_chunks(problem, model, low0, seed, n, dtype, device)
    ]

    def rms() -> float:
        w_out, b_out = model.W[-1].detach().double(), model.b[-1].detach().double()
        ss = 0.0
        for y, sq, f in parts:
            u, lap = bn_from_jets(output_jets(y, w_out, b_out), sq, wgt, problem.boundary_poly, problem.dim)
            ss += _square_sum(problem, u, lap, f)
        return math.sqrt(ss / n)

    return rms


def zspace_layers(model: MLP, lowrank: list[LowRank | None] | None) -> tuple:
    """(W₁'s low-rank term, the z-space directions and weight of W₁W₁ᵀ, the hidden layers in float64)."""
    low0 = lowrank[0] if lowrank else None
    L, wgt = z_directions(first_layer_gram(model.W[0].detach(), low0), "eig")
    W, b = effective_layers(model, lowrank)
    return low0, L, wgt, [w.double() for w in W], [c.double() for c in b]


def seeded_chunks(
    problem: Problem, model: MLP, low0: LowRank | None, seed: int, n: int, dtype: torch.dtype, device
) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
    """(W₁x + b₁, W₁x, |x|², f(x)) in float64 for the n seeded points of ``seed``, a few rows at a time (at
    d = 10^7 one row: the batch is never held whole)."""
    rows = max(1, min(64, (1 << 22) // problem.dim))
    done, chunk = 0, 0
    while done < n:
        m = min(rows, n - done)
        x = sample_points(problem, m, generator(derive(seed, "validation", chunk), device), dtype, device)
        z0, wx = first_layer_z(model, low0, x)
        yield z0.double(), wx.double(), squared_row_norms(x, torch.float64), source_chunked(problem, x)
        done += m
        chunk += 1


def _square_sum(problem: Problem, u: Tensor, lap: Tensor, f: Tensor) -> float:
    """Σ_n R_n², R = Δu + F(u) − f."""
    return float((lap + problem.nonlinearity(u) - f).square().sum())


def _fourth_order(problem, model, lowrank, seed, n, dtype, device) -> dict[str, float]:
    """Δ²u by the Gaussian estimator along fixed seeded directions (one batch: biharmonic problems are low-d)."""
    batch = make_batch(
        problem, n, "gauss", BIHARMONIC_DIRECTIONS, generator(derive(seed, "validation"), device), dtype, device
    )
    low = list(lowrank) if lowrank else [None] * (model.depth - 1)
    if low[0] is not None and low[0].V is not None:
        low[0] = LowRank(low[0].V, low[0].M, batch.x @ low[0].V, batch.dirs.project(low[0].V.t()))
    first = FirstLayer.compute(model.W[0].detach(), model.b[0].detach(), batch.x, batch.dirs)
    Ws = [w.detach() for w in model.W[1:-1]]
    bs = [c.detach() for c in model.b[1:-1]]
    phi = hidden_jet(first, Ws, bs, problem.order, low)
    u = u_jet(batch, phi, model.W[-1].detach(), model.b[-1].detach())
    R = residual(problem, batch, u).double()
    return {"val_residual": math.sqrt(float(R.square().mean())), "val_points": n}
