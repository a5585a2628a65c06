"""Residual of u_t + L u + F(u, ∇u, x, t) = 0 from forward-mode jets of the network on x̃ = (x, t).

Ansatz u = g(x) + τ·N(x̃), τ = T − t (on a bounded domain Ω: u = G + τ·B_Ω(x)·N with the lift
G = g + h(x, t) − h(x, T) of the boundary values h; ``problems.ParabolicProblem.lift_jets``). A step
differentiates along S spatial directions v_s (in the first d coordinates of x̃) and along e_t (the last
coordinate); ``taylor.hidden_jet`` gives, for every point, the order-2 jet of N along each of these S + 1 shared
directions (one pass, W₁x̃ shared, W₁v_s a column gather for coordinates). The jet of u is that of g plus the
product of the jets of B = τ and N (``u_jet``), exactly as for the stationary ansatz u = g + B·N: along v_s, B's
jet is [τ, 0, 0] and g's is [g, D_s g, D_s² g/2]; along e_t, B's jet is [τ, −1, 0] and g's is [g, 0, 0]. From
the u-jet [u₀, u₁, u₂] (Taylor coefficients, u₂ = D²u/2):
    D_s u = u₁ₛ,   D_s² u = 2u₂ₛ,   u_t = u₁,ₜ
and with the spatial weight w (d/S for SDGD coordinates, 1/S for Rademacher/HTE, 1 for "exact"):
    R̂ = u_t + Σ_s w(ν + κ x_{i_s}²) D_s²u + Σ_s w β (x·v_s) D_s u + reaction(u) + μ Σ_s w (D_s u)²
         + ρ Σ_s w |D_s u|^p + c₀.
**g's part is exact (a control variate).** g is known in closed form and every sum over coordinates of its
derivatives costs O(d) (``Terminal.sums``), so the sampled sums are corrected by the per-point, θ-independent
shift  c = Σ_i a_i ∂²_ii g − Σ_s w a_s D_s²g  (+ the same for the drift and μ(|∇g|² − Σ_s w (D_s g)²)): only the
network's part τN (and its cross terms with ∇g) is sampled. E[c] = 0, so nothing below changes, but the variance
of g's derivatives — which dominates at high d (e.g. SDGD's (d/S)·[i* ∈ I] for arctan(max x), or x_i²-weighted
terms of a radial g) — is gone. Σ|∂_i u|^p is not polynomial in ∂_i g, so it stays fully sampled.
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

``linearization`` gives the coefficients (c₀, c₁, c₂) with  Ṙ = c₀u̇₀ + Σ_j c₁ⱼu̇₁ⱼ + Σ_j c₂ⱼu̇₂ⱼ  for any tangent of
the u-jet (u̇ = B·Ṅ for parameter probes or output-layer features): R is a pointwise function of the jet
coefficients, so its exact directional derivative needs no backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..estimators import Directions, sample_directions
from ..taylor import FirstLayer, Jet, _add, hidden_jet, jet_mul, output_jet
from .problems import ParabolicProblem

PARABOLIC_ESTIMATORS = ("sdgd", "hte", "exact")


@dataclass(frozen=True)
class ParabolicBatch:
    """A step's common random numbers and the per-point data of the residual (N points, S spatial directions).

    ``x`` (N, d+1) is the network input x̃; ``dirs`` the S + 1 joint directions over d + 1 coordinates (spatial,
    then e_t) that ``FirstLayer``/``DataBasis`` read; ``spatial`` the same S directions over d coordinates.
    ``gjet``/``bjet``: the jets of g and of B = τ along the joint directions ([(N, 1), (N, S+1), (N, S+1) or None]);
    ``a2``/``a1`` (N, S): weights of D_s²u and D_s u in R̂; ``aux`` per-point data of the reaction (or None);
    ``shift`` (N,): the exact-minus-sampled terms of g (the control variate; 0 for "exact" directions).
    """

    x: Tensor
    dirs: Directions
    spatial: Directions
    gjet: Jet
    bjet: Jet
    a2: Tensor
    a1: Tensor
    aux: Tensor | None
    shift: Tensor | None = None
    term_mask: Tensor | None = None  # soft ansatz: rows that are terminal-value residuals w_T·(u − g) at t = T
    term_value: Tensor | None = None  # g at those rows (0 elsewhere)
    term_weight: float = 0.0


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


def batch_from_points(
    problem: ParabolicProblem, xt: Tensor, spatial: Directions, terminal_rows: int = 0
) -> ParabolicBatch:
    """The residual's per-point data at points x̃ (N, d+1) for given spatial directions; computed in float64,
    returned in ``xt``'s dtype. With the soft ansatz the last ``terminal_rows`` rows (at t = T) are terminal-value
    residuals."""
    if problem.terminal_rule == "soft":
        return _soft_batch(problem, xt, spatial, terminal_rows)
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
    sums = problem.terminal.sums(x64)
    if any(v is None for v in sums):  # a compiled g without an O(d) route for some sum: correct the others only
        shift = _partial_shift(problem, x64, spatial, sums, g1, g2, a1, w)
    else:
        lap_g, xxlap_g, xgrad_g, grad2_g = sums
        shift = problem.nu * lap_g + problem.kappa * xxlap_g + problem.beta * xgrad_g - (a2 * g2 + a1 * g1).sum(1)
        if problem.grad_sq != 0.0:
            shift = shift + problem.grad_sq * (grad2_g - w * g1.square().sum(1))
    zero = torch.zeros_like(g).unsqueeze(1)
    gt = gtt = zero
    lift = problem.lift_jets(x64, t64, sp64)
    if lift is not None:  # bounded domain: G = g + L; L's spatial part stays sampled (the shift above is g's)
        g, g1, g2 = g + lift[0], g1 + lift[1], g2 + lift[2]
        gt, gtt = lift[3].unsqueeze(1), lift[4].unsqueeze(1)
    tau = (problem.T - t64).unsqueeze(1)
    gjet = [g.unsqueeze(1), torch.cat([g1, gt], 1), torch.cat([0.5 * g2, 0.5 * gtt], 1)]
    bjet = [tau, torch.cat([torch.zeros_like(g1), zero - 1], 1), None]
    dom = problem.domain_factor_jet(x64, sp64)
    if dom is not None:  # B = τ·B_Ω(x): B_Ω has no t-derivative, so its e_t column is [B_Ω, 0, 0]
        dom = [dom[0], torch.cat([dom[1], zero], 1), torch.cat([dom[2], zero], 1)]
        bjet = jet_mul(bjet, dom)
    cast = lambda a: None if a is None else a.to(dtype)  # noqa: E731
    return ParabolicBatch(
        xt,
        joint_directions(spatial, d),
        spatial,
        [cast(c) for c in gjet],
        [cast(c) for c in bjet],
        cast(a2),
        cast(a1),
        cast(aux),
        cast(shift),
    )


def _partial_shift(problem, x64, spatial, sums, g1, g2, a1, w) -> Tensor:
    """The control variate term by term, each only where its exact coordinate sum is known (a term without one
    keeps g's part sampled: still unbiased, without the variance reduction; ``pde.terminal_expr``)."""
    lap_g, xxlap_g, xgrad_g, grad2_g = sums
    shift = torch.zeros_like(g1[:, 0])
    if problem.nu != 0.0 and lap_g is not None:
        shift = shift + problem.nu * (lap_g - w * g2.sum(1))
    if problem.kappa != 0.0 and xxlap_g is not None:
        shift = shift + problem.kappa * (xxlap_g - w * (x64.index_select(1, spatial.idx).square() * g2).sum(1))
    if problem.beta != 0.0 and xgrad_g is not None:
        shift = shift + problem.beta * xgrad_g - (a1 * g1).sum(1)
    if problem.grad_sq != 0.0 and grad2_g is not None:
        shift = shift + problem.grad_sq * (grad2_g - w * g1.square().sum(1))
    return shift


def _soft_batch(problem: ParabolicProblem, xt: Tensor, spatial: Directions, terminal_rows: int) -> ParabolicBatch:
    """u = N (no hard constraint): B ≡ 1, g not in the u-jet, no control variate; the last ``terminal_rows`` rows
    carry w_T·(u − g). w_T = √(λ·n_pde/n_T) makes mean_rows R² ∝ mean_pde R² + λ·mean_T (u − g)² (λ = the
    problem's ``terminal_weight``, 20 in SDGD and STDE)."""
    dtype, d = xt.dtype, problem.dim
    x64 = xt[:, :d].double()
    n = xt.shape[0]
    w = spatial.weight
    sp64 = Directions(
        spatial.order, spatial.weight, spatial.idx, None if spatial.vecs is None else spatial.vecs.double()
    )
    S = spatial.count
    a2 = torch.full((n, S), w * problem.nu, dtype=torch.float64)
    if problem.kappa != 0.0:
        a2 = a2 + (w * problem.kappa) * x64.index_select(1, spatial.idx).square()
    a1 = (w * problem.beta) * sp64.dot(x64) if problem.beta != 0.0 else torch.zeros_like(a2)
    aux = problem.reaction_aux(x64, xt[:, d].double())
    one = torch.ones(n, 1, dtype=torch.float64)
    bjet = [one, torch.zeros(n, S + 1, dtype=torch.float64), None]
    gjet = [None, None, None]
    mask = torch.zeros(n, dtype=torch.bool)
    value = torch.zeros(n, dtype=torch.float64)
    wT = 0.0
    if terminal_rows:
        mask[n - terminal_rows :] = True
        value[mask] = problem.terminal.value(x64[mask])
        wT = (problem.terminal_weight * (n - terminal_rows) / terminal_rows) ** 0.5
    cast = lambda a: None if a is None else a.to(dtype)  # noqa: E731
    return ParabolicBatch(
        xt,
        joint_directions(spatial, d),
        spatial,
        gjet,
        [cast(c) for c in bjet],
        cast(a2),
        cast(a1),
        cast(aux),
        None,
        mask.to(xt.device),
        cast(value),
        wT,
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


def u_jet(batch: ParabolicBatch, n: Jet) -> Jet:
    """The u-jet g + B·N from the network's jet ``n`` (coefficients may carry trailing feature axes only if
    ``n`` does; see ``tangent_u_jet`` for channel axes): [(N, 1), (N, S+1), (N, S+1)]."""
    return [_add(gc, pc) for gc, pc in zip(batch.gjet, jet_mul(batch.bjet, n), strict=True)]


def tangent_u_jet(batch: ParabolicBatch, nd: Jet) -> Jet:
    """u̇ = B·Ṅ for a tangent jet with leading channel axes (..., N, 1|S+1) (g does not depend on θ)."""
    return jet_mul(batch.bjet, nd)


def residual(problem: ParabolicProblem, batch: ParabolicBatch, u: Jet) -> Tensor:
    """R̂_n (N,) from the u-jet ``u`` (see the module docstring)."""
    S = batch.a2.shape[1]
    w = batch.spatial.weight
    u0, u1 = u[0][:, 0], u[1][:, :S]
    R = u[1][:, S] + 2 * (batch.a2 * u[2][:, :S]).sum(1) + (batch.a1 * u1).sum(1)
    R = R + problem.reaction_value(u0, batch.aux)
    if problem.grad_sq != 0.0:
        R = R + (problem.grad_sq * w) * u1.square().sum(1)
    if problem.grad_pow != 0.0:
        R = R + (problem.grad_pow * w) * u1.abs().pow(problem.power).sum(1)
    if problem.const != 0.0:
        R = R + problem.const
    if batch.shift is not None:
        R = R + batch.shift
    if batch.term_mask is not None and batch.term_weight:
        R = torch.where(batch.term_mask, batch.term_weight * (u0 - batch.term_value), R)
    return R


def linearization(problem: ParabolicProblem, batch: ParabolicBatch, u: Jet) -> tuple[Tensor, Tensor, Tensor]:
    """(c₀ (N,), c₁ (N, S+1), c₂ (N, S+1)) with Ṙ = c₀u̇₀ + Σ_j c₁ⱼu̇₁ⱼ + Σ_j c₂ⱼu̇₂ⱼ, exact at the u-jet ``u``."""
    S = batch.a2.shape[1]
    w = batch.spatial.weight
    u0, u1 = u[0][:, 0], u[1][:, :S]
    c0 = problem.reaction_derivative(u0, batch.aux)
    g1 = batch.a1
    if problem.grad_sq != 0.0:
        g1 = g1 + (2 * problem.grad_sq * w) * u1
    if problem.grad_pow != 0.0:
        p = problem.power
        g1 = g1 + (problem.grad_pow * w * p) * u1.abs().pow(p - 1) * torch.sign(u1)
    one = torch.ones_like(u0).unsqueeze(1)
    c1, c2 = torch.cat([g1, one], 1), torch.cat([2 * batch.a2, 0 * one], 1)
    if batch.term_mask is not None and batch.term_weight:
        m = batch.term_mask
        c0 = torch.where(m, torch.full_like(c0, batch.term_weight), c0)
        c1 = torch.where(m.unsqueeze(1), torch.zeros_like(c1), c1)
        c2 = torch.where(m.unsqueeze(1), torch.zeros_like(c2), c2)
    return c0, c1, c2


def apply_linearization(lin: tuple[Tensor, Tensor, Tensor], ud: Jet) -> Tensor:
    """Ṙ for a tangent u-jet ``ud`` whose coefficients may carry leading channel axes: u̇₀ (..., N, 1),
    u̇₁/u̇₂ (..., N, S+1) → (..., N)."""
    c0, c1, c2 = lin
    out = c0 * ud[0][..., 0]
    if ud[1] is not None:
        out = out + (c1 * ud[1]).sum(-1)
    if len(ud) > 2 and ud[2] is not None:
        out = out + (c2 * ud[2]).sum(-1)
    return out
