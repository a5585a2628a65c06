"""The Laplacian of u = B·N in the first layer's output space ("z-space"): no sampling noise, cost independent of d.

For N(x) = g(W₁x + b₁) with g: Rʰ → R the layers 2 … L, ∇ₓN = W₁ᵀ∇_z g and ∇²ₓN = W₁ᵀ ∇²_z g W₁, so

    ΔN = tr(∇²_z g · W₁W₁ᵀ) = Σ_k λ_k ∂²_{q_k} g,        W₁W₁ᵀ = Q Λ Qᵀ  (h × h)

— h second-order jets along the z-space directions l_k = √λ_k q_k through layers 2 … L, none of them
d-dimensional ("eig", exact). Or S directions l_s = C ξ_s, ξ_s ~ N(0, I_h), C Cᵀ = W₁W₁ᵀ ("gauss"): the law of
W₁v for v ~ N(0, I_d), an unbiased estimate (1/S) Σ_s ∂²_{l_s} g whose variance depends on neither d nor on a few
columns of W₁. With the radial boundary factor B(s), s = |x|² (B' = dB/ds, B'' = d²B/ds²):

    Δ(BN) = B ΔN + 2 ∇B·∇N + N ΔB,   ∇B = 2B'(s) x,   ∇B·∇N = 2B'(s) (W₁x)·∇_z g,   ΔB = 2d B'(s) + 4 s B''(s)

and (W₁x)·∇_z g is one more first-order jet, along the per-point z-direction W₁x = z₀ − b₁ (already computed).
Per step: the Gram W₁W₁ᵀ is O(h²d) (float32 blocks summed in float64), the eigendecomposition O(h³).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .subspace import gram64
from .taylor import LowRank, tanh_jet

ZSPACE_KINDS = ("eig", "gauss")


def first_layer_gram(W1: Tensor, low: LowRank | None = None) -> Tensor:
    """W₁W₁ᵀ (h × h, float64) for W₁ (h × d), or for W₁ + M Vᵀ with a pending low-rank term (V orthonormal):
    W₁W₁ᵀ + (W₁V)Mᵀ + M(W₁V)ᵀ + MMᵀ, all O(h²d + hdr)."""
    G = gram64(W1)
    if low is not None and low.V is not None:
        WV = gram64(W1, low.V.t())  # (h, r)
        M = low.M.double()
        G = G + WV @ M.t() + M @ WV.t() + M @ M.t()
    return G


def z_directions(G: Tensor, kind: str = "eig", samples: int = 0, gen: torch.Generator | None = None):
    """Directions l_s (S, h) and weight w with  w Σ_s l_sᵀ H l_s = tr(H G)  (eig, exact; S = h)  or its unbiased
    estimate (gauss, S = ``samples``) for any symmetric H."""
    lam, Q = torch.linalg.eigh(G)
    C = Q * lam.clamp_min(0.0).sqrt().unsqueeze(0)  # C Cᵀ = G (negative round-off eigenvalues dropped)
    if kind == "eig":
        return C.t().contiguous(), 1.0
    if kind == "gauss":
        if samples < 1:
            raise ValueError("z-space gauss directions need samples ≥ 1")
        xi = torch.randn(samples, G.shape[0], generator=gen, dtype=G.dtype, device=G.device)
        return xi @ C.t(), 1.0 / samples
    raise ValueError(f"unknown z-space kind {kind!r}; known: {', '.join(ZSPACE_KINDS)}")


def hidden_jets(z0: Tensor, zdirs: Tensor, W: list[Tensor], b: list[Tensor]) -> list[Tensor]:
    """Order-2 jets of the last hidden activations g: [g (n, 1, h), ∂_l g (n, S, h), ½ ∂²_l g (n, S, h)]."""
    n = z0.shape[0]
    d1 = zdirs.unsqueeze(0).expand(n, *zdirs.shape) if zdirs.dim() == 2 else zdirs
    y = tanh_jet([z0.unsqueeze(1), d1, None])
    for Wl, bl in zip(W, b, strict=True):
        y = tanh_jet([y[0] @ Wl.t() + bl, y[1] @ Wl.t(), y[2] @ Wl.t()])
    return y


def output_jets(y: list[Tensor], w: Tensor, bo: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The output layer N = w·g + b_out applied to ``hidden_jets``: N (n,), ∂_l N (n, S), ½ ∂²_l N (n, S)."""
    wv = w.reshape(-1)
    return (y[0] @ wv)[:, 0] + bo.reshape(()), y[1] @ wv, y[2] @ wv


def laplacian_bn(
    z0: Tensor,
    wx: Tensor,
    sq: Tensor,
    zdirs: Tensor,
    weight: float,
    W: list[Tensor],
    b: list[Tensor],
    w: Tensor,
    bo: Tensor,
    poly: tuple[float, float, float],
    dim: int,
) -> tuple[Tensor, Tensor]:
    """u = B·N and Δu at n points, both (n,).

    z0 = W₁x + b₁ (n, h), wx = W₁x (n, h), sq = |x|² (n,), (zdirs, weight) from ``z_directions``; W, b the hidden
    layers 2 … L−1; (w, bo) the output layer; poly = (b0, b1, b2) of B(s) = b0 + b1 s + b2 s².
    """
    y = hidden_jets(z0, laplacian_directions(zdirs, wx), W, b)
    return bn_from_jets(output_jets(y, w, bo), sq, weight, poly, dim)


def laplacian_directions(zdirs: Tensor, wx: Tensor) -> Tensor:
    """The per-point jet directions of ``laplacian_bn``: the S shared z-directions, then W₁x (n, S+1, h)."""
    n, S = wx.shape[0], zdirs.shape[0]
    return torch.cat([zdirs.unsqueeze(0).expand(n, S, zdirs.shape[1]), wx.unsqueeze(1)], 1)


def bn_from_jets(
    jets: tuple[Tensor, Tensor, Tensor], sq: Tensor, weight: float, poly: tuple[float, float, float], dim: int
) -> tuple[Tensor, Tensor]:
    """u = B·N and Δu = BΔN + 4B′ x·∇N + NΔB from N's jets along (z-directions…, W₁x) (``laplacian_directions``)."""
    N0, N1, N2 = jets
    lap_n = 2.0 * weight * N2[:, :-1].sum(1)  # ∂²_l N = 2 · (½ ∂²_l N)
    x_grad_n = N1[:, -1]  # x·∇ₓN = (W₁x)·∇_z g
    b0, b1, b2 = poly
    B = b0 + b1 * sq + b2 * sq * sq
    dB = b1 + 2.0 * b2 * sq  # dB/ds
    lap_b = 2.0 * dim * dB + 8.0 * b2 * sq  # ΔB = 2d B' + 4 s B'', B'' = 2 b2
    return B * N0, B * lap_n + 4.0 * dB * x_grad_n + N0 * lap_b


def effective_layers(model, lowrank: list[LowRank | None] | None) -> tuple[list[Tensor], list[Tensor]]:
    """Dense hidden layers 2 … L−1 with their pending low-rank terms (h × h each: cheap to form)."""
    W, b = [], []
    for l in range(1, model.depth - 1):
        Wl = model.W[l].detach()
        low = lowrank[l] if lowrank else None
        if low is not None and low.V is not None:
            Wl = Wl + low.M @ low.V.t()
        W.append(Wl)
        b.append(model.b[l].detach())
    return W, b


def first_layer_z(model, low: LowRank | None, x: Tensor) -> tuple[Tensor, Tensor]:
    """(W₁x + b₁, W₁x) for points x (n, d) in the model's dtype, with a pending low-rank term of W₁."""
    W1 = model.W[0].detach()
    wx = x @ W1.t()
    if low is not None and low.V is not None:
        wx = wx + (x @ low.V) @ low.M.t()
    return wx + model.b[0].detach(), wx


def zspace_scale(G: Tensor) -> float:
    """tr W₁W₁ᵀ = ‖W₁‖_F²: the scale of every point's Laplacian (a stability diagnostic)."""
    return float(torch.diagonal(G).sum())
