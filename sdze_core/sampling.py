"""Collocation and test points: x = r·g/|g|, g ~ N(0, I_d), r ~ U[lo, hi] (SPEC §3's radial law); uniform on cubes.

Test sets are seeded and generated chunk by chunk: a 10^7-dimensional set is never materialized whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from .norms import row_norms
from .problems import Problem
from .seeds import derive, generator


def sample_points(problem: Problem, n: int, gen: torch.Generator, dtype=torch.float32, device="cpu") -> Tensor:
    """n points of the problem's domain, shape (n, d); the Gaussian draw is normalized in place.

    A cube (a user PDE's ``box`` = (low, high)) is sampled uniformly instead.
    """
    box = getattr(problem, "box", None)
    if box is not None:
        x = torch.rand(n, problem.dim, generator=gen, dtype=dtype, device=device)
        return x.mul_(box[1] - box[0]).add_(box[0])
    x = torch.randn(n, problem.dim, generator=gen, dtype=dtype, device=device)
    lo, hi = problem.r_interval
    r = torch.rand(n, generator=gen, dtype=dtype, device=device) * (hi - lo) + lo
    x.mul_((r / row_norms(x)).unsqueeze(1))
    return x


@dataclass(frozen=True)
class TestSet:
    """A seeded test set of ``n`` points, yielded in chunks of at most ``chunk`` points."""

    problem: Problem
    n: int
    seed: int
    chunk: int = 2048

    @property
    def rows(self) -> int:
        """Points per chunk: at most ``chunk``, and at most 2^22 float64 numbers (32 MB) per chunk."""
        return max(1, min(self.chunk, (1 << 22) // self.problem.dim))

    def chunks(self, dtype=torch.float64, device="cpu") -> Iterator[Tensor]:
        rows = self.rows
        for i, start in enumerate(range(0, self.n, rows)):
            m = min(rows, self.n - start)
            yield sample_points(self.problem, m, generator(derive(self.seed, "test", i)), dtype, "cpu").to(device)
