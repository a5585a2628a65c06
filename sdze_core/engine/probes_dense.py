"""Dense two-point probes (perturbation "full", the MeZO baseline): every parameter perturbed, θ ± εZ.

Nothing is shared across evaluations and nothing is low-rank: Z has one Gaussian tensor per parameter. The
perturbed weights are formed out of place, one layer at a time, so θ itself is never touched: in-place ±ε round
trips are not bit-exact, and replicas must stay identical.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..residual import StepBatch, residual, u_jet
from ..taylor import FirstLayer, hidden_jet
from .perturbation import draw_dense, perturbation_seed
from .probes_two_point import redrawn_directions
from .report import WorkerReport

if TYPE_CHECKING:
    from .engine import SDZEEngine


def probe_dense(engine: SDZEEngine, step: int, worker: int, batch: StepBatch) -> WorkerReport:
    """This worker's q two-point δ_k with dense Z_k; its loss is the mean of the ± evaluations."""
    cfg, m = engine.cfg, engine.model
    probes, losses = [], []
    L = m.depth
    for k in range(cfg.q):
        Z = draw_dense(perturbation_seed(engine.job_seed, step, worker, k), m.params(), engine.dtype, engine.device)
        vals = []
        for i, e in enumerate((cfg.eps, -cfg.eps)):
            b = batch if cfg.crns else redrawn_directions(engine, batch, step, worker, k, i)
            first = FirstLayer.compute(m.W[0] + e * Z[0], m.b[0] + e * Z[1], b.x, b.dirs)
            Ws = [m.W[l] + e * Z[2 * l] for l in range(1, L - 1)]
            bs = [m.b[l] + e * Z[2 * l + 1] for l in range(1, L - 1)]
            phi = hidden_jet(first, Ws, bs, engine.problem.order)
            u = u_jet(b, phi, m.W[-1] + e * Z[-2], m.b[-1] + e * Z[-1])
            vals.append(residual(engine.problem, b, u).square().mean())
        probes.append((k, float((vals[0] - vals[1]) / (2 * cfg.eps))))
        losses.append(0.5 * float(vals[0] + vals[1]))
    return WorkerReport(worker, probes, sum(losses) / len(losses))
