"""Accuracy on a seeded test set, evaluated chunk by chunk, with the constant null (SPEC §3).

rel_l2      = ‖u_θ − u*‖ / ‖u*‖
null_rel_l2 = min_K ‖u* − K·B‖ / ‖u*‖ = sqrt(Σu*² − (Σu*B)²/ΣB²) / ‖u*‖   (closed-form least squares)
aniso_ratio = rel_l2 / null_rel_l2  (< 1: the model learned more than a multiple of the boundary factor)
Sums are accumulated in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .problems import Problem
from .sampling import TestSet


def evaluate(
    problem: Problem, predict: Callable[[Tensor], Tensor], test: TestSet, dtype=torch.float32, device="cpu"
) -> dict[str, float]:
    """``predict`` maps points (n, d) in ``dtype`` to u_θ = g + B·N (n,); returns rel_l2 ‖u_θ − u*‖/‖u*‖, the
    constant null min_K ‖u* − g − K·B‖/‖u*‖ (closed-form least squares; g ≡ 0 on catalogue problems) and
    aniso_ratio = rel_l2 / null_rel_l2."""
    se = uu = rb = bb = rr = 0.0
    for x64 in test.chunks(torch.float64, device):
        u_star = problem.u_exact(x64)
        r = u_star - problem.boundary_value(x64)
        B = problem.boundary(x64)
        with torch.no_grad():
            u = predict(x64.to(dtype)).double()
        se += float((u - u_star).square().sum())
        uu += float(u_star.square().sum())
        rb += float((r * B).sum())
        bb += float(B.square().sum())
        rr += float(r.square().sum())
    rel = math.sqrt(se / uu)
    null = math.sqrt(max(rr - rb * rb / bb, 0.0) / uu)
    return {"rel_l2": rel, "null_rel_l2": null, "aniso_ratio": rel / null if null > 0 else float("inf")}
