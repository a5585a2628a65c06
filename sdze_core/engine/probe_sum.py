"""Regenerate every reported probe from its seed and sum it with its coefficient (all update rules share this).

For reports of workers w with coefficients c_wk, returns per subspace layer G_l = Σ c_wk S_wk,l, the output
layer's Σ c_wk z_last and the hidden biases' Σ c_wk z_hb. The data-aligned W₁ part cannot be summed across
workers (each worker's S lives in its own batch's basis), so it is folded into W₁ (or ``w1_target``) right away,
per worker: W₁ += w1_mult · U₁ (Σ_k c_wk S_wk,1 + w1_scale · report.w1) V_wᵀ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .report import WorkerReport

if TYPE_CHECKING:
    from .engine import SDZEEngine


def sum_probes(
    engine: SDZEEngine,
    step: int,
    reports: list[WorkerReport],
    coefs: list[float],
    w1_mult: float,
    w1_scale: float = 0.0,
    w1_target: Tensor | None = None,
) -> tuple[list[Tensor], Tensor, list[Tensor]]:
    """(G per layer, g_last (h+1,), g_hb per hidden layer); ``coefs`` in the order of the reports' probes."""
    m, layers = engine.model, engine.layers
    G = [torch.zeros_like(lay.C) for lay in layers]
    g_last = torch.zeros_like(engine.last_mom)
    g_hb = [torch.zeros_like(m.b[l]) for l in range(m.depth - 1)]
    aligned = layers[0].V is None
    i = 0
    for r in reports:
        batch = engine.step_data.light_batch(step, r.worker) if aligned else None
        basis = engine.step_data.data_basis(batch) if aligned else None
        A1 = layers[0].U.new_zeros(layers[0].U.shape[1], basis.rank) if aligned else None
        if r.w1 is not None:
            A1.add_(r.w1.to(A1.device), alpha=w1_scale)  # reports hold CPU tensors (report.py)
        for k, _ in r.probes:
            c = coefs[i]
            i += 1
            z = engine.draw(step, r.worker, k, basis)
            for l in range(len(layers)):
                if z.S[l] is not None:
                    (A1 if l == 0 and aligned else G[l]).add_(z.S[l], alpha=c)
            g_last.add_(z.last, alpha=c)
            for l, hb in enumerate(z.hidden_bias):
                g_hb[l].add_(hb, alpha=c)
        if aligned:
            target = m.W[0] if w1_target is None else w1_target
            basis.fold(target, layers[0].U @ (w1_mult * A1), batch.x, batch.dirs)
    return G, g_last, g_hb
