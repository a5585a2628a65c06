"""The output refit: after the last step, the output layer is re-solved by least squares on a large seeded batch.

Why. Every step fits a batch of ~100 points through noisy estimators and damped, trust-bounded moves, so the output
layer θ = (W_L, b_L) (h + 1 numbers) ends where the last noisy steps left it, not at the least-squares optimum the
hidden features allow. With u = B·N and N = θ·[φ; 1] (φ the last hidden layer, shape (n, h)), u and its Laplacian
are *linear* in θ:

    u_n = U_n·θ,   Δu_n = A_n·θ,   U = B·[φ, 1],   A = BΔ[φ, 1] + 4B′ x·∇[φ, 1] + [φ, 1]ΔB       (n, h+1)

(``zspace.bn_from_jets`` applied to every feature at once, with the exact z-space Laplacian: no sampling noise). So
the mean squared residual R(θ) = Aθ + F(Uθ) − f is a least-squares problem in h + 1 unknowns, non-linear only
through F. Gauss–Newton with J = A + F′(Uθ)·U:

    θ ← θ − (JᵀJ + ρ I)⁻¹ Jᵀ R,   ρ = 10⁻¹⁰ · tr(JᵀJ)/(h+1)   (numerical only)

``ITERATIONS`` times, each move kept only if it lowers the batch's mean R² (else halved). Backprop-free: no
gradient of anything is taken; the features are forward-mode jets. Measured on sine_gordon_two_body, d = 10³
(16 384 points): aniso 0.0634 → 0.0457 after 300 steps, 0.0547 → 0.0424 after 1 500 (docs/benchmarks.md, session 7).

Guard, by two-fold cross-validation on the batch (the rows are computed once, so it costs no d-dependent work):
θ is fitted on the even rows and scored on the odd ones, and the other way round. A least-squares fit of p = h + 1
unknowns on m points scores ≈ (1 + p/m)·σ² on unseen points (its optimism), so the halves' score C_half estimates
the whole batch's fit at C_half·(1 + p/n)/(1 + p/(n/2)); the refit is kept only if that is below the starting θ's
score on the same rows (and n/2 > p), else θ is left bit for bit. Uncorrected, the check turned down refits that
lowered aniso by a fifth (d = 10³ after 1 500 and 3 000 steps, 4 096 points: held-out halves 0.3 % and 1.2 % worse
in RMS residual, aniso 0.0547 → 0.0428 and 0.0499 → 0.0404; ``docs/output_refit_sweep_d1000_s7.json``). The
trainer's validation batch (256 points at d ≤ 2^18) is no judge here: its residual did not follow the test error.
The batch is seeded apart from the validation batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .model import MLP
from .problems import Problem
from .taylor import LowRank
from .validation import seeded_chunks, zspace_layers
from .zspace import bn_from_jets, hidden_jets, laplacian_directions

ITERATIONS = 5
HALVINGS = 8
MAX_POINT_COORDINATES = 1 << 28  # n·d random numbers (and source terms) at most: n = 2^28/d at high d
MIN_POINTS_PER_UNKNOWN = 4  # fewer points than 4(h + 1): the refit would interpolate its batch, skipped


@dataclass(frozen=True)
class RefitRows:
    """The least-squares problem of the output layer: R(θ) = A θ + F(U θ) − f over n points; U, A (n, h+1), f (n,)."""

    U: Tensor
    A: Tensor
    f: Tensor

    def residual(self, theta: Tensor, nonlinearity: Callable[[Tensor], Tensor]) -> Tensor:
        return self.A @ theta + nonlinearity(self.U @ theta) - self.f

    def jacobian(self, theta: Tensor, derivative: Callable[[Tensor], Tensor]) -> Tensor:
        """J = A + F′(Uθ)·U (n, h+1)."""
        return self.A + derivative(self.U @ theta).unsqueeze(1) * self.U

    def take(self, rows: slice) -> RefitRows:
        return RefitRows(self.U[rows], self.A[rows], self.f[rows])


@dataclass(frozen=True)
class OutputRefit:
    """The refit's record (metrics.json ``output_refit``)."""

    points: int
    residual_before: float  # RMS residual on the refit's batch, before and after
    residual_after: float
    cross_before: float  # RMS residual of the held-out halves (two-fold), at the starting θ and under the halves' fits
    cross_after: float
    accepted: bool

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def refit_points(requested: int, dim: int, width: int) -> int:
    """The batch size: ``requested``, capped at 2^28/d points (the source costs O(d) per point); 0 where that is
    fewer than 4 points per unknown (at d = 10^7 with h = 128: 26 points for 129 unknowns)."""
    n = min(requested, MAX_POINT_COORDINATES // dim)
    return n if n >= MIN_POINTS_PER_UNKNOWN * (width + 1) else 0


@torch.no_grad()
def refit_rows(
    problem: Problem,
    model: MLP,
    lowrank: list[LowRank | None] | None,
    seed: int,
    n: int,
    dtype: torch.dtype = torch.float32,
    device="cpu",
) -> RefitRows:
    """U, A and f (float64) at the n seeded points of ``seed`` for a second-order catalogue problem. Memory: the
    rows, 2·n·(h+1) doubles (34 MB at n = 16 384), and one chunk's hidden jets."""
    low0, L, wgt, W, b = zspace_layers(model, lowrank)
    # filled in place: per-chunk results appended between each chunk's large temporaries fragmented the heap
    # (1.9 GB resident after 16 384 points at d = 100, against 0.5 GB this way)
    U = torch.empty(n, model.width + 1, dtype=torch.float64, device=device)
    A = torch.empty_like(U)
    f = torch.empty(n, dtype=torch.float64, device=device)
    done = 0
    for z0, wx, sq, fc in seeded_chunks(problem, model, low0, seed, n, dtype, device):
        y0, y1, y2 = hidden_jets(z0, laplacian_directions(L, wx), W, b)  # (m, 1|S+1, h)
        # the bias b_L is the feature 1: value 1, no derivatives
        jets = (
            torch.cat([y0[:, 0], torch.ones_like(y0[:, 0, :1])], 1),
            torch.nn.functional.pad(y1, (0, 1)),
            torch.nn.functional.pad(y2, (0, 1)),
        )
        rows = slice(done, done + fc.shape[0])
        U[rows], A[rows] = bn_from_jets(jets, sq.unsqueeze(1), wgt, problem.boundary_poly, problem.dim)
        f[rows] = fc
        done += fc.shape[0]
    return RefitRows(U, A, f)


def solve_output_layer(
    rows: RefitRows,
    theta: Tensor,
    nonlinearity: Callable[[Tensor], Tensor],
    derivative: Callable[[Tensor], Tensor],
    iterations: int = ITERATIONS,
) -> Tensor:
    """Gauss–Newton on mean_n R_n(θ)² from θ (h+1,) float64, by the guarded iteration in the module docstring;
    ``derivative`` is F′."""
    R = rows.residual(theta, nonlinearity)
    ms = float(R.square().mean())
    eye = torch.eye(theta.shape[0], dtype=theta.dtype, device=theta.device)
    for _ in range(iterations):
        J = rows.jacobian(theta, derivative)
        H = J.t() @ J
        move = -torch.linalg.solve(H + 1e-10 * torch.trace(H) / H.shape[0] * eye, J.t() @ R)
        for _ in range(HALVINGS):
            R_new = rows.residual(theta + move, nonlinearity)
            ms_new = float(R_new.square().mean())
            if ms_new < ms:
                break
            move = 0.5 * move
        else:
            break
        gain = ms - ms_new
        theta, R, ms = theta + move, R_new, ms_new
        if gain <= 1e-6 * (ms + gain):  # converged (an affine residual is solved by the first iteration)
            break
    return theta


@torch.no_grad()
def refit_output_layer(
    model: MLP, rows: RefitRows, F: Callable[[Tensor], Tensor], dF: Callable[[Tensor], Tensor]
) -> OutputRefit:
    """Set (W_L, b_L) to the least-squares solution on ``rows`` (nonlinearity F, its derivative dF) if the two-fold
    check (module docstring) passes."""
    w, b = model.W[-1], model.b[-1]
    theta0 = torch.cat([w.detach().reshape(-1), b.detach().reshape(-1)]).to(rows.U)

    def ms(r: RefitRows, theta: Tensor) -> float:
        return float(r.residual(theta, F).square().mean())

    halves = (rows.take(slice(0, None, 2)), rows.take(slice(1, None, 2)))
    cross_before = sum(ms(h, theta0) for h in halves) / 2
    cross_after = sum(ms(test, solve_output_layer(fit, theta0, F, dF)) for fit, test in (halves, halves[::-1])) / 2
    p, half = theta0.shape[0], rows.U.shape[0] // 2
    expected = cross_after * (1 + p / (2 * half)) / (1 + p / half)  # the whole batch's fit on unseen points
    accepted = half > p and expected < cross_before  # False for NaN too
    theta = solve_output_layer(rows, theta0, F, dF) if accepted else theta0
    if accepted:
        w.copy_(theta[:-1].reshape(w.shape).to(w))
        b.copy_(theta[-1:].to(b))
    return OutputRefit(
        rows.U.shape[0],
        math.sqrt(ms(rows, theta0)),
        math.sqrt(ms(rows, theta)),
        math.sqrt(cross_before),
        math.sqrt(cross_after),
        accepted,
    )
