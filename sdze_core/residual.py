"""PDE residual and loss from jets (SPEC §2): R = Â[u](x) + F(u(x)) − f(x),  L = mean_n R_n².

A step's common random numbers (CRNS) are its ``StepBatch``: collocation points, their source values and
the spatial directions, all drawn from one step seed and reused by every ± evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .estimators import Directions, sample_directions
from .problems import Problem
from .sampling import sample_points
from .taylor import Jet, boundary_jet, jet_mul, operator_from_jet, output_jet


@dataclass(frozen=True)
class StepBatch:
    """Points x (N, d), source f(x) (N,), directions, and the boundary factor's jet."""

    x: Tensor
    f: Tensor
    dirs: Directions
    bjet: Jet


def make_batch(
    problem: Problem,
    n: int,
    estimator: str,
    samples: int,
    gen: torch.Generator,
    dtype=torch.float32,
    device="cpu",
) -> StepBatch:
    """Draw the step's points then its directions from ``gen``; f is evaluated in float64 then cast."""
    x = sample_points(problem, n, gen, dtype, device)
    dirs = sample_directions(estimator, problem.dim, samples, problem.order, gen, dtype, device)
    f = problem.source(x.double()).to(dtype)
    return StepBatch(x, f, dirs, boundary_jet(problem.boundary_poly, x, dirs, problem.order))


def u_jet(batch: StepBatch, phi: Jet, w: Tensor, b: Tensor) -> Jet:
    """Jet of u = B·N from the last hidden layer's jet φ and the output layer (w, b)."""
    return jet_mul(batch.bjet, output_jet(phi, w, b))


def residual(problem: Problem, batch: StepBatch, u: Jet) -> Tensor:
    """R_n = Â[u](x_n) + F(u(x_n)) − f(x_n), shape (N,)."""
    return operator_from_jet(u, batch.dirs) + problem.nonlinearity(u[0][:, 0]) - batch.f


def loss(problem: Problem, batch: StepBatch, u: Jet) -> Tensor:
    """mean_n R_n², a 0-d tensor."""
    return residual(problem, batch, u).square().mean()
