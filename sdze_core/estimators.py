"""Randomized spatial operators (SPEC §2.1): the directions a step differentiates along.

All three estimators read a weighted sum of directional derivatives ``D_v^k u = d^k/dt^k u(x + t v)|₀``:
- SDGD Laplacian (coordinates I, |I| = S, without replacement): Δ̂u = (d/S) Σ_{i∈I} ∂²u/∂x_i²
- Hutchinson Laplacian (Rademacher v_s):                         Δ̂u = (1/S) Σ_s D_{v_s}² u
- Gaussian biharmonic (v_s ~ N(0, I_d)):                          Δ²̂u = (1/(3S)) Σ_s D_{v_s}⁴ u
  (E[(v·∇)⁴u] = 3Δ²u for Gaussian v). Each is unbiased; "exact" enumerates all d coordinates.
- z-space ("zspace", no sampling noise): v_k = the orthonormal basis of W₁'s row space (h' ≤ h rows, from the
  h × h Gram W₁W₁ᵀ = QΛQᵀ: V = Λ^{-1/2}QᵀW₁). N = g(W₁x + b₁) varies only along that space, so Σ_k ∂²_{v_k} N = ΔN
  exactly; for u = B·N the boundary jet is corrected so that N's coefficient is ΔB (``zspace_boundary``).
  The directions depend on W₁ at the step's start (``zspace_directions``), so a batch source needs the engine's
  first layer; each batch extends them by its own points (``zspace_with_points``: S = h' + N directions), which
  makes the residual's Jacobian along every parameter, W₁ included, exact too (tested against autograd).
  Cost: O((h + N)²d) per batch and S = h + N jet directions (≈ 2–7× an SDGD step with S = 16, measured).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .norms import squared_row_norms

ESTIMATORS = ("sdgd", "hte", "gauss", "exact", "zspace")
W1_ESTIMATORS = ("zspace",)  # estimators whose directions are built from the first layer's weights


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
    if kind in W1_ESTIMATORS:
        raise ValueError(f"estimator {kind!r} builds its directions from W₁: use zspace_directions")
    raise ValueError(f"unknown estimator {kind!r}; known: {', '.join(ESTIMATORS)}")


def zspace_directions(W1: Tensor, rel_tol: float | None = None) -> Directions:
    """The orthonormal rows V (h' × d) spanning W₁'s row space, weight 1: Σ_k ∂²_{v_k} N = ΔN for N = g(W₁x + b₁).

    O(h²d): the Gram W₁W₁ᵀ (float32 blocks summed in float64), its eigendecomposition, one h' × h by h × d product.
    Eigen-directions below ``rel_tol``·λ_max (1e-6 in float32, 1e-12 in float64) are dropped.
    """
    from .subspace import gram64

    if rel_tol is None:
        rel_tol = 1e-12 if W1.dtype == torch.float64 else 1e-6
    lam, Q = torch.linalg.eigh(gram64(W1))
    keep = lam > rel_tol * lam.max()
    T = (Q[:, keep] / lam[keep].sqrt()).t().to(W1.dtype)  # (h', h)
    return Directions(order=2, weight=1.0, vecs=(T @ W1).contiguous())


def zspace_with_points(rows: Directions, x: Tensor, rel_tol: float | None = None) -> Directions:
    """An orthonormal basis of span(W₁'s rows ∪ the batch points): (h' + N', d), weight 1.

    W₁'s row space alone gives ΔN exactly, but the boundary coupling 2∇B·∇N = 4B'(s) x·∇N moves with W₁ along x,
    outside that space; with the points in the span the directions' Jacobian along every W₁ change is exact too
    (tested against autograd). Gram [[I, Vxᵀ], [xVᵀ, xxᵀ]] → eigh → V' = T₁ᵀV + T₂ᵀx; O((h + N)²d).
    """
    from .subspace import gram64

    if rel_tol is None:
        rel_tol = 1e-12 if x.dtype == torch.float64 else 1e-6
    V = rows.vecs
    h = V.shape[0]
    vx = gram64(V, x)
    G = torch.cat(
        [
            torch.cat([torch.eye(h, dtype=torch.float64, device=x.device), vx], 1),
            torch.cat([vx.t(), gram64(x)], 1),
        ]
    )
    lam, Q = torch.linalg.eigh(G)
    keep = lam > rel_tol * lam.max()
    T = (Q[:, keep] / lam[keep].sqrt()).to(x.dtype)  # (h + N, S)
    vecs = T[:h].t() @ V + T[h:].t() @ x
    return Directions(order=2, weight=1.0, vecs=vecs.contiguous())


def zspace_boundary(bjet: list, poly: tuple[float, float, float], x: Tensor, dirs: Directions) -> list:
    """Correct the boundary jet of u = B·N for row-space directions: Σ_k ∂²_{v_k}(BN) = BΔN + 2∇B·∇N + N Σ_k ∂²_{v_k}B
    is exact in its first two terms (∇N lies in the row space); the second-order coefficient of B is shifted so
    that N's coefficient becomes ΔB = 2d B'(s) + 4 s B''(s), s = |x|². Shapes as ``taylor.boundary_jet``."""
    b0, b1, b2 = poly
    s = squared_row_norms(x).unsqueeze(1)
    lap_b = 2.0 * x.shape[1] * (b1 + 2.0 * b2 * s) + 8.0 * b2 * s  # (N, 1)
    S = dirs.count
    have = 2.0 * dirs.weight * bjet[2].sum(1, keepdim=True)
    return [bjet[0], bjet[1], bjet[2] + (lap_b - have) / (2.0 * dirs.weight * S)] + list(bjet[3:])
