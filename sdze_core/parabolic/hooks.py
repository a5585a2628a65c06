"""What the training engines need from a parabolic problem, with the signatures they use for stationary ones.

The engines (``engine/``, ``baselines.py``) draw a step's common random numbers from a batch source, propagate
order-2 jets of the network along the batch's shared directions (``batch.x``/``batch.dirs``: x̃ = (x, t) and the
S + 1 joint directions), and read from the problem: u's jet, the residual, the residual's tangents along
parameter probes (``tangent.residual_tangents``'s contract) and the output layer's exact Jacobian. Every one of
them is forward-mode: R is a pointwise function of the u-jet, so Ṙ = c₀u̇₀ + Σc₁u̇₁ + Σc₂u̇₂ with u̇ = B·Ṅ
(``residual.linearization``); nothing here runs a backward pass over the parameters.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..seeds import derive, generator
from ..taylor import Jet, output_jet
from . import residual as pr
from .problems import ParabolicProblem
from .sampling import sample_points, terminal_points


def terminal_rows(problem: ParabolicProblem, batch_size: int) -> int:
    """Terminal-value rows per batch: a quarter of the PDE rows under the soft ansatz, none under the hard one."""
    return max(1, batch_size // 4) if problem.terminal_rule == "soft" else 0


class ParabolicBatchSource:
    """The step's common random numbers, drawn from ``seed(job, "batch", t, w)``: points x̃ first, then the
    spatial directions. Same interface as ``residual.BatchSource`` (latest step cached, older ones dropped)."""

    def __init__(self, problem: ParabolicProblem, solver, job_seed: int, dtype=torch.float32, device="cpu"):
        pr.check_estimator(problem, solver.estimator)
        self.problem, self.solver, self.job_seed = problem, solver, job_seed
        self.dtype, self.device = dtype, device
        self._cache: dict[tuple[int, int], pr.ParabolicBatch] = {}

    def live(self) -> list[pr.ParabolicBatch]:
        return list(self._cache.values())

    def seed(self, step: int, worker: int) -> int:
        return derive(self.job_seed, "batch", step, worker)

    def get(self, step: int, worker: int, with_source: bool = True) -> pr.ParabolicBatch:
        """Worker w's batch of step t (always complete: the per-point data are O(N·S), no O(Nd) source work)."""
        key = (step, worker)
        hit = self._cache.get(key)
        if hit is None:
            self._cache = {k: v for k, v in self._cache.items() if k[0] >= step}
            s = self.solver
            gen = generator(self.seed(step, worker), self.device)
            p = self.problem
            xt = sample_points(p, s.batch_size, gen, self.dtype, self.device, p.train_law)
            n_t = terminal_rows(p, s.batch_size)
            if n_t:  # soft ansatz: terminal-value rows at t = T after the PDE rows
                xt = torch.cat([xt, terminal_points(p, n_t, gen, self.dtype, self.device)])
            spatial = pr.sample_spatial(s.estimator, p.dim, s.samples, gen, self.dtype, self.device)
            hit = pr.batch_from_points(p, xt, spatial, n_t)
            self._cache[key] = hit
        return hit


def redraw_directions(
    problem: ParabolicProblem, batch: pr.ParabolicBatch, solver, gen: torch.Generator
) -> pr.ParabolicBatch:
    """The batch's points with fresh spatial directions (the no-CRN ablation)."""
    spatial = pr.sample_spatial(solver.estimator, problem.dim, solver.samples, gen, batch.x.dtype, batch.x.device)
    return pr.batch_from_points(problem, batch.x, spatial)


def u_jet(batch: pr.ParabolicBatch, phi: Jet, w: Tensor, b: Tensor) -> Jet:
    """u = g + τN from the last hidden layer's jet φ and the output layer (w, b)."""
    return pr.u_jet(batch, output_jet(phi, w, b))


def residual(problem: ParabolicProblem, batch: pr.ParabolicBatch, u: Jet) -> Tensor:
    return pr.residual(problem, batch, u)


def residual_tangents(
    problem: ParabolicProblem, batch: pr.ParabolicBatch, phi: Jet, phid: Jet, w: Tensor, u: Jet, split: bool = False
):
    """Ṙ_k (q, N) along every probe whose hidden-layer tangent jet is ``phid`` ((q, N, 1|S+1, h) entries).

    With ``split``: (per-direction terms (q, N, S+1), value term (q, N)); direction j's term c₁ⱼu̇₁ⱼ + c₂ⱼu̇₂ⱼ
    depends only on that direction's tangents, which is what the exact W₁ Jacobian needs.
    """
    wv = w.reshape(-1)
    nd = [None if c is None else c @ wv for c in phid]
    ud = pr.tangent_u_jet(batch, nd)
    c0, c1, c2 = pr.linearization(problem, batch, u)
    val = c0 * ud[0][..., 0]
    op = 0
    if ud[1] is not None:
        op = op + c1 * ud[1]
    if len(ud) > 2 and ud[2] is not None:
        op = op + c2 * ud[2]
    if split:
        return op, val
    return op.sum(-1) + val


def last_layer_jacobian(problem: ParabolicProblem, batch: pr.ParabolicBatch, phi: Jet, u: Jet) -> Tensor:
    """∂R/∂(w, b) of the output layer, (N, h+1), exact: Ṅ along output weight j is φ_j's jet (φ_h ≡ 1: bias)."""
    feats = []
    for i, p in enumerate(phi):
        if p is None:
            feats.append(None)
            continue
        one = torch.ones_like(p[..., :1]) if i == 0 else torch.zeros_like(p[..., :1])
        feats.append(torch.cat([p, one], -1).movedim(-1, 0))  # (h+1, N, 1|S+1): channels lead
    lin = pr.linearization(problem, batch, u)
    return pr.apply_linearization(lin, pr.tangent_u_jet(batch, feats)).t()


def batch_source(problem, solver, job_seed: int, dtype=torch.float32, device="cpu"):
    """The engines' batch source for any problem: ``ParabolicBatchSource`` for a parabolic one, else the
    stationary ``residual.BatchSource``."""
    if isinstance(problem, ParabolicProblem):
        return ParabolicBatchSource(problem, solver, job_seed, dtype, device)
    from ..residual import BatchSource  # the stationary source (residual.py imports this package)

    return BatchSource(problem, solver, job_seed, dtype, device)


def estimator_conflict(name: str, estimator: str) -> str | None:
    """Why ``estimator`` cannot serve catalogue problem ``name`` unbiasedly (None: it can); for config checks."""
    from .problems import make_parabolic_problem

    try:
        pr.check_estimator(make_parabolic_problem(name, 3), estimator)
    except ValueError as e:
        return str(e)
    return None
