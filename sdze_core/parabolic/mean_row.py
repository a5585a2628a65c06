"""One more least-squares row for a time-dependent problem: the batch's Feynman–Kac mean (knob ``gn_mean_row``).

For any smooth u and X_t = x₀ + √(2ν)W_t, Itô's formula (Dynkin) gives, with R = u_t + νΔu + F(u) and F linearized
about u* (its weight e^{∫F'} taken as 1):

    u(0, x₀) − u*(0, x₀) ≈ E[(u − g)(T, X_T)] − ∫₀ᵀ E[R(t, X_t)] dt

so the error at the law's origin — the reference point of the point-reference problems — is a *mean* of the
terminal mismatch and of the residual along the law, which the least squares Σ_n R_n² weigh only through their
squares. Measured on semilinear heat at d = 100 after 500 steps (docs/time-dependent.md, session 8): the residual's
mean along the law runs from −0.015 to +0.08 over t (largest just before T), and Itô's sum of the two means
predicts the error at (0, 0) to ≤ 2e-4 (−0.9 % of u* without the row, −0.05 % with it); at d = 10³ u(0, 0) sat
1–1.5 % below u* for thousands of steps. With the training law's t ~ U[0, T] (the "paths" strata, or the marginal
law) the batch estimates both means, and the appended row

    r = √(κ·n) · ( mean_{terminal rows} R / (w_T·T) − mean_{PDE rows, t > 0} R )   (soft rule: R = w_T(u − g) there)
    r = −√(κ·n) · mean_{PDE rows, t > 0} R                                           (hard rule: u(T, ·) = g exactly)

is that error divided by T, up to the batch's sampling. It is zero in expectation at the exact solution, so it adds
no bias; it asks each Gauss–Newton step to move the state along the one direction the point error reads. κ = 1
weighs it like all n point rows together.

Only where the training law is the diffusion of L (``follows_the_law``): Brownian points from x₀ ("gaussian" or
"paths") and no x²-diffusion or drift in L. Elsewhere the row is a functional the point error does not read — on
Black–Scholes–Barenblatt (GBM points, a drift r·x the sampler does not follow) it raised rel L2 at d = 100 from
2.34e-3 to 2.82e-3 / 3.20e-3 in 5 minutes (docs/time-dependent.md, session 8) — so the engine leaves it out there.

The same map extends the residual vector R (n,) and every Jacobian column P (n, k) (rows are linear in R), so the
trial losses, the backtracking and the least squares all read the same n + 1 rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .problems import ParabolicProblem
from .residual import ParabolicBatch


def follows_the_law(problem: ParabolicProblem) -> bool:
    """Whether the training points are the diffusion of L from x₀ (Itô's identity above holds): a Brownian law
    ("gaussian" or "paths") and L = νΔ (no κ x² diffusion, no drift)."""
    law = problem.train_law or problem.law
    return law in ("gaussian", "paths") and problem.kappa == 0.0 and problem.beta == 0.0


def mean_row(batch: ParabolicBatch, kappa: float, horizon: float) -> Callable[[Tensor], Tensor]:
    """The map M (n, …) → (n + 1, …) appending the row above, for R (n,) and P (n, k) alike; ``horizon`` is T."""
    n = batch.x.shape[0]
    scale = math.sqrt(kappa * n)
    soft = batch.term_mask is not None and batch.term_weight
    term = batch.term_mask if soft else torch.zeros(n, dtype=torch.bool, device=batch.x.device)
    # ∫₀ᵀ dt has no atom at t = 0: the "paths" law's rows at (0, x₀) (one in ten) are left out of the time mean
    inner = ~term & (batch.x[:, -1] > 0)
    weights = torch.zeros(n, dtype=torch.float64, device=batch.x.device)
    weights[inner] = -scale / max(1, int(inner.sum()))
    if bool(term.any()):
        weights[term] = scale / (batch.term_weight * horizon * int(term.sum()))
    weights = weights.unsqueeze(0)  # (1, n): the row as a linear functional of the n rows

    def extend(M: Tensor) -> Tensor:
        flat = M.unsqueeze(1) if M.dim() == 1 else M
        row = weights.to(flat.dtype) @ flat
        out = torch.cat([flat, row], 0)
        return out[:, 0] if M.dim() == 1 else out

    return extend
