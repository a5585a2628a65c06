"""The Levenberg–Marquardt step of the subspace Gauss–Newton update, in float64.

For per-point Jacobian columns P (N × n) and residuals R (N,) of one batch:
    a = −(H + λ diag H + μ I)⁻¹ g,   H = PᵀP/N,  g = PᵀR/N,  μ = 1e-9 · mean(diag H)
When n > N the same a is computed in the N × N dual form (Woodbury), with D = λ diag H + μ I:
    a = −D⁻¹Pᵀ (N I + P D⁻¹ Pᵀ)⁻¹ R

Free columns F (``free``), left undamped as a ridge regression leaves its intercept: with M = I − F F⁺ the
damped columns X solve the problem above on (M X, M R) with X's own diag H (not M X's), then c = −F⁺(R + X a).
"""

from __future__ import annotations

import torch
from torch import Tensor


def levenberg_marquardt(P: Tensor, R: Tensor, damping: float, free: Tensor | None = None) -> Tensor:
    """LM coefficients a (n,) for Jacobian columns P (N, n) and residuals R (N,); float64 in and out.

    ``free`` (n,) bool marks columns left undamped (module docstring); None or all False: every column damped."""
    if free is not None and bool(free.any()):
        return _with_free_columns(P, R, damping, free)
    return _damped(P, R, damping, P.square().sum(0) / P.shape[0])


def _with_free_columns(P: Tensor, R: Tensor, damping: float, free: Tensor) -> Tensor:
    F, X = P[:, free], P[:, ~free]
    U, s, _ = torch.linalg.svd(F, full_matrices=False)
    Q = U[:, s > s.max() * 1e-12]
    a = _damped(X - Q @ (Q.t() @ X), R - Q @ (Q.t() @ R), damping, X.square().sum(0) / P.shape[0])
    out = P.new_zeros(P.shape[1])
    out[~free] = a
    out[free] = -(torch.linalg.pinv(F) @ (R + X @ a))
    return out


def _damped(P: Tensor, R: Tensor, damping: float, dg: Tensor) -> Tensor:
    """a = −(PᵀP/N + λ diag(dg) + μ I)⁻¹ PᵀR/N, primal or dual."""
    N, n = P.shape
    mu = 1e-9 * float(dg.mean()) + 1e-30
    if n <= N:
        H = P.t() @ P / N
        A = H + damping * torch.diag(dg) + mu * torch.eye(n, dtype=H.dtype, device=H.device)
        return -torch.linalg.solve(A, P.t() @ R / N)
    Dinv = 1.0 / (damping * dg + mu)
    PD = P * Dinv
    dual = PD @ P.t() + N * torch.eye(N, dtype=P.dtype, device=P.device)  # (N, N): N I + P D⁻¹ Pᵀ
    return -PD.t() @ torch.linalg.solve(dual, R)
