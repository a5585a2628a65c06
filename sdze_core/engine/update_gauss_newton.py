"""Update "gn": θ ← θ + (η_t / n_workers) Σ_w (Σ_k a_wk Z_wk + output-layer step + W₁ step), on every replica.

Each worker solved its own Levenberg–Marquardt problem (``probes_gauss_newton``); the replicas apply the mean
of the workers' steps: the output layer's (h+1) coefficients directly, the probe coefficients a_wk through the
regenerated Z_wk (``probe_sum``), the data-aligned W₁ coefficients folded per worker in its batch basis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .probe_sum import sum_probes
from .report import WorkerReport

if TYPE_CHECKING:
    from .engine import SDZEEngine


def apply_gauss_newton(engine: SDZEEngine, step: int, reports: list[WorkerReport]) -> None:
    """Apply the (sorted) reports' Gauss–Newton steps. Raises on non-finite coefficients."""
    m = engine.model
    scale = engine.schedule(step) / len(reports)
    coefs = torch.tensor([a for r in reports for _, a in r.probes], dtype=torch.float64)
    if not bool(torch.isfinite(coefs).all()) or not all(bool(torch.isfinite(r.last).all()) for r in reports):
        raise FloatingPointError(f"non-finite Gauss–Newton coefficients at step {step}")
    for r in reports:
        m.W[-1].add_(r.last[:-1].unsqueeze(0), alpha=scale)
        m.b[-1].add_(r.last[-1:], alpha=scale)
    G, _, g_hb = sum_probes(engine, step, reports, [scale * float(a) for a in coefs], 1.0, scale)
    for lay, g in zip(engine.layers, G, strict=True):
        if lay.V is not None:
            lay.C.add_(g)
    for l, g in enumerate(g_hb):
        m.b[l].add_(g)
