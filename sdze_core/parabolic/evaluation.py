"""Accuracy of a parabolic solve, with its nulls (reported beside every figure).

With u = g + τN, τ = T − t, on a seeded test set (problems with a closed form):
    rel_l2                = ‖u_θ − u*‖ / ‖u*‖
    null_terminal_rel_l2  = ‖g − u*‖ / ‖u*‖                          (the terminal condition alone, N = 0)
    null_rel_l2           = min_K ‖g + τK − u*‖ / ‖u*‖
                          = sqrt(Σe² − (Σeτ)²/Στ²) / ‖u*‖,  e = u* − g  (closed-form least squares, K = Σeτ/Στ²)
    aniso_ratio           = rel_l2 / null_rel_l2   (< 1: the model learned more than the best constant)
``null_exact`` is true where that null already solves the problem (HJB-Lin: u* = g + τ): such a problem proves
nothing and is labelled so. At a point reference (t, x) = (0, x₀): ref_rel_error = |u_θ − u_ref|/|u_ref| and the
terminal null's ref_null_rel_error = |g(x₀) − u_ref|/|u_ref| (one point cannot fix a best K). Sums in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .problems import ParabolicProblem
from .sampling import ParabolicTestSet

NULL_EXACT_TOL = 1e-10
# what metrics.json carries beyond the stationary keys (rel_l2, null_rel_l2, aniso_ratio, val_residual)
EXTRA_METRICS = (
    "ref_rel_error",
    "ref_null_rel_error",
    "ref_u",
    "ref_value",
    "null_terminal_rel_l2",
    "null_K",
    "null_exact",
)


def compose(problem: ParabolicProblem, xt: Tensor, n: Tensor) -> Tensor:
    """u from the network's output N (n,) at points x̃ (n, d+1) (``ParabolicProblem.ansatz``)."""
    return problem.ansatz(xt, n)


def evaluate(
    problem: ParabolicProblem,
    predict: Callable[[Tensor], Tensor],
    test: ParabolicTestSet | None,
    dtype=torch.float32,
    device="cpu",
) -> dict[str, float]:
    """``predict`` maps x̃ (n, d+1) in ``dtype`` to u_θ (n,). Test-set metrics where a closed form exists,
    the reference-point metrics where a reference value exists."""
    out: dict[str, float] = {}
    d = problem.dim
    if problem.has_exact and test is not None:
        se = uu = ee = et = tt = 0.0
        for xt in test.chunks(torch.float64, device):
            x, t = xt[:, :d], xt[:, d]
            u_star = problem.u_exact(x, t)
            e = u_star - problem.terminal.value(x)
            tau = problem.T - t
            with torch.no_grad():
                u = predict(xt.to(dtype)).double()
            se += float((u - u_star).square().sum())
            uu += float(u_star.square().sum())
            ee += float(e.square().sum())
            et += float((e * tau).sum())
            tt += float(tau.square().sum())
        rel = math.sqrt(se / uu)
        null = math.sqrt(max(ee - et * et / tt, 0.0) / uu)
        out.update(
            rel_l2=rel,
            null_terminal_rel_l2=math.sqrt(ee / uu),
            null_rel_l2=null,
            null_K=et / tt,
            aniso_ratio=rel / null if null > 0 else float("inf"),
            null_exact=null < NULL_EXACT_TOL,
        )
    ref = problem.reference_point()
    if ref is not None:
        x, t, value = ref
        xt = torch.cat([x, t.unsqueeze(1)], 1).to(device)
        with torch.no_grad():
            u = float(predict(xt.to(dtype)).double()[0])
        g0 = float(problem.terminal.value(x)[0])
        out.update(
            ref_u=u,
            ref_value=value,
            ref_rel_error=abs(u - value) / abs(value),
            ref_null_rel_error=abs(g0 - value) / abs(value),
        )
    return out
