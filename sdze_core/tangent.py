"""Forward-mode parameter tangents carried through the Taylor jets ("dual jets"), batched over tangent channels.

For a perturbation θ + εZ_k with Z_k = U S_k Vᵀ on each hidden weight matrix, the derivative in ε of every
jet coefficient is propagated alongside it (no ε, no truncation, no backward pass):
- linear layer:  ż_k = ċ_k W_effᵀ + (c_k V)(U S_k)ᵀ   (W_eff = W + M Vᵀ, the layer's pending low-rank term folded in)
- tanh:          ẏ(t) = (1 − y(t)²) ż(t), so as jets ẏ = p ⋆ ż:  ẏ_k = Σ_{j=0..k} p_{k−j} ż_j,  p = jet of 1 − y²
All tangents share one pass: tangent tensors carry a leading channel axis (Q, N, S, n), so the work is a few large
matrix products and a few fused multiply-adds (``addcmul_``) per coefficient instead of 2Q separate evaluations.
Channels: the first layer's tangents (``first_tangent`` or ``tangents[0]``) fill the leading channels, the hidden
layers' probe tangents the trailing ones; a channel that no source reaches at some layer is not materialised there
(the probe channels are exactly zero up to the first perturbed layer, the W₁ channels carry no hidden probe).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .parabolic.hooks import residual_tangents as parabolic_residual_tangents
from .parabolic.problems import ParabolicProblem
from .taylor import FirstLayer, Jet, LowRank, _add, tanh_jets


def _mul(a, b):
    return None if a is None or b is None else a * b


def _broadcast(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """The broadcast shape of same-rank-or-shorter shapes (``torch.broadcast_shapes`` without its Python checks)."""
    rank = max(len(s) for s in shapes)
    out = [1] * rank
    for s in shapes:
        for i, n in enumerate(s, rank - len(s)):
            if n != 1:
                out[i] = n
    return tuple(out)


def cauchy_term(a: Jet, b: Jet, k: int, into: Tensor | None = None) -> Tensor | None:
    """(a ⋆ b)_k = Σ_{j=0..k} a_{k−j} b_j, broadcast, accumulated in place (``addcmul_``) into one tensor.

    The first product taken is one whose shape is the full broadcast shape, so every later term adds in place.
    ``into``: a tensor of the full shape that may be overwritten, and is b_k itself (its own term a_0 b_k is
    taken first, in place: ``mul_``), so no new tensor is allocated; the other b_j must not alias it.
    """
    terms = [(a[k - j], b[j]) for j in range(k + 1) if a[k - j] is not None and b[j] is not None]
    if not terms:
        return None
    shapes = [_broadcast(x.shape, y.shape) for x, y in terms]
    full = _broadcast(*shapes)
    if into is not None and tuple(into.shape) == full and terms[-1][1] is into:
        acc = into.mul_(terms[-1][0])
        first = len(terms) - 1
    else:
        first = next((i for i, sh in enumerate(shapes) if sh == full), None)
        if first is None:  # no single product has the full shape (not met in the engine): widen the first one
            acc = (terms[0][0] * terms[0][1]).expand(full).clone()
            first = 0
        else:  # a contiguous result: a broadcast product may come out in a permuted layout, which matmul copies
            acc = torch.empty(full, dtype=terms[first][1].dtype, device=terms[first][1].device)
            torch.mul(terms[first][0], terms[first][1], out=acc)
    for i, (x, y) in enumerate(terms):
        if i != first:
            acc.addcmul_(x, y)
    return acc


def tanh_jet_dual(z: Jet, zd: Jet, overwrite: bool = False) -> tuple[Jet, Jet]:
    """Jet of tanh(z) and its tangent ẏ = p ⋆ ż; ``zd`` entries carry a leading channel axis (or are None).

    Why p ⋆ ż: the tangent of y(t) = tanh(z(t)) is ẏ(t) = tanh′(z(t)) ż(t) = p(t) ż(t), a product of two series.
    p is needed to order K (the primal recurrence stops at K − 1); it is primal-sized (no channel axis), so the
    channel-sized work is (k + 1) multiply-adds for ẏ_k. With ``overwrite`` the ż_k (owned by the caller, not
    aliased) become the ẏ_k in place, highest k first (ẏ_k needs ż_0 … ż_k only): no channel-sized allocation.
    """
    y, p = tanh_jets(z, derivative_order=len(z) - 1)
    K = len(z) - 1
    yd: Jet = [None] * (K + 1)
    for k in range(K, -1, -1):
        yd[k] = cauchy_term(p, zd, k, into=zd[k] if overwrite else None)
    return y, yd


def _effective_weight_t(W: Tensor, term: LowRank | None) -> Tensor:
    """(W + M Vᵀ)ᵀ for a hidden (m × n) layer: applied to the channel-sized tangents once instead of W and the
    low-rank term separately (two more passes over a channel-sized tensor)."""
    if term is None or term.M is None:
        return W.t()
    return torch.addmm(W, term.M, term.V.t()).t()


class TangentBuffers:
    """The dual pass's channel-sized outputs, kept from one call to the next (one object per engine).

    Why: a fresh (Q, N, S, h) tensor per layer and coefficient (10 MB at the defaults) is returned to the kernel
    between steps and costs first-touch page faults every step — measured ≈ 25 % of an ``sdze`` step at d = 10³
    (docs/benchmarks.md). Buffers are keyed by (layer parity, coefficient): a layer reads the previous layer's
    and writes its own. The tangents ``hidden_jet_dual`` returns live here until its next call with this object.
    Their size does not depend on d (Q · N · S · h numbers per coefficient).
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[int, int], Tensor] = {}

    def take(self, slot: tuple[int, int], shape: tuple[int, ...], like: Tensor) -> Tensor:
        """An uninitialised tensor of ``shape`` (``like``'s dtype and device) for ``slot``, reused when it fits."""
        t = self._buffers.get(slot)
        if t is None or tuple(t.shape) != shape or t.dtype != like.dtype or t.device != like.device:
            t = self._buffers[slot] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return t


def _layer_tangent(
    c: Tensor,
    cd: Tensor | None,
    Wt: Tensor,
    probe: tuple[Tensor, Tensor] | None,
    Q: int,
    buffers: TangentBuffers | None = None,
    slot: tuple[int, int] = (0, 0),
):
    """ż_k of one coefficient: ċ_k W_effᵀ on the channels ċ carries (the leading Q') plus (c_k V)(MS)ᵀ on the
    probes' (the trailing q = ``MS.shape[0]`` of the Q channels), written into one tensor (Q or Q', N, s, m): new,
    or ``buffers``' tensor for ``slot`` (which must not be ċ's). c (N, s, n), ċ (Q', N, s|1, n), MS (q, m, r);
    channels between the two ranges are zero."""
    N, s, n = c.shape
    lead = 0 if cd is None else cd.shape[0]
    q = 0 if probe is None else probe[1].shape[0]
    rows = lead if q == 0 else Q
    if rows == 0:
        return None
    m = Wt.shape[1] if Wt is not None else probe[1].shape[1]
    if buffers is None:
        out = torch.empty(rows, N, s, m, dtype=c.dtype, device=c.device)
    else:
        out = buffers.take(slot, (rows, N, s, m), c)
    if lead:
        torch.mm(cd.expand(lead, N, s, n).reshape(-1, n), Wt, out=out[:lead].view(-1, m))
    if lead < rows - q:
        out[lead : rows - q].zero_()
    if q:
        V, MS = probe
        cv = (c @ V).reshape(N * s, -1)  # (N·s, r)
        MSt = MS.transpose(1, 2)  # (q, r, m)
        tail = out[rows - q :].view(q, N * s, m)
        both = max(0, lead - (rows - q))  # channels with both terms: the probe term adds in place
        if both:
            tail[:both].baddbmm_(cv.expand(both, *cv.shape), MSt[:both])
        if both < q:
            torch.matmul(cv, MSt[both:], out=tail[both:])
    return out


def hidden_jet_dual(
    first: FirstLayer,
    W: list[Tensor],
    b: list[Tensor],
    order: int,
    lowrank: list[LowRank | None],
    tangents: list[tuple[Tensor, Tensor] | None],
    first_tangent: tuple[Tensor | None, Tensor | None] | None = None,
    channels: int | None = None,
    buffers: TangentBuffers | None = None,
) -> tuple[Jet, Jet]:
    """Primal jet of the last hidden layer (as ``taylor.hidden_jet``) and its tangents along Q channels.

    ``tangents[l]`` = (V_l (n, r), MS_l (q_l, m, r)) with MS_l[k] = U_l S_k, so that Ẇ_l = MS_l[k] V_lᵀ on the
    trailing q_l of the Q channels; for l = 0, V is unused: the first layer's precomputed ``lowrank[0].xv``/``dv``
    (Vᵀx, Vᵀv) are used, on the leading q_0 channels.
    ``first_tangent`` = (ż₀ (Q₀, N|1, 1, h), ż₁ (Q₀, 1, S|1, h)) gives the first layer's output tangents directly
    (instead of ``tangents[0]``) on the leading Q₀ channels; either may be None.
    ``channels`` = Q (default: the largest source's count, i.e. every source on the same channels; the exact-W₁
    layout passes 2p + q: 2p W₁ channels, then q probes). Returned tangents have Q channels (only the leading ones
    if no hidden probe reaches the trailing channels). With ``buffers`` the layers' tangents are written into its
    reused tensors: the returned tangents are valid until the next call with the same ``buffers``.
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
    sources = [t[1].shape[0] for t in tangents if t is not None] + [c.shape[0] for c in zd if c is not None]
    Q = max(sources, default=0) if channels is None else channels
    y, yd = tanh_jet_dual(z, zd)
    for l in range(len(W)):
        term = lowrank[l + 1]
        tl = tangents[l + 1]
        Wt = _effective_weight_t(W[l], term) if any(c is not None for c in yd) else None
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
            zd.append(_layer_tangent(c, cd, Wt, tl, Q, buffers=buffers, slot=(l % 2, k)))
        y, yd = tanh_jet_dual(z, zd, overwrite=True)  # the ż_k are this layer's own new tensors
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
