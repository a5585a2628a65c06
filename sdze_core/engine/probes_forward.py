"""Forward-mode probes: exact directional derivatives of the residuals along every Z_k in one batched pass.

``residual_dual`` carries the parameter tangents of all q probes through the Taylor jets (``tangent.py``): no ε,
no truncation, no backward pass. Update "sgd" uses δ_k = dL/dε = mean_n 2 R_n Ṙ_nk; the Gauss–Newton probes use
the per-point columns Ṙ_k directly. This module also holds the two exact Jacobians both need: the output
layer's (R is affine in it up to F) and, for w1_probes "jacobian", W₁'s in the batch's data basis.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..parabolic import hooks as parabolic
from ..problems import Problem
from ..residual import StepBatch, residual, u_jet
from ..subspace import DataBasis
from ..tangent import hidden_jet_dual, residual_tangents
from ..taylor import Jet, LowRank, jet_mul
from .context import StepContext
from .perturbation import Perturbation
from .perturbed_forward import low_rank_terms
from .report import WorkerReport

if TYPE_CHECKING:
    from .engine import SDZEEngine


def residual_dual(engine: SDZEEngine, ctx: StepContext, zs: list[Perturbation], w1_U: Tensor | None = None):
    """R(θ_eff) (N,), φ, u and the exact tangents Ṙ_k along every probe's hidden part, in one pass.

    Returns (R, φ, u, Rd) with Rd of shape (q, N). With ``w1_U`` (h × p), 2p channels come first: channel j
    sets ż₀ = u_j at every point (value) and channel p+j sets ż₁ = u_j on every jet direction; then Rd is
    (per-direction (2p+q, N, S), value (2p+q, N)), from which ``w1_jacobian_columns`` builds W₁'s Jacobian.
    The output layer's part of Z_k is not included (see ``last_layer_jacobian``).
    """
    m, dtype, device = engine.model, engine.dtype, engine.device
    lowrank: list[LowRank | None] = low_rank_terms(engine.layers, ctx, None, keep_basis=True)
    tangents: list[tuple[Tensor | None, Tensor] | None] = []
    first_tangent = None
    if w1_U is not None:
        p = w1_U.shape[1]
        pad = 2 * p
        z0d = torch.zeros(pad, 1, 1, w1_U.shape[0], dtype=dtype, device=device)
        z1d = torch.zeros_like(z0d)
        z0d[:p, 0, 0] = w1_U.t()
        z1d[p:pad, 0, 0] = w1_U.t()
        first_tangent = (z0d, z1d)  # the leading 2p channels; the probes' q channels trail (``hidden_jet_dual``)
    for l, lay in enumerate(engine.layers):
        if l == 0 and w1_U is not None:  # W₁ enters through the channels above, not through probes
            lowrank[0] = None
            tangents.append(None)
            continue
        MS = torch.stack([lay.U @ z.S[l] for z in zs]) if zs else None  # (q, m, r): Ẇ_l = MS[k] V_lᵀ
        tangents.append(None if MS is None else (lay.V, MS))
    Q = (2 * w1_U.shape[1] if w1_U is not None else 0) + len(zs)
    phi, phid = hidden_jet_dual(
        ctx.first_layer,
        m.W[1:-1],
        m.b[1:-1],
        engine.problem.order,
        lowrank,
        tangents,
        first_tangent,
        Q,
        engine.tangent_buffers,  # phid lives in them: consumed below, before the next call
    )
    u = u_jet(ctx.batch, phi, m.W[-1], m.b[-1])
    R = residual(engine.problem, ctx.batch, u)
    Rd = residual_tangents(engine.problem, ctx.batch, phi, phid, m.W[-1], u, split=w1_U is not None)
    return R, phi, u, Rd


def w1_jacobian_columns(op: Tensor, val: Tensor, basis: DataBasis, p: int) -> Tensor:
    """∂R/∂A for W₁ += U A Vᵀ (A: p × m'), (N, p·m'), from the 2p first-layer channels of the dual pass.

    R_n depends on W₁ only through z₀(x_n) = W₁x_n + b₁ and z₁,s = W₁v_s, so with α_jn = ∂R_n/∂z₀ · u_j
    (value channel j) and β_jns = ∂R_n/∂z₁,s · u_j (direction channel j, split by direction):
    ∂R_n/∂A_j = α_jn Vᵀx_n + Σ_s β_jns Vᵀv_s — exact, for all m' basis directions from 2 channels per u_j.
    """
    alpha = op[:p].sum(-1) + val[:p]  # (p, N)
    beta = op[p : 2 * p]  # (p, N, S)
    J = alpha.unsqueeze(-1) * basis.xv.unsqueeze(0) + beta @ basis.dv  # (p, N, m')
    return J.permute(1, 0, 2).reshape(J.shape[1], -1)


def last_layer_jacobian(problem: Problem, batch: StepBatch, phi: Jet, u: Jet) -> Tensor:
    """∂R/∂(w, b) of the output layer, (N, h+1), exact (R is affine in it up to F):
    J_nj = Â[B φ_j](x_n) + F'(u_n) B(x_n) φ_j(x_n), with φ_h ≡ 1 for the bias."""
    if isinstance(problem, parabolic.ParabolicProblem):  # linearization of u_t + L u + F(u, ∇u) (parabolic/)
        return parabolic.last_layer_jacobian(problem, batch, phi, u)
    dirs, k = batch.dirs, problem.order
    feats = [
        None
        if p is None
        else torch.cat([p, torch.ones_like(p[..., :1]) if i == 0 else torch.zeros_like(p[..., :1])], -1)
        for i, p in enumerate(phi)
    ]
    bj = [c.unsqueeze(-1) if c is not None else None for c in batch.bjet]
    prod = jet_mul(bj, feats)
    op = prod[k].sum(1) * (dirs.weight * math.factorial(k))  # (N, h+1)
    Bphi = prod[0][:, 0, :]
    return op + problem.nonlinearity_derivative(u[0][:, 0]).unsqueeze(1) * Bphi


def probe_forward(engine: SDZEEngine, step: int, worker: int, ctx: StepContext) -> WorkerReport:
    """Update "sgd" with gradient "forward": δ_k = ⟨∇L, Z_k⟩ = mean_n 2 R_n Ṙ_nk for all q probes at once."""
    q = engine.cfg.q
    zs = [engine.draw(step, worker, k, ctx.data_basis) for k in range(q)]
    R, phi, u, Rd = residual_dual(engine, ctx, zs)
    J_last = last_layer_jacobian(engine.problem, ctx.batch, phi, u)  # the dense output-layer part of each Z_k
    Rd = Rd + torch.stack([z.last for z in zs]) @ J_last.t()
    deltas = (2 * Rd * R).mean(1)
    return WorkerReport(worker, [(k, float(deltas[k])) for k in range(q)], float(R.square().mean()))
