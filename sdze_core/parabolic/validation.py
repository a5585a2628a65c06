"""Held-out residual of a parabolic solve: the yardstick that never reads u* (best-state keeping).

    val_residual = sqrt(mean_n R_n²)   at n seeded points x̃_n (the same at every evaluation)

with R from ``residual.residual`` along a fixed seeded set of S_val spatial directions: all d coordinates when
d ≤ S_val (exact), else S_val coordinates drawn once from the validation seed (SDGD weights d/S_val; the same
coordinates at every evaluation, so the yardstick is a deterministic function of the weights; its square is an
unbiased estimate of the mean of R̂² over coordinate draws, not of R² — see ``residual``). Pending low-rank
updates of a zeroth-order engine (W + M Vᵀ) are folded into effective weight copies first.
Under the soft terminal rule (u = N) the PDE residual alone is small for N ≈ 0, so the yardstick adds the terminal
mismatch with the training loss's weight λ: val_residual = sqrt(mean_n R_n² + λ·mean_j (u(x_j, T) − g(x_j))²) over
n/4 seeded terminal points x_j.
"""

from __future__ import annotations

import math

import torch

from ..model import MLP
from ..seeds import derive, generator
from ..taylor import LowRank
from .problems import ParabolicProblem
from .residual import batch_from_points, net_jet, residual, sample_spatial, u_jet
from .sampling import sample_points, terminal_points

VAL_POINTS = 128
VAL_DIRECTIONS = 128


def _effective(model: MLP, lowrank: list[LowRank | None] | None) -> tuple[list, list]:
    W = [w.detach() for w in model.W]
    for l, lr in enumerate(lowrank or []):
        if lr is not None and lr.V is not None and lr.M is not None:
            W[l] = W[l] + lr.M @ lr.V.t()
    return W, [b.detach() for b in model.b]


@torch.no_grad()
def validation_residual(
    problem: ParabolicProblem,
    model: MLP,
    lowrank: list[LowRank | None] | None,
    seed: int,
    n: int = VAL_POINTS,
    dtype: torch.dtype = torch.float32,
    device="cpu",
) -> dict[str, float]:
    """{"val_residual": RMS residual, "val_points": n}."""
    d = problem.dim
    gen = generator(derive(seed, "pval"), "cpu")
    xt = sample_points(problem, n, gen, torch.float64, "cpu")
    exact = d <= VAL_DIRECTIONS
    spatial = sample_spatial("exact" if exact else "sdgd", d, VAL_DIRECTIONS, gen, dtype, "cpu")
    spatial = type(spatial)(spatial.order, spatial.weight, spatial.idx.to(device), None)
    W, b = _effective(model, lowrank)
    rows = max(1, (1 << 21) // ((spatial.count + 1) * model.width))
    ss = 0.0
    for chunk in xt.split(rows):
        batch = batch_from_points(problem, chunk.to(device, dtype), spatial)
        R = residual(problem, batch, u_jet(batch, net_jet(batch, W, b)[1]))
        ss += float(R.double().square().sum())
    val = ss / n
    if problem.terminal_rule == "soft":
        xT = terminal_points(problem, max(1, n // 4), gen, torch.float64, "cpu").to(device, dtype)
        h = xT
        for l in range(len(W) - 1):
            h = torch.tanh(h @ W[l].t() + b[l])
        u = (h @ W[-1].t() + b[-1])[:, 0]
        g = problem.terminal.value(xT[:, :d].double())
        val += problem.terminal_weight * float((u.double() - g).square().mean())
    return {"val_residual": math.sqrt(val), "val_points": float(n)}
