"""Two-point probes (SPEC §2.2): δ_k = [L(θ + εZ_k) − L(θ − εZ_k)] / 2ε on the step's common random numbers.

With CRNS (the default) both evaluations share the batch's points and directions, so the spatial noise cancels
in the difference and Var δ stays bounded as ε → 0. ``crns=False`` redraws the directions for each evaluation
(the O(1/ε²) variance ablation of SPEC §2.4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from ..estimators import sample_directions
from ..parabolic import hooks as parabolic
from ..residual import StepBatch
from ..seeds import derive, generator
from ..taylor import FirstLayer, boundary_jet
from .context import StepContext
from .perturbation import Perturbation
from .perturbed_forward import perturbed_residual
from .report import WorkerReport

if TYPE_CHECKING:
    from .engine import SDZEEngine


def probe_loss(engine: SDZEEngine, ctx: StepContext, z: Perturbation, eps: float | Tensor) -> Tensor:
    """L(θ_eff + εZ) = mean_n R_n², a 0-d tensor (the output layer moves only under update "sgd")."""
    R = perturbed_residual(engine, ctx, z.offset(eps, engine.perturbs_output_layer))[0]
    return R.square().mean()


def probe_two_point(engine: SDZEEngine, step: int, worker: int, ctx: StepContext) -> WorkerReport:
    """This worker's q two-point δ_k; its loss is the mean of the ± evaluations."""
    cfg = engine.cfg
    probes: list[tuple[int, float]] = []
    losses: list[float] = []
    for k in range(cfg.q):
        z = engine.draw(step, worker, k, ctx.data_basis)
        if cfg.crns:
            lp = probe_loss(engine, ctx, z, cfg.eps)
            lm = probe_loss(engine, ctx, z, -cfg.eps)
        else:
            lp = probe_loss(engine, redrawn_context(engine, ctx, step, worker, k, 0), z, cfg.eps)
            lm = probe_loss(engine, redrawn_context(engine, ctx, step, worker, k, 1), z, -cfg.eps)
        probes.append((k, float((lp - lm) / (2 * cfg.eps))))
        losses.append(0.5 * float(lp + lm))
    loss = sum(losses) / len(losses) if losses else float("nan")
    return WorkerReport(worker, probes, loss)


def redrawn_directions(engine: SDZEEngine, batch: StepBatch, step: int, worker: int, k: int, sign: int) -> StepBatch:
    """The batch's points with fresh directions from seed(job, "xi", t, w, k, sign) (no-CRN ablation)."""
    s, problem = engine.solver, engine.problem
    gen = generator(derive(engine.job_seed, "xi", step, worker, k, sign), engine.device)
    if isinstance(problem, parabolic.ParabolicProblem):
        return parabolic.redraw_directions(problem, batch, s, gen)
    dirs = sample_directions(s.estimator, problem.dim, s.samples, problem.order, gen, engine.dtype, engine.device)
    bjet = boundary_jet(problem.boundary_poly, batch.x, dirs, problem.order)
    return StepBatch(batch.x, batch.f, dirs, bjet, batch.g)  # g: a user PDE's boundary values (None: g ≡ 0)


def redrawn_context(engine: SDZEEngine, ctx: StepContext, step: int, worker: int, k: int, sign: int) -> StepContext:
    """``ctx`` on a batch with redrawn directions: first layer and random-basis products recomputed.

    A data-aligned first layer keeps the original batch's basis products (sdze_no_crns uses a random basis).
    """
    m = engine.model
    batch = redrawn_directions(engine, ctx.batch, step, worker, k, sign)
    first = FirstLayer.compute(m.W[0], m.b[0], batch.x, batch.dirs)
    V = engine.layers[0].V if engine.layers else None
    if V is None:
        return StepContext(batch, first, ctx.data_basis)
    return StepContext(batch, first, ctx.data_basis, batch.x @ V, batch.dirs.project(V.t()))
