"""Forward-mode parameter tangents carried through the Taylor jets ("dual jets"), batched over q probes.

For a perturbation θ + εZ_k with Z_k = U S_k Vᵀ on each hidden weight matrix, the derivative in ε of every
jet coefficient is propagated alongside it (no ε, no truncation, no backward pass):
- linear layer:  ż_k = ċ_k Wᵀ + (c_k V)(U S_k)ᵀ
- tanh:          ẏ_k = (1/k) Σ_j j (ż_j p_{k−j} + z_j ṗ_{k−j}),   ṗ_k = −Σ_j (ẏ_j y_{k−j} + y_j ẏ_{k−j}),   ẏ₀ = p₀ż₀
All q tangents share one pass: tangent tensors carry a leading probe axis (q, N, S, n), so the work is a
few large matrix products instead of 2q separate evaluations.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .parabolic.hooks import residual_tangents as parabolic_residual_tangents
from .parabolic.problems import ParabolicProblem
from .taylor import FirstLayer, Jet, LowRank, _add, tanh_jet


def _mul(a, b):
    return None if a is None or b is None else a * b


def tanh_jet_dual(z: Jet, zd: Jet) -> tuple[Jet, Jet]:
    """Jet of tanh(z) and its tangent; ``zd`` entries carry a leading probe axis (or are None)."""
    y = tanh_jet(z)
    K = len(z) - 1
    p: Jet = [1 - y[0] * y[0]]
    for k in range(1, K):
        acc = None
        for j in range(k + 1):
            acc = _add(acc, _mul(y[j], y[k - j]))
        p.append(None if acc is None else -acc)
    yd: Jet = [_mul(p[0], zd[0])]
    pd: Jet = [None if yd[0] is None else -2 * y[0] * yd[0]]
    for k in range(1, K + 1):
        acc = None
        for j in range(1, k + 1):
            t = _add(_mul(zd[j], p[k - j]), _mul(z[j], pd[k - j]))
            if t is not None:
                acc = _add(acc, t * j if j != 1 else t)
        yd.append(None if acc is None else (acc / k if k != 1 else acc))
        if k < K:
            acc = None
            for j in range(k + 1):
                acc = _add(acc, _add(_mul(yd[j], y[k - j]), _mul(y[j], yd[k - j])))
            pd.append(None if acc is None else -acc)
    return y, yd


def hidden_jet_dual(
    first: FirstLayer,
    W: list[Tensor],
    b: list[Tensor],
    order: int,
    lowrank: list[LowRank | None],
    tangents: list[tuple[Tensor, Tensor] | None],
    first_tangent: tuple[Tensor | None, Tensor | None] | None = None,
) -> tuple[Jet, Jet]:
    """Primal jet of the last hidden layer (as ``taylor.hidden_jet``) and its tangents along q probes.

    ``tangents[l]`` = (V_l (n, r), MS_l (q, m, r)) with MS_l[k] = U_l S_k, so that Ẇ_l = MS_l[k] V_lᵀ;
    for l = 0, V is unused: the first layer's precomputed ``lowrank[0].xv``/``dv`` (Vᵀx, Vᵀv) are used.
    ``first_tangent`` = (ż₀ (q, N|1, 1, h), ż₁ (q, 1, S|1, h)) gives the first layer's output tangents directly
    (instead of ``tangents[0]``); either may be None.
    """
    N, S = first.z0.shape[0], first.z1.shape[0]
    z0, z1 = first.z0, first.z1
    term0 = lowrank[0]
    if term0 is not None and term0.M is not None:
        z0 = z0 + term0.xv @ term0.M.t()
        z1 = z1 + term0.dv @ term0.M.t()
    z: Jet = [z0.unsqueeze(1), z1.unsqueeze(0).expand(N, S, z1.shape[-1])] + [None] * (order - 1)
    t0 = tangents[0]
    zd: Jet = [None] * (order + 1)
    if t0 is not None:
        MS = t0[1]
        zd[0] = torch.einsum("nr,qmr->qnm", term0.xv, MS).unsqueeze(2)
        zd[1] = torch.einsum("sr,qmr->qsm", term0.dv, MS).unsqueeze(1)
    elif first_tangent is not None:
        zd[0], zd[1] = first_tangent
    y, yd = tanh_jet_dual(z, zd)
    for l in range(len(W)):
        term = lowrank[l + 1]
        tl = tangents[l + 1]
        z, zd = [], []
        for k, (c, cd) in enumerate(zip(y, yd, strict=True)):
            if c is None:
                z.append(None)
                zd.append(None)
                continue
            zk = c @ W[l].t() + b[l] if k == 0 else c @ W[l].t()
            if term is not None:
                zk = zk + term.apply(c)
            z.append(zk)
            dk = None
            if cd is not None:
                dk = cd @ W[l].t()
                if term is not None:
                    dk = dk + term.apply(cd)
            if tl is not None:
                V, MS = tl
                extra = torch.einsum("nsr,qmr->qnsm", c @ V, MS)
                dk = extra if dk is None else dk + extra
            zd.append(dk)
        y, yd = tanh_jet_dual(z, zd)
    return y, yd


def residual_tangents(problem, batch, phi: Jet, phid: Jet, w: Tensor, u: Jet, split: bool = False):
    """Ṙ_k = Â[B Ṅ_k] + F'(u) B Ṅ_k for every probe, shape (q, N); w is the output weight (1, h).

    With ``split``, returns (per-direction operator terms (q, N, S), value term (q, N)) whose sum over S plus
    the value term is Ṙ: the per-direction terms separate the contributions of each jet direction.
    """
    if isinstance(problem, ParabolicProblem):  # u_t + L u + F(u, ∇u) = 0: its own exact linearization
        return parabolic_residual_tangents(problem, batch, phi, phid, w, u, split)
    wv = w.reshape(-1)
    Nd = [None if c is None else c @ wv for c in phid]  # (q, N, 1) / (q, N, S)
    k = batch.dirs.order
    acc = None
    for j in range(k + 1):
        acc = _add(acc, _mul(batch.bjet[j], Nd[k - j]))
    op = acc * (batch.dirs.weight * math.factorial(k))
    ud0 = (batch.bjet[0] * Nd[0])[..., 0]
    val = problem.nonlinearity_derivative(u[0][:, 0]) * ud0
    if split:
        return op, val
    return op.sum(-1) + val
