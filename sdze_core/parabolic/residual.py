"""Residual of u_t + L u + F(u, ∇u, x, t) = 0 from forward-mode jets of the network on x̃ = (x, t).

Ansatz u = g(x) + τ·N(x̃), τ = T − t. A step differentiates along S spatial directions v_s (in the first d
coordinates of x̃) and along e_t (the last coordinate); ``taylor.hidden_jet`` gives, for every point, the order-2
jet of N along each of these S + 1 shared directions (one pass, W₁x̃ shared, W₁v_s a column gather for
coordinates). From N₀ = N, N₁ = D N, N₂ = D²N/2 and the terminal condition's closed-form jets:
    u = g + τN₀,   D_s u = D_s g + τ N₁ₛ,   D_s² u = D_s² g + 2τ N₂ₛ,   u_t = −N₀ + τ N₁,ₜ
and with the spatial weight w (d/S for SDGD coordinates, 1/S for Rademacher/HTE, 1 for "exact"):
    R̂ = u_t + Σ_s w(ν + κ x_{i_s}²) D_s²u + Σ_s w β (x·v_s) D_s u + reaction(u) + μ Σ_s w (D_s u)²
         + ρ Σ_s w |D_s u|^p + c₀.
Each sampled sum is an unbiased estimate of its term (E over coordinates without replacement of (d/S)Σ_{i∈I} a_i
= Σ a_i; E over Rademacher v of (v·a)(v·b) = a·b), and R̂ is affine in those sums, so E[R̂] = R exactly —
including the |∇u|² and Σ|∂_i u|^p terms, because they are estimated as sampled sums of squares/powers, not as a
nonlinear function of a sampled sum. The squared residual is not: E[R̂²] = R² + Var(R̂), where Var(R̂) includes the
covariance of the Laplacian and gradient sums (they share the directions). At the exact solution Var(R̂) > 0 in
general, so minimising the expected sampled loss is biased by that variance term — as for the stationary
problems' SDGD/HTE losses. A nonlinear function of a sampled sum (e.g. |∇̂u|² from a sketched gradient, or
√(Σ…)) would add its own bias to R̂ itself; none is used here.
Supported pairs: diagonal diffusion (κ) and Σ|∂_i u|^p need coordinate directions ("sdgd"/"exact");
Rademacher directions ("hte") serve ν Δ, the drift and |∇u|².

``linearization`` gives the coefficients (c₀, c₁, c₂) with  Ṙ = c₀Ṅ₀ + Σ_j c₁ⱼṄ₁ⱼ + Σ_j c₂ⱼṄ₂ⱼ  for any tangent of
the network's jet (parameter probes, output-layer features): R is a pointwise function of the jet coefficients,
so its exact directional derivative needs no backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..estimators import Directions, sample_directions
from ..taylor import FirstLayer, Jet, hidden_jet, output_jet
from .problems import ParabolicProblem

PARABOLIC_ESTIMATORS = ("sdgd", "hte", "exact")


@dataclass(frozen=True)
class ParabolicBatch:
    """A step's common random numbers and the per-point data of the residual (N points, S spatial directions).

    ``x`` (N, d+1) is the network input x̃; ``dirs`` the S + 1 joint directions over d + 1 coordinates (spatial,
    then e_t) that ``FirstLayer``/``DataBasis`` read; ``spatial`` the same S directions over d coordinates.
    ``g, g1, g2``: g (N,), D_s g (N, S), D_s² g (N, S); ``a2``/``a1`` (N, S): weights of D_s²u and D_s u in R̂;
    ``aux`` per-point data of the reaction (or None).
    """

    x: Tensor
    dirs: Directions
    spatial: Directions
    tau: Tensor
    g: Tensor
    g1: Tensor
    g2: Tensor
    a2: Tensor
    a1: Tensor
    aux: Tensor | None


def joint_directions(spatial: Directions, d: int) -> Directions:
    """The spatial directions lifted to x̃ = (x, t), followed by e_t (index d)."""
    if spatial.idx is not None:
        idx = torch.cat([spatial.idx, torch.tensor([d], dtype=spatial.idx.dtype, device=spatial.idx.device)])
        return Directions(order=2, weight=spatial.weight, idx=idx)
    S = spatial.vecs.shape[0]
    vecs = torch.zeros(S + 1, d + 1, dtype=spatial.vecs.dtype, device=spatial.vecs.device)
    vecs[:S, :d] = spatial.vecs
    vecs[S, d] = 1.0
    return Directions(order=2, weight=spatial.weight, vecs=vecs)


def check_estimator(problem: ParabolicProblem, estimator: str) -> None:
    """Refuse pairs whose estimate would not be unbiased (see the module docstring)."""
    if estimator not in PARABOLIC_ESTIMATORS:
        raise ValueError(f"estimator {estimator!r} is not available for {problem.name}; use one of sdgd, hte, exact")
    if estimator == "hte" and (problem.kappa != 0.0 or problem.grad_pow != 0.0):
        raise ValueError(
            f"{problem.name} has a diagonal diffusion or a Σ|∂_i u|^p term: it needs coordinate directions "
            "(estimator 'sdgd' or 'exact'), Rademacher probes do not separate the coordinates"
        )


def batch_from_points(problem: ParabolicProblem, xt: Tensor, spatial: Directions) -> ParabolicBatch:
    """The residual's per-point data at points x̃ (N, d+1) for given spatial directions; computed in float64,
    returned in ``xt``'s dtype."""
    dtype, d = xt.dtype, problem.dim
    x64 = xt[:, :d].double()
    t64 = xt[:, d].double()
    sp64 = Directions(
        spatial.order, spatial.weight, spatial.idx, None if spatial.vecs is None else spatial.vecs.double()
    )
    g, g1, g2 = problem.terminal.jets(x64, sp64)
    w = spatial.weight
    a2 = torch.full_like(g1, w * problem.nu)
    if problem.kappa != 0.0:
        a2 = a2 + (w * problem.kappa) * x64.index_select(1, spatial.idx).square()
    a1 = (w * problem.beta) * sp64.dot(x64) if problem.beta != 0.0 else torch.zeros_like(g1)
    aux = problem.reaction_aux(x64, t64)
    cast = lambda a: None if a is None else a.to(dtype)  # noqa: E731
    return ParabolicBatch(
        xt,
        joint_directions(spatial, d),
        spatial,
        cast(problem.T - t64),
        cast(g),
        cast(g1),
        cast(g2),
        cast(a2),
        cast(a1),
        cast(aux),
    )


def sample_spatial(
    estimator: str, d: int, samples: int, gen: torch.Generator, dtype=torch.float32, device="cpu"
) -> Directions:
    """The step's S spatial directions (over d coordinates) from ``gen``."""
    return sample_directions(estimator, d, samples, 2, gen, dtype, device)


def net_jet(batch: ParabolicBatch, W: list[Tensor], b: list[Tensor]) -> tuple[Jet, Jet]:
    """(φ, N): the last hidden layer's order-2 jet and the network's, along the batch's S + 1 joint directions.
    N: [N₀ (N, 1), N₁ (N, S+1), N₂ (N, S+1)]."""
    first = FirstLayer.compute(W[0], b[0], batch.x, batch.dirs)
    phi = hidden_jet(first, W[1:-1], b[1:-1], 2)
    return phi, output_jet(phi, W[-1], b[-1])


def _u_parts(batch: ParabolicBatch, n: Jet) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    S = batch.g1.shape[1]
    tau = batch.tau
    n0 = n[0][:, 0]
    u0 = batch.g + tau * n0
    u1 = batch.g1 + tau.unsqueeze(1) * n[1][:, :S]
    u2 = batch.g2 + (2 * tau).unsqueeze(1) * n[2][:, :S]
    ut = -n0 + tau * n[1][:, S]
    return u0, u1, u2, ut


def residual(problem: ParabolicProblem, batch: ParabolicBatch, n: Jet) -> Tensor:
    """R̂_n (N,) from the network's jet ``n`` (see the module docstring)."""
    u0, u1, u2, ut = _u_parts(batch, n)
    w = batch.spatial.weight
    R = ut + (batch.a2 * u2).sum(1) + (batch.a1 * u1).sum(1) + problem.reaction_value(u0, batch.aux)
    if problem.grad_sq != 0.0:
        R = R + (problem.grad_sq * w) * u1.square().sum(1)
    if problem.grad_pow != 0.0:
        R = R + (problem.grad_pow * w) * u1.abs().pow(problem.power).sum(1)
    if problem.const != 0.0:
        R = R + problem.const
    return R


def u_value(batch: ParabolicBatch, n: Jet) -> Tensor:
    """u = g + τN at the batch's points (N,)."""
    return batch.g + batch.tau * n[0][:, 0]


def linearization(problem: ParabolicProblem, batch: ParabolicBatch, n: Jet) -> tuple[Tensor, Tensor, Tensor]:
    """(c₀ (N,), c₁ (N, S+1), c₂ (N, S+1)) with Ṙ = c₀Ṅ₀ + Σ_j c₁ⱼṄ₁ⱼ + Σ_j c₂ⱼṄ₂ⱼ, exact at the jet ``n``."""
    u0, u1, _, _ = _u_parts(batch, n)
    tau = batch.tau
    w = batch.spatial.weight
    c0 = -1 + tau * problem.reaction_derivative(u0, batch.aux)
    g1 = batch.a1
    if problem.grad_sq != 0.0:
        g1 = g1 + (2 * problem.grad_sq * w) * u1
    if problem.grad_pow != 0.0:
        p = problem.power
        g1 = g1 + (problem.grad_pow * w * p) * u1.abs().pow(p - 1) * torch.sign(u1)
    t1 = tau.unsqueeze(1)
    c1 = torch.cat([t1 * g1, t1], 1)
    c2 = torch.cat([(2 * t1) * batch.a2, torch.zeros_like(t1)], 1)
    return c0, c1, c2


def apply_linearization(lin: tuple[Tensor, Tensor, Tensor], nd: Jet) -> Tensor:
    """Ṙ for a tangent jet ``nd`` whose coefficients may carry leading channel axes: Ṅ₀ (..., N, 1),
    Ṅ₁/Ṅ₂ (..., N, S+1) → (..., N)."""
    c0, c1, c2 = lin
    out = c0 * nd[0][..., 0]
    if nd[1] is not None:
        out = out + (c1 * nd[1]).sum(-1)
    if nd[2] is not None:
        out = out + (c2 * nd[2]).sum(-1)
    return out
