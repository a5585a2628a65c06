"""Update "sgd" with optimizer_state "subspace": momentum SGD in each layer's r × r coordinates.

With G_l = (1/Q) Σ_wk δ̃_wk S_wk,l (Q probes in all, ``probe_sum``) and η_t the scheduled rate:
    mom_l ← β mom_l + G_l,   C_l ← C_l − η_t mom_l          (random bases; folded into W_l at refresh)
    W₁ ← W₁ − η_t U₁ G₁ V_wᵀ                                  (data-aligned W₁: no momentum, folded at once)
    b_l ← b_l − η_t g_hb,l                                    (perturb_hidden_bias only)
    m ← β m + g_last,  (w, b) ← (w, b) − η_t · lr_last_mult · m   (the output layer: dense probes, its own rate)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from .probe_sum import sum_probes
from .report import WorkerReport

if TYPE_CHECKING:
    from .engine import SDZEEngine


def apply_subspace_sgd(engine: SDZEEngine, step: int, reports: list[WorkerReport], coef: Tensor, lr: float) -> None:
    """One momentum-SGD step from the normalised coefficients ``coef`` of every reported probe."""
    Q = len(coef)
    G, g_last, g_hb = sum_probes(engine, step, reports, [float(c) / Q for c in coef], -lr)
    for l, lay in enumerate(engine.layers):
        if lay.V is None:
            continue
        lay.momentum.mul_(engine.cfg.momentum).add_(G[l])
        lay.C.add_(lay.momentum, alpha=-lr)
    apply_biases_and_output_layer(engine, g_last, g_hb, lr)


def apply_biases_and_output_layer(engine: SDZEEngine, g_last: Tensor, g_hb: list[Tensor], lr: float) -> None:
    """The dense parts of an SGD step: hidden biases (no momentum) and the output layer (momentum, lr_last_mult)."""
    cfg, m = engine.cfg, engine.model
    if cfg.perturb_hidden_bias:
        for l, g in enumerate(g_hb):
            m.b[l].add_(g, alpha=-lr)
    engine.last_mom.mul_(cfg.momentum).add_(g_last)
    step_last = engine.last_mom * (-lr * cfg.lr_last_mult)
    m.W[-1].add_(step_last[:-1].unsqueeze(0))
    m.b[-1].add_(step_last[-1:])
