"""The Levenberg–Marquardt step of the subspace Gauss–Newton update, in float64.

For per-point Jacobian columns P (N × n) and residuals R (N,) of one batch:
    a = −(H + λ diag H + μ I)⁻¹ g,   H = PᵀP/N,  g = PᵀR/N,  μ = 1e-9 · mean(diag H)
When n > N the same a is computed in the N × N dual form (Woodbury), with D = λ diag H + μ I:
    a = −D⁻¹Pᵀ (N I + P D⁻¹ Pᵀ)⁻¹ R
"""

from __future__ import annotations

import torch
from torch import Tensor


def levenberg_marquardt(P: Tensor, R: Tensor, damping: float) -> Tensor:
    """LM coefficients a (n,) for Jacobian columns P (N, n) and residuals R (N,); float64 in and out."""
    N, n = P.shape
    dg = P.square().sum(0) / N
    mu = 1e-9 * float(dg.mean()) + 1e-30
    if n <= N:
        H = P.t() @ P / N
        A = H + damping * torch.diag(dg) + mu * torch.eye(n, dtype=H.dtype, device=H.device)
        return -torch.linalg.solve(A, P.t() @ R / N)
    Dinv = 1.0 / (damping * dg + mu)
    PD = P * Dinv
    dual = PD @ P.t() + N * torch.eye(N, dtype=P.dtype, device=P.device)  # (N, N): N I + P D⁻¹ Pᵀ
    return -PD.t() @ torch.linalg.solve(dual, R)
