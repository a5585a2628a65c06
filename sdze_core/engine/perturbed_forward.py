"""The one perturbed forward: residuals at θ_eff + Offset, with every displacement as implicit low-rank terms.

θ_eff is the model's W plus each layer's pending U C Vᵀ. A probe ε Z_k (two-point), no offset at all (the
forward-mode and Gauss–Newton base point) and a Gauss–Newton trial step Σ_k a_k Z_k are all an ``Offset``, and
``low_rank_terms`` is the single place where a layer's (W + U (C + A) Vᵀ) becomes a ``LowRank`` term
(``(W + M Vᵀ)x = Wx + M (Vᵀx)``: no matrix of W's size is ever formed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from ..residual import residual, u_jet
from ..taylor import Jet, LowRank, hidden_jet
from .bases import SubspaceLayer
from .context import StepContext
from .perturbation import Offset

if TYPE_CHECKING:
    from .engine import SDZEEngine


def low_rank_terms(
    layers: list[SubspaceLayer], ctx: StepContext | None, offset: Offset | None, keep_basis: bool = False
) -> list[LowRank | None]:
    """Per hidden layer l, the term M Vᵀ that turns W_l into W_l + U_l (C_l + A_l) V_lᵀ (None: nothing to add).

    With ``ctx`` the first layer's basis products Vᵀx, Vᵀv come from the step context (the data-aligned layer
    needs them); without it (plain prediction at arbitrary points) the terms apply V themselves.
    ``keep_basis``: for the data-aligned layer without an offset return a term with M = None that still carries
    the basis products (the forward-mode tangents need them).
    """
    out: list[LowRank | None] = []
    for l, lay in enumerate(layers):
        A = offset.subspace[l] if offset is not None else None
        if lay.V is None:  # data-aligned first layer: nothing pending in C, only an offset lives in the basis
            if A is None and not keep_basis:
                out.append(None)
            else:
                basis = ctx.data_basis
                out.append(LowRank(V=None, M=None if A is None else lay.U @ A, xv=basis.xv, dv=basis.dv))
            continue
        M = lay.U @ (lay.C if A is None else lay.C + A)
        if l == 0 and ctx is not None:
            out.append(LowRank(lay.V, M, xv=ctx.x_in_basis, dv=ctx.dirs_in_basis))
        else:
            out.append(LowRank(lay.V, M))
    return out


def perturbed_residual(engine: SDZEEngine, ctx: StepContext, offset: Offset | None) -> tuple[Tensor, Jet, Jet]:
    """R_n(θ_eff + offset) on the context's batch, shape (N,), with the last hidden layer's jet φ and u's jet."""
    m = engine.model
    lowrank = low_rank_terms(engine.layers, ctx, offset)
    dense = None
    if offset is not None and offset.hidden_bias:
        dense = [(None, db) for db in offset.hidden_bias]
    w, b = m.W[-1], m.b[-1]
    if offset is not None and offset.last is not None:
        w = w + offset.last[:-1].unsqueeze(0)
        b = b + offset.last[-1:]
    phi = hidden_jet(ctx.first_layer, m.W[1:-1], m.b[1:-1], engine.problem.order, lowrank, dense)
    u = u_jet(ctx.batch, phi, w, b)
    return residual(engine.problem, ctx.batch, u), phi, u
