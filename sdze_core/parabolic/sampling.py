"""Collocation and test points of the parabolic problems: x̃ = (x, t), t ~ U[0, T], x from the problem's law.

"gaussian": x = x₀ + √(2νt)·ξ, ξ ~ N(0, I_d); "gbm": x_i = x₀_i·exp(σ√t ξ_i − σ²t/2), σ² = 2κ; "domain": x from a
bounded domain's law (uniform in radius on a ball or annulus, uniform on a cube), independent of t. The draw order is
fixed (t, then x) so a seed names one set of points. Test sets are seeded and generated chunk by chunk.
"paths" (after SDGD's sampler): ⌈n/K⌉ Brownian paths X = x₀ + √(2ν)W, each observed at K = 10 times: t₀ = 0 and
one uniform time in each of the K − 1 strata [(k−1)T/(K−1), kT/(K−1)), k = 1 … K−1 (path-major, the first n points).
At every t > 0 the marginals are those of "gaussian", and one point in K sits at (t, x) = (0, x₀) — the reference
point of the point-reference problems, which the marginal law reaches only as t → 0 (at d = 10³ its points have
|x| ≈ √(2000t)). Why strata rather than SDGD's grid t_k = kT/K, k = 0 … K−1 (used until session 8): the Feynman–Kac
row of the Gauss–Newton step (``mean_row``) reads the batch's time mean of R as (1/T)∫₀ᵀ E[R(t, X_t)] dt, which needs
t uniform on (0, T]; the grid's mean is a left Riemann sum that never sees (0.9T, T], where the trained residual's
mean is largest (+0.04 … +0.08 on semilinear heat at d = 100, docs/heat_residual_profile_d100_*.json).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from ..seeds import derive, generator
from .problems import ParabolicProblem

PATH_TIMES = 10


def _paths(problem: ParabolicProblem, n: int, gen: torch.Generator, dtype, device) -> Tensor:
    d, K = problem.dim, PATH_TIMES
    M = -(-n // K)
    width = problem.T / (K - 1)
    t = torch.zeros(M, K, dtype=dtype, device=device)  # t₀ = 0: the path starts at x₀
    t[:, 1:] = torch.rand(M, K - 1, generator=gen, dtype=dtype, device=device)
    t[:, 1:] += torch.arange(K - 1, dtype=dtype, device=device)
    t[:, 1:] *= width
    dt = torch.diff(t, dim=1, prepend=t[:, :1])  # (M, K), 0 in the first column
    steps = torch.randn(M, K, d, generator=gen, dtype=dtype, device=device).mul_(
        (2 * problem.nu * dt).sqrt_()[..., None]
    )
    x = steps.cumsum_(1).add_(problem.origin(dtype, device))
    return torch.cat([x, t.unsqueeze(-1)], -1).reshape(M * K, d + 1)[:n].contiguous()


def sample_points(
    problem: ParabolicProblem,
    n: int,
    gen: torch.Generator,
    dtype=torch.float32,
    device="cpu",
    law: str | None = None,
) -> Tensor:
    """n points x̃ (n, d+1): the d spatial coordinates, then t in the last column. ``law`` overrides the
    problem's ``law`` (``train_law`` for training batches)."""
    law = law or problem.law
    d = problem.dim
    if law == "paths":
        return _paths(problem, n, gen, dtype, device)
    t = torch.rand(n, generator=gen, dtype=dtype, device=device) * problem.T
    if law == "domain":  # a bounded domain: x from its law (``pde.domain``), independent of t
        return torch.cat([problem.sample_domain(n, gen, dtype, device), t.unsqueeze(1)], 1)
    xt = torch.empty(n, d + 1, dtype=dtype, device=device)
    x = xt[:, :d]
    x.normal_(generator=gen)
    x0 = problem.origin(dtype, device)
    if law == "gaussian":
        x.mul_((2 * problem.nu * t).sqrt().unsqueeze(1)).add_(x0)
    elif law == "gbm":
        s2 = 2 * problem.kappa
        x.mul_((s2 * t).sqrt().unsqueeze(1)).sub_((0.5 * s2 * t).unsqueeze(1)).exp_().mul_(x0)
    else:
        raise ValueError(f"unknown law {law!r}")
    xt[:, d] = t
    return xt


def terminal_points(
    problem: ParabolicProblem, n: int, gen: torch.Generator, dtype=torch.float32, device="cpu"
) -> Tensor:
    """n points x̃ at t = T from the problem's law (the soft ansatz's terminal-value rows), (n, d+1)."""
    d = problem.dim
    xt = torch.full((n, d + 1), problem.T, dtype=dtype, device=device)
    x = xt[:, :d]
    x.normal_(generator=gen)
    x0 = problem.origin(dtype, device)
    if problem.law == "gbm":
        s2 = 2 * problem.kappa
        x.mul_(math.sqrt(s2 * problem.T)).sub_(0.5 * s2 * problem.T).exp_().mul_(x0)
    else:
        x.mul_(math.sqrt(2 * problem.nu * problem.T)).add_(x0)
    return xt


@dataclass(frozen=True)
class ParabolicTestSet:
    """A seeded held-out set of ``n`` points x̃, yielded in chunks (at most 2^22 float64 numbers each)."""

    problem: ParabolicProblem
    n: int
    seed: int
    chunk: int = 2048

    @property
    def rows(self) -> int:
        return max(1, min(self.chunk, (1 << 22) // self.problem.input_dim))

    def chunks(self, dtype=torch.float64, device="cpu") -> Iterator[Tensor]:
        rows = self.rows
        for i, start in enumerate(range(0, self.n, rows)):
            m = min(rows, self.n - start)
            yield sample_points(self.problem, m, generator(derive(self.seed, "ptest", i)), dtype, "cpu").to(device)
