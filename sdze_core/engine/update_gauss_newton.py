"""Update "gn": θ ← θ + (η_t / n_workers) Σ_w (Σ_k a_wk Z_wk + output-layer step + W₁ step), on every replica.

Each worker solved its own Levenberg–Marquardt problem (``probes_gauss_newton``); the replicas apply the mean
of the workers' steps: the output layer's (h+1) coefficients directly, the probe coefficients a_wk through the
regenerated Z_wk (``probe_sum``), the data-aligned W₁ coefficients folded per worker in its batch basis.
Every coefficient is checked finite before anything moves; the engine counts the workers' rejected trial steps
and the steps backtracking zeroed (``SDZEEngine.counters``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from .probe_sum import sum_probes
from .report import WorkerReport

if TYPE_CHECKING:
    from .engine import SDZEEngine


def check_finite(step: int, reports: list[WorkerReport]) -> None:
    """Raise ``FloatingPointError`` naming the worker and the part if any coefficient is NaN or infinite."""
    for r in reports:
        parts = {"probe coefficients": torch.tensor([a for _, a in r.probes], dtype=torch.float64)}
        parts.update({name: t for name, t in (("output-layer coefficients", r.last), ("W₁ coefficients", r.w1))})
        for name, t in parts.items():
            if t is not None and not bool(torch.isfinite(t).all()):
                raise FloatingPointError(f"non-finite Gauss–Newton {name} from worker {r.worker} at step {step}")
        if not math.isfinite(r.loss):
            raise FloatingPointError(f"non-finite loss from worker {r.worker} at step {step}")


def apply_gauss_newton(engine: SDZEEngine, step: int, reports: list[WorkerReport]) -> None:
    """Apply the (sorted) reports' Gauss–Newton steps. Raises on non-finite coefficients."""
    check_finite(step, reports)
    m = engine.model
    scale = engine.schedule(step) / len(reports)
    coefs = torch.tensor([a for r in reports for _, a in r.probes], dtype=torch.float64)
    for r in reports:
        last = r.last.to(engine.device)
        m.W[-1].add_(last[:-1].unsqueeze(0), alpha=scale)
        m.b[-1].add_(last[-1:], alpha=scale)
    G, _, g_hb = sum_probes(engine, step, reports, [scale * float(a) for a in coefs], 1.0, scale)
    for lay, g in zip(engine.layers, G, strict=True):
        if lay.V is not None:
            lay.C.add_(g)
    for l, g in enumerate(g_hb):
        m.b[l].add_(g)
    c = engine.counters
    c["gn_worker_steps"] += len(reports)
    c["gn_rejected_trials"] += sum(r.rejected_trials for r in reports)
    c["gn_zeroed_steps"] += sum(r.rejected_trials > engine.cfg.gn_backtracks for r in reports)
