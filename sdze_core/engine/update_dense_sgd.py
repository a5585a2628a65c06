"""Update "sgd" for dense perturbations (perturbation "full", MeZO): θ ← θ − (η_t / Q) Σ_wk δ̃_wk Z_wk.

Each Z_wk is regenerated from its seed and added in place, one parameter tensor at a time (no momentum).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..seeds import generator
from .perturbation import perturbation_seed
from .report import WorkerReport

if TYPE_CHECKING:
    from .engine import SDZEEngine


def apply_dense_sgd(engine: SDZEEngine, step: int, reports: list[WorkerReport], coef: Tensor, lr: float) -> None:
    """θ += (−η_t δ̃_wk / Q) Z_wk for every reported probe, in report order."""
    Q = len(coef)
    pairs = [(r.worker, k) for r in reports for k, _ in r.probes]
    for i, (w, k) in enumerate(pairs):
        gen = generator(perturbation_seed(engine.job_seed, step, w, k), engine.device)
        scale = -lr * float(coef[i]) / Q
        for p in engine.model.params():  # the same draws as perturbation.draw_dense, without holding all of Z
            p.add_(torch.randn(p.shape, generator=gen, dtype=engine.dtype, device=engine.device), alpha=scale)
