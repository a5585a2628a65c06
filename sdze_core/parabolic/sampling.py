"""Collocation and test points of the parabolic problems: x̃ = (x, t), t ~ U[0, T], x from the problem's law.

"gaussian": x = x₀ + √(2νt)·ξ, ξ ~ N(0, I_d); "gbm": x_i = x₀_i·exp(σ√t ξ_i − σ²t/2), σ² = 2κ. The draw order is
fixed (t, then ξ) so a seed names one set of points. Test sets are seeded and generated chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from ..seeds import derive, generator
from .problems import ParabolicProblem


def sample_points(problem: ParabolicProblem, n: int, gen: torch.Generator, dtype=torch.float32, device="cpu") -> Tensor:
    """n points x̃ (n, d+1): the d spatial coordinates, then t in the last column."""
    d = problem.dim
    t = torch.rand(n, generator=gen, dtype=dtype, device=device) * problem.T
    xt = torch.empty(n, d + 1, dtype=dtype, device=device)
    x = xt[:, :d]
    x.normal_(generator=gen)
    x0 = problem.origin(dtype, device)
    if problem.law == "gaussian":
        x.mul_((2 * problem.nu * t).sqrt().unsqueeze(1)).add_(x0)
    elif problem.law == "gbm":
        s2 = 2 * problem.kappa
        x.mul_((s2 * t).sqrt().unsqueeze(1)).sub_((0.5 * s2 * t).unsqueeze(1)).exp_().mul_(x0)
    else:
        raise ValueError(f"unknown law {problem.law!r}")
    xt[:, d] = t
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
