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


class PointGather:
    """Test points gathered into one reused (rows, d) buffer for a single ``predict`` call: each call reads the
    whole first layer, h·d numbers (5 GB at d = 10⁷, where a test chunk is one point). Measured, a d = 10⁷
    evaluation still costs ≈ 1.5 s a point (docs/benchmarks.md, session 11): the float64 draw and u* dominate. A
    reused buffer, not a fresh ``torch.cat`` per call, whose page faults (640 MB at 16 points) cost more."""

    def __init__(self, rows: int, dtype, device):
        self.rows, self.dtype, self.device = max(1, rows), dtype, device
        self.buf: Tensor | None = None  # owned, reused across calls
        self.whole: Tensor | None = None  # a chunk of at least ``rows`` points passed through (not owned)
        self.n = 0

    def add(self, x: Tensor) -> bool:
        """Append x (m, d) (cast to the buffer's dtype); True when at least ``rows`` points are waiting."""
        m = x.shape[0]
        if self.n == 0 and m >= self.rows:  # low d: chunks are already large, no copy into the buffer
            self.whole, self.n = x.to(self.dtype), m
            return True
        if self.whole is not None:  # not taken yet: move it into the owned buffer first
            held, self.whole, self.n = self.whole, None, 0
            self.add(held)
        if self.buf is None or self.n + m > self.buf.shape[0]:
            grown = torch.empty(max(self.rows, self.n + m), x.shape[1], dtype=self.dtype, device=self.device)
            if self.n:
                grown[: self.n].copy_(self.buf[: self.n])
            self.buf = grown
        self.buf[self.n : self.n + m].copy_(x)
        self.n += m
        return self.n >= self.rows

    def take(self) -> Tensor:
        """The waiting points (n, d) — valid until the next ``add``; the gather is empty after."""
        out = self.whole if self.whole is not None else self.buf[: self.n]
        self.whole, self.n = None, 0
        return out


def evaluate(
    problem: Problem,
    predict: Callable[[Tensor], Tensor],
    test: TestSet,
    dtype=torch.float32,
    device="cpu",
    predict_rows: int = 1,
) -> dict[str, float]:
    """``predict`` maps points (n, d) in ``dtype`` to u_θ = g + B·N (n,); returns rel_l2 ‖u_θ − u*‖/‖u*‖, the
    constant null min_K ‖u* − g − K·B‖/‖u*‖ (closed-form least squares; g ≡ 0 on catalogue problems) and
    aniso_ratio = rel_l2 / null_rel_l2.

    u* is computed chunk by chunk in float64 (``TestSet.rows`` points: one at d = 10⁷); ``predict`` is called on
    at least ``predict_rows`` points at a time (``PointGather``). The solvers pass their batch size: the gathered
    points take no more memory than a step's batch."""
    se = uu = rb = bb = rr = 0.0
    gather = PointGather(predict_rows, dtype, device)
    stars: list[Tensor] = []

    def flush() -> float:
        with torch.no_grad():
            u = predict(gather.take()).double()
        err = float((u - torch.cat(stars)).square().sum())
        stars.clear()
        return err

    for x64 in test.chunks(torch.float64, device):
        u_star = problem.u_exact(x64)
        r = u_star - problem.boundary_value(x64)
        B = problem.boundary(x64)
        stars.append(u_star)
        if gather.add(x64):
            se += flush()
        uu += float(u_star.square().sum())
        rb += float((r * B).sum())
        bb += float(B.square().sum())
        rr += float(r.square().sum())
    if stars:
        se += flush()
    rel = math.sqrt(se / uu)
    null = math.sqrt(max(rr - rb * rb / bb, 0.0) / uu)
    return {"rel_l2": rel, "null_rel_l2": null, "aniso_ratio": rel / null if null > 0 else float("inf")}
