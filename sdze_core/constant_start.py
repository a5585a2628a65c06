"""The constant start: before the first step, the output bias b_L takes the value that minimizes the PDE residual.

Why. On the catalogue's balls the exact solution is B·(K + small variations) with a constant K far from 0 at
high d (the fitted bias is −210 at d = 10^5), while a freshly initialized network outputs N ≈ 0: at d = 10^7 the
step-0 error is 1 400 times the constant null. A damped step (η = 0.5) halves that error per step, and meanwhile
the output weights W_L grow to carry part of the constant (at init every hidden unit is nearly constant in x),
which later costs accuracy: at d = 10^5, batch 16, 12 steps without it reach aniso 9.3, the same 12 steps after
a constant start 0.998 (``docs/bench_stab_d1e5_b16_start_{true,false}.json``). Users of their own PDEs meet
the same: the constant is the first thing to learn, and it is one scalar.

What. With N(x) = N₀(x) + (b − b₀) (only b_L moves), the residual R_n(b) = A[u](x_n) − f(x_n) is affine in b
up to the nonlinearity F(u), so m(b) = mean_n R_n(b)² is a parabola or close to one. Newton on m with central
differences (three evaluations per iteration, step h = 10⁻²·max(1, |b|)):

    b ← b − m′(b) / m″(b),   m′ ≈ (m(b+h) − m(b−h)) / 2h,   m″ ≈ (m(b+h) − 2m(b) + m(b−h)) / h²

a move is kept only if it lowers m (else halved, up to ``HALVINGS`` times); it stops when m″ ≤ 0 (not convex in
b), when the move is below 10⁻⁶·max(1, |b|), when an iteration lowers m by less than 10⁻⁴ of itself (an affine
residual is solved by the first one), or after ``MAX_ITERATIONS``. Backprop-free: m is evaluated, never
differentiated. The batch is the caller's (a seeded one, apart from the validation batch, so the held-out
yardstick is not fitted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .model import MLP

MAX_ITERATIONS = 3
HALVINGS = 8


@dataclass(frozen=True)
class ConstantStart:
    """The fit's record (metrics.json ``constant_start``): output bias and RMS residual before and after."""

    bias_before: float
    bias_after: float
    residual_before: float
    residual_after: float
    evaluations: int

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@torch.no_grad()
def fit_output_bias(model: MLP, mean_square: Callable[[], float]) -> ConstantStart:
    """Set ``model.b[-1]`` (shape (1,)) to the minimizer of ``mean_square()`` (the mean squared PDE residual of the
    model as it stands, a deterministic function of the weights) by the guarded Newton iteration above."""
    bias = model.b[-1]
    evaluations = 0

    def m(b: float) -> float:
        nonlocal evaluations
        bias.fill_(b)
        evaluations += 1
        return float(mean_square())

    b0 = float(bias)
    b, mb = b0, m(b0)
    m_start = mb
    for _ in range(MAX_ITERATIONS):
        h = 1e-2 * max(1.0, abs(b))
        mp, mm = m(b + h), m(b - h)
        curvature = (mp - 2.0 * mb + mm) / h**2
        if not curvature > 0.0:  # also NaN: no Newton step on a non-convex or broken m
            break
        move = -((mp - mm) / (2.0 * h)) / curvature
        if abs(move) <= 1e-6 * max(1.0, abs(b)):  # below float32 resolution of b: nothing left to gain
            break
        m_before = mb
        for _ in range(HALVINGS):
            m_new = m(b + move)
            if m_new < mb:
                b, mb = b + move, m_new
                break
            move *= 0.5
        else:
            break
        if mb > (1.0 - 1e-4) * m_before:
            break
    bias.fill_(b)  # the last evaluation may have been a rejected trial
    return ConstantStart(b0, float(bias), m_start**0.5, mb**0.5, evaluations)
