"""Randomized spatial operators (SPEC §2.1): the directions a step differentiates along.

All three estimators read a weighted sum of directional derivatives ``D_v^k u = d^k/dt^k u(x + t v)|₀``:
- SDGD Laplacian (coordinates I, |I| = S, without replacement): Δ̂u = (d/S) Σ_{i∈I} ∂²u/∂x_i²
- Hutchinson Laplacian (Rademacher v_s):                         Δ̂u = (1/S) Σ_s D_{v_s}² u
- Gaussian biharmonic (v_s ~ N(0, I_d)):                          Δ²̂u = (1/(3S)) Σ_s D_{v_s}⁴ u
  (E[(v·∇)⁴u] = 3Δ²u for Gaussian v). Each is unbiased; "exact" enumerates all d coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

ESTIMATORS = ("sdgd", "hte", "gauss", "exact")


@dataclass(frozen=True)
class Directions:
    """S directions shared by all points of a step. Either coordinate indices or dense vectors.

    ``weight`` turns Σ_s D_{v_s}^order u into the operator estimate.
    """

    order: int
    weight: float
    idx: Tensor | None = None  # (S,) long: v_s = e_{idx[s]}
    vecs: Tensor | None = None  # (S, d)

    @property
    def count(self) -> int:
        return int(self.idx.numel()) if self.idx is not None else int(self.vecs.shape[0])

    def project(self, M: Tensor) -> Tensor:
        """M v_s for a matrix M of shape (m, d) → (S, m); O(mS) for coordinates, O(mdS) dense."""
        if self.idx is not None:
            return M.index_select(1, self.idx).t()
        return self.vecs.to(M.dtype) @ M.t()

    def dot(self, x: Tensor) -> Tensor:
        """x_n · v_s → (N, S)."""
        if self.idx is not None:
            return x.index_select(1, self.idx)
        return x @ self.vecs.to(x.dtype).t()

    def sqnorm(self, dtype: torch.dtype, device) -> Tensor:
        """|v_s|² → (S,)."""
        if self.idx is not None:
            return torch.ones(self.count, dtype=dtype, device=device)
        return (self.vecs.to(dtype) ** 2).sum(1)


def sample_directions(
    kind: str, dim: int, samples: int, order: int, gen: torch.Generator, dtype=torch.float32, device="cpu"
) -> Directions:
    """Draw the directions of one step from ``gen`` (the step's common random numbers)."""
    if order == 4:
        if kind not in ("gauss",):
            raise ValueError(f"the biharmonic operator needs estimator 'gauss', got {kind!r}")
        vecs = torch.randn(samples, dim, generator=gen, dtype=dtype, device=device)
        return Directions(order=4, weight=1.0 / (3 * samples), vecs=vecs)
    if kind == "sdgd":
        s = min(samples, dim)
        idx = torch.randperm(dim, generator=gen, device=device)[:s]
        return Directions(order=2, weight=dim / s, idx=idx)
    if kind == "exact":
        return Directions(order=2, weight=1.0, idx=torch.arange(dim, device=device))
    if kind == "hte":
        vecs = torch.randint(0, 2, (samples, dim), generator=gen, device=device).to(dtype).mul_(2).sub_(1)
        return Directions(order=2, weight=1.0 / samples, vecs=vecs)
    if kind == "gauss":
        vecs = torch.randn(samples, dim, generator=gen, dtype=dtype, device=device)
        return Directions(order=2, weight=1.0 / samples, vecs=vecs)
    raise ValueError(f"unknown estimator {kind!r}; known: {', '.join(ESTIMATORS)}")
