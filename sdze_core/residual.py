"""PDE residual and loss from jets (SPEC §2): R = Â[u](x) + F(u(x)) − f(x),  L = mean_n R_n².

A step's common random numbers (CRNS) are its ``StepBatch``: collocation points, their source values and
the spatial directions, all drawn from one step seed and reused by every ± evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .estimators import (
    W1_ESTIMATORS,
    Directions,
    sample_directions,
    zspace_boundary,
    zspace_directions,
    zspace_with_points,
)
from .parabolic.residual import ParabolicBatch
from .parabolic.residual import residual as parabolic_residual
from .parabolic.residual import u_jet as parabolic_u_jet
from .point_pool import PointPool
from .problems import Problem
from .sampling import sample_points
from .seeds import derive, generator
from .taylor import Jet, boundary_jet, jet_mul, operator_from_jet, output_jet


@dataclass(frozen=True)
class StepBatch:
    """Points x (N, d), source f(x) (N,), directions, the boundary factor's jet, and the boundary values g(x).

    For a user PDE with Dirichlet values g, ``f`` is the effective source f/a − L[g] and ``g`` (N,) is added
    to the value of u = g + B·N (its derivatives are already in f), so the engine never differentiates g.
    ``g`` is None when g ≡ 0 (every catalogue problem).
    """

    x: Tensor
    f: Tensor
    dirs: Directions
    bjet: Jet
    g: Tensor | None = None


def make_batch(
    problem: Problem,
    n: int,
    estimator: str,
    samples: int,
    gen: torch.Generator,
    dtype=torch.float32,
    device="cpu",
    with_source: bool = True,
    dirs: Directions | None = None,
) -> StepBatch:
    """Draw the step's points then its directions from ``gen``; f is evaluated by ``source_chunked`` then cast.

    ``with_source=False`` gives the same points and directions without f and the boundary jets (what another
    worker needs to rebuild this batch's data-aligned basis: O(Nd) random numbers, no transcendental work).
    Estimator "zspace": ``dirs`` is W₁'s row basis at the step's start (``estimators.zspace_directions``), extended
    here by the batch's points.
    """
    x = sample_points(problem, n, gen, dtype, device)
    f, g = source_and_boundary(problem, x, dtype) if with_source else (None, None)
    return batch_at_points(problem, x, f, g, estimator, samples, gen, dtype, device, dirs)


def source_and_boundary(problem: Problem, x: Tensor, dtype) -> tuple[Tensor, Tensor | None]:
    """f(x) (N,) and the boundary values g(x) (N,) or None where g ≡ 0, in the batch dtype: what a batch carries
    beside its points (and what a ``point_pool`` group keeps)."""
    return source_chunked(problem, x).to(dtype), boundary_chunked(problem, x, dtype)


def batch_at_points(
    problem: Problem,
    x: Tensor,
    f: Tensor | None,
    g: Tensor | None,
    estimator: str,
    samples: int,
    gen: torch.Generator,
    dtype=torch.float32,
    device="cpu",
    dirs: Directions | None = None,
) -> StepBatch:
    """The step's batch at given points x (N, d) with their source values f (N,) and boundary values g (N,) or
    None: the directions are drawn from ``gen`` (or, estimator "zspace", ``dirs`` extended by x) and the
    boundary factor's jets computed. ``f`` None: a light batch (points and directions only)."""
    if estimator in W1_ESTIMATORS:
        dirs = zspace_with_points(dirs, x)  # W₁'s row space (given) extended by this batch's points
    else:
        dirs = sample_directions(estimator, problem.dim, samples, problem.order, gen, dtype, device)
    if f is None:
        return StepBatch(x, None, dirs, None)
    bjet = boundary_jet(problem.boundary_poly, x, dirs, problem.order)
    if estimator in W1_ESTIMATORS:
        bjet = zspace_boundary(bjet, problem.boundary_poly, x, dirs)
    return StepBatch(x, f, dirs, bjet, g)


def boundary_chunked(problem: Problem, x: Tensor, dtype, max_floats: int = 1 << 22) -> Tensor | None:
    """g(x) in float64, then cast; None for problems whose boundary values are identically 0."""
    if getattr(problem, "boundary_value", None) is None or getattr(problem, "g_zero", True):
        return None
    rows = max(1, max_floats // problem.dim)
    return torch.cat([problem.boundary_value(xs.double()) for xs in x.split(rows)]).to(dtype)


def source_chunked(problem: Problem, x: Tensor, max_floats: int = 1 << 22) -> Tensor:
    """f(x), shape (N,) float64, a few points at a time (at d = 10^7 one float64 copy of a batch is 8 GB).

    Catalogue closed forms (``source_accepts_float32``) take x in its own dtype: with float32 points the
    per-coordinate transcendentals — the whole cost at high d — run in float32 (≈ 2× faster on this CPU) while
    every sum over coordinates and the assembly stay float64, so f carries float32 rounding per term: max |Δf| ≈
    1e-6·RMS f up to d = 10^5, 1.7e-5 at d = 10^7 (``benchmarks/bench_wide_reductions.py``; ≤ 2e-5 tested in
    ``tests/test_problems.py``; the float32 cast that follows costs ≈ 6e-8) — at d = 10^7 1 % of the started
    residual. Everything else (user PDE programs, float64 points) is evaluated in float64."""
    rows = max(1, max_floats // problem.dim)
    own_dtype = getattr(problem, "source_accepts_float32", False)
    return torch.cat([problem.source(xs if own_dtype else xs.double()) for xs in x.split(rows)])


class BatchSource:
    """The step's common random numbers, drawn from ``seed(job, "batch", t, w)``. Batches of the latest step
    are kept, so ``apply`` (and timing code) reuses what ``probe`` drew; older steps are dropped, since at
    d = 10^7 one batch is 4 GB."""

    def __init__(self, problem: Problem, solver, job_seed: int, dtype=torch.float32, device="cpu"):
        self.problem, self.solver, self.job_seed = problem, solver, job_seed
        self.dtype, self.device = dtype, device
        self._cache: dict[tuple[int, int], StepBatch] = {}
        # estimator "zspace": the engine's W₁ (read once per step, at its first batch: every worker's batch of
        # step t then shares the directions of W₁ as it was when the step began)
        self.first_layer: Callable[[], Tensor] | None = None
        self._zdirs: tuple[int, Directions] | None = None
        lifetime = solver.point_lifetime
        self.pool = (
            None
            if lifetime == 1
            else PointPool(
                problem,
                solver.batch_size,
                lifetime,
                job_seed,
                dtype,
                device,
                lambda x: source_and_boundary(problem, x, dtype),
            )
        )

    def _directions(self, step: int) -> Directions | None:
        if self.solver.estimator not in W1_ESTIMATORS:
            return None
        if self._zdirs is None or self._zdirs[0] != step:
            if self.first_layer is None:
                raise ValueError(f"estimator {self.solver.estimator!r} needs the engine's first layer")
            with torch.no_grad():
                self._zdirs = (step, zspace_directions(self.first_layer().detach()))
        return self._zdirs[1]

    def live(self) -> list[StepBatch]:
        return list(self._cache.values())

    def seed(self, step: int, worker: int) -> int:
        return derive(self.job_seed, "batch", step, worker)

    def get(self, step: int, worker: int, with_source: bool = True) -> StepBatch:
        """Worker w's batch of step t; ``with_source=False`` may return a cached full batch or a light one."""
        key = (step, worker)
        hit = self._cache.get(key)
        if hit is None or (with_source and hit.f is None):
            self._cache = {k: v for k, v in self._cache.items() if k[0] >= step}
            s = self.solver
            gen = generator(self.seed(step, worker), self.device)
            if self.pool is None:
                hit = make_batch(
                    self.problem,
                    s.batch_size,
                    s.estimator,
                    s.samples,
                    gen,
                    self.dtype,
                    self.device,
                    with_source=with_source,
                    dirs=self._directions(step),
                )
            else:  # points that live several steps: only the expired groups are drawn and evaluated
                x, f, g = self.pool.points(step, worker, with_source)
                args = (s.estimator, s.samples, gen, self.dtype, self.device, self._directions(step))
                hit = batch_at_points(self.problem, x, f, g, *args)
            self._cache[key] = hit
        return hit


def u_jet(batch: StepBatch, phi: Jet, w: Tensor, b: Tensor) -> Jet:
    """Jet of u = g + B·N from the last hidden layer's jet φ and the output layer (w, b); g enters the value
    only (its derivatives are in the effective source)."""
    if isinstance(batch, ParabolicBatch):  # terminal-value problems: u = g + (T − t)·N with g's own jets
        return parabolic_u_jet(batch, output_jet(phi, w, b))
    u = jet_mul(batch.bjet, output_jet(phi, w, b))
    if batch.g is not None:
        u[0] = u[0] + batch.g.unsqueeze(-1)
    return u


def residual(problem: Problem, batch: StepBatch, u: Jet) -> Tensor:
    """R_n = Â[u](x_n) + F(u(x_n)) − f(x_n), shape (N,)."""
    if isinstance(batch, ParabolicBatch):  # u_t + L u + F(u, ∇u, x, t) (parabolic/residual.py)
        return parabolic_residual(problem, batch, u)
    return operator_from_jet(u, batch.dirs) + problem.nonlinearity(u[0][:, 0]) - batch.f


def loss(problem: Problem, batch: StepBatch, u: Jet) -> Tensor:
    """mean_n R_n², a 0-d tensor."""
    return residual(problem, batch, u).square().mean()
