"""The SGD updates' probe coefficients: δ̃ = clip(δ / RMS(δ)), with RMS a running average over steps.

RMS²_t = β RMS²_{t−1} + (1 − β) mean_k δ_k² (the first step takes mean δ² itself); clipping at ±clip bounds the
step a single outlier probe can cause. The running RMS² is engine state (checkpointed).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .report import WorkerReport

if TYPE_CHECKING:
    from .engine import SDZEEngine


def normalised_deltas(engine: SDZEEngine, step: int, reports: list[WorkerReport]) -> Tensor:
    """δ̃ for every probe of the (sorted) reports, float64; updates ``engine.rms2``. Raises on a non-finite δ."""
    cfg = engine.cfg
    deltas = torch.tensor([d for r in reports for _, d in r.probes], dtype=torch.float64)
    ms = float(deltas.square().mean())
    if not math.isfinite(ms):
        raise FloatingPointError(f"non-finite directional derivative at step {step}")
    engine.rms2 = ms if engine.rms2 == 0.0 else cfg.rms_beta * engine.rms2 + (1 - cfg.rms_beta) * ms
    scaled = deltas / math.sqrt(engine.rms2 + 1e-30)
    engine.counters["sgd_probes"] += len(scaled)
    engine.counters["sgd_clipped_probes"] += int((scaled.abs() > cfg.clip).sum())
    return scaled.clamp_(-cfg.clip, cfg.clip)
