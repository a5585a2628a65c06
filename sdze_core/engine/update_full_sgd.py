"""Update "sgd" with optimizer_state "full": momentum SGD with a dense momentum matrix per hidden layer.

Probes stay low-rank; the momentum does not: M_l ← β M_l + U_l G_l V_lᵀ, W_l ← W_l − η_t M_l (P extra numbers,
only where memory allows). The data-aligned W₁ part enters M₁ per worker, in that worker's batch basis. With
β = 0 it takes exactly the subspace variant's step (tested).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .probe_sum import sum_probes
from .report import WorkerReport
from .update_subspace_sgd import apply_biases_and_output_layer

if TYPE_CHECKING:
    from .engine import SDZEEngine


def apply_full_state_sgd(engine: SDZEEngine, step: int, reports: list[WorkerReport], coef: Tensor, lr: float) -> None:
    """One dense-momentum SGD step from the normalised coefficients ``coef`` of every reported probe."""
    m = engine.model
    if not engine.full_mom:
        engine.full_mom = [torch.zeros_like(W) for W in m.W[:-1]]
    for M in engine.full_mom:
        M.mul_(engine.cfg.momentum)
    Q = len(coef)
    G, g_last, g_hb = sum_probes(engine, step, reports, [float(c) / Q for c in coef], 1.0, w1_target=engine.full_mom[0])
    for l, lay in enumerate(engine.layers):
        if lay.V is not None:
            engine.full_mom[l].addmm_(lay.U @ G[l], lay.V.t())
        m.W[l].add_(engine.full_mom[l], alpha=-lr)
    apply_biases_and_output_layer(engine, g_last, g_hb, lr)
