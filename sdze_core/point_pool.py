"""Collocation points that live several steps (knob ``point_lifetime``): a batch refreshed in part each step.

At high d drawing the points and evaluating the source f on them is most of a step (d = 10⁵, N = 100: 0.23 s of
a 0.41 s ``sdze`` step, ``benchmarks/bench_point_lifetime.py``). With lifetime L > 1 a worker's batch of N points
is L groups of ⌈N/L⌉ or ⌊N/L⌋ points; group g is redrawn at the steps t ≡ g (mod L) and kept, with its source
and boundary values, for the L steps that follow. Each step therefore draws and evaluates about N/L new points,
and each point enters L consecutive steps' residuals.

Every point is still drawn from the domain's law, so each step's loss is an unbiased estimate of the population
loss; what changes is that consecutive steps share most of their points (the steps are correlated and the
Gauss–Newton step re-fits points it has seen). Measured (docs/benchmarks.md, session 11): at d = 10⁵ the default
``sdze`` learns in proportion to the distinct points it has seen, not the steps — L = 4 took 1.8× the steps of L = 1
in 30 minutes and ended at aniso 0.714 against 0.574, exactly where L = 1 stood after as many distinct points; L = 10
did worse than that. Hence the default 1: the knob is for problems whose source costs far more than a step.

Determinism: group g of worker w at step t holds the points drawn from seed(job, "pool", born, w, g) with
born = t − ((t − g) mod L), the latest step ≤ t at which the group was refreshed (negative before step g: the
group's first points). A batch is thus a pure function of (job seed, t, w), as with L = 1: replicas rebuild
each other's points from seeds, and a resumed run draws the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .problems import Problem
from .sampling import sample_points
from .seeds import derive, generator


def group_sizes(n: int, lifetime: int) -> list[int]:
    """Points of each of the ``lifetime`` groups of an n-point batch (sizes differ by at most one)."""
    return [n // lifetime + (g < n % lifetime) for g in range(lifetime)]


def born_step(step: int, group: int, lifetime: int) -> int:
    """The step at which ``group``'s points in use at ``step`` were drawn: the latest t' ≤ step, t' ≡ group."""
    return step - ((step - group) % lifetime)


@dataclass(frozen=True)
class PointGroup:
    """One group's points x (n_g, d) drawn at step ``born``, with f (n_g,) and g (n_g,) or None."""

    born: int
    x: Tensor
    f: Tensor | None
    g: Tensor | None


class PointPool:
    """The live groups of every worker: ``points(step, worker)`` returns the batch's points, source and boundary
    values, drawing and evaluating only the groups whose lifetime has run out (or that were never drawn)."""

    def __init__(self, problem: Problem, n: int, lifetime: int, job_seed: int, dtype, device, evaluate):
        """``evaluate(x) -> (f, g)``: the source and boundary values of points x, in the batch dtype."""
        if not 1 <= lifetime <= n:
            raise ValueError(f"point_lifetime must be between 1 and the batch size {n}, got {lifetime}")
        self.problem, self.lifetime, self.job_seed = problem, lifetime, job_seed
        self.sizes = group_sizes(n, lifetime)
        self.dtype, self.device, self.evaluate = dtype, device, evaluate
        self._groups: dict[tuple[int, int], PointGroup] = {}
        self.drawn = 0  # points drawn so far (all workers): what the pool saved is steps·N − drawn

    def _group(self, step: int, worker: int, g: int, with_source: bool) -> PointGroup:
        born = born_step(step, g, self.lifetime)
        hit = self._groups.get((worker, g))
        if hit is not None and hit.born == born and (hit.f is not None or not with_source):
            return hit
        if hit is not None and hit.born == born:  # a light group (another worker's, points only) now needs f
            x = hit.x
        else:
            gen = generator(derive(self.job_seed, "pool", born, worker, g), self.device)
            x = sample_points(self.problem, self.sizes[g], gen, self.dtype, self.device)
            self.drawn += x.shape[0]
        f, gv = self.evaluate(x) if with_source else (None, None)
        hit = PointGroup(born, x, f, gv)
        self._groups[(worker, g)] = hit
        return hit

    def points(self, step: int, worker: int, with_source: bool) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Worker w's points at ``step``: x (N, d), f (N,) and g (N,) (None without source, or g ≡ 0)."""
        groups = [self._group(step, worker, g, with_source) for g in range(self.lifetime)]
        x = torch.cat([p.x for p in groups])
        if not with_source:
            return x, None, None
        f = torch.cat([p.f for p in groups])
        g = None if groups[0].g is None else torch.cat([p.g for p in groups])
        return x, f, g
