"""Gauss–Newton probes (update "gn"): each worker solves a small Levenberg–Marquardt problem on its batch.

Columns P = [∂R/∂(w, b) | (J₁d₁) | J Z_1 … J Z_q] of the residual's Jacobian on this worker's batch:
- the output layer's h+1 columns, exact (``probes_forward.last_layer_jacobian``);
- with w1_probes "jacobian", one column for W₁: its exact Jacobian J₁ in the batch's data basis reduced to its own
  damped minimum-norm step d₁ = −J₁ᵀ(J₁J₁ᵀ + δI)⁻¹R (the NLMS direction in the data span); on a time-dependent
  problem (gn_w1_time_only) the least-squares step of W₁'s time column alone (``time_coefficients``);
- the hidden probes' columns J Z_k, by forward-mode tangents or by CRN two-point differences of the residuals.
Then a = −(PᵀP + λ diag(PᵀP) + μI)⁻¹ PᵀR (``levenberg.levenberg_marquardt``), retried with λ ×10 while the step
raises the batch's CRN loss (gn_backtracks); if no damping gives descent, the worker's step is zero.
The output bias is left undamped (a ridge regression's intercept) when the output features are nearly constant on
the batch (``free_bias``): then a damped split hands the solution's level to the output weights.
On a time-dependent problem with gn_mean_row the rows are the batch's N points plus the Feynman–Kac mean row
(``least_squares_rows``): the LM, the W₁ time-column step and every trial loss read the same N + 1 rows.
Only the scalars a_k, the h+1 output-layer coefficients and the p × m' W₁ coefficients a_W₁·d₁ leave the worker.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..levenberg import levenberg_marquardt
from ..norms import piecewise_squared_norms
from ..parabolic.mean_row import follows_the_law, mean_row
from ..parabolic.problems import ParabolicProblem
from .context import StepContext, holdout_context
from .perturbation import Offset, Perturbation
from .perturbed_forward import perturbed_residual
from .probes_forward import last_layer_jacobian, residual_dual, w1_jacobian_columns
from .report import WorkerReport

if TYPE_CHECKING:
    from .engine import SDZEEngine


def least_squares_rows(engine: SDZEEngine, ctx: StepContext) -> Callable[[Tensor], Tensor]:
    """The map from the batch's N per-point rows (R (N,) or P (N, k)) to the rows the LM solves and the trial losses
    read: the same rows, plus the Feynman–Kac mean row on a time-dependent problem with gn_mean_row κ > 0 whose
    training law is the diffusion of its operator (``parabolic.mean_row``)."""
    kappa = engine.cfg.gn_mean_row
    if not kappa or not isinstance(engine.problem, ParabolicProblem) or not follows_the_law(engine.problem):
        return lambda M: M
    return mean_row(ctx.batch, kappa, engine.problem.T)


def jacobian_columns(engine: SDZEEngine, ctx: StepContext, zs: list[Perturbation]):
    """(P (N', n) float64, R (N',) float64, d₁ (p·m',) or None, p): the LM problem of this worker's batch; N' = N
    point rows, plus one with gn_mean_row (``least_squares_rows``)."""
    cfg = engine.cfg
    p, d1 = 0, None
    problem = engine.problem
    rows = least_squares_rows(engine, ctx)
    if engine.w1_exact:
        U1 = engine.layers[0].U
        p = U1.shape[1]
        R0, phi, u, (op, val) = residual_dual(engine, ctx, zs, w1_U=U1)
        Rd = op[2 * p :].sum(-1) + val[2 * p :]
        J1 = w1_jacobian_columns(op, val, ctx.data_basis, p).double()
        time_only = time_coefficients(engine, ctx, p)
        if time_only is not None:  # time-dependent problem: the exact step moves W₁'s time column only
            Jt = rows(J1 @ time_only)  # (N', p)
            d1 = time_only @ -(torch.linalg.pinv(Jt) @ rows(R0.double()))
            w1_col = J1 @ d1
        else:
            # one LM column for W₁: its own damped minimum-norm step d₁ = −J₁ᵀ(J₁J₁ᵀ + δI)⁻¹R; the joint solve
            # then sets its length beside the output layer and the hidden probes
            gram = J1 @ J1.t()  # (N, N)
            ridge = cfg.gn_damping * float(torch.diagonal(gram).mean()) + 1e-30
            eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
            y = torch.linalg.solve(gram + ridge * eye, R0.double())
            d1 = -(J1.t() @ y)
            w1_col = -(gram @ y)
        cols = [last_layer_jacobian(problem, ctx.batch, phi, u), w1_col.unsqueeze(1).to(Rd.dtype), Rd.t()]
    elif cfg.gradient == "forward":
        R0, phi, u, Rd = residual_dual(engine, ctx, zs)
        cols = [last_layer_jacobian(problem, ctx.batch, phi, u), Rd.t()]
    else:
        R0, phi, u = perturbed_residual(engine, ctx, None)
        cols = [last_layer_jacobian(problem, ctx.batch, phi, u)]
        for z in zs:
            plus = perturbed_residual(engine, ctx, z.offset(cfg.eps, output_layer=False))[0]
            minus = perturbed_residual(engine, ctx, z.offset(-cfg.eps, output_layer=False))[0]
            cols.append(((plus - minus) / (2 * cfg.eps)).unsqueeze(1))
    return rows(torch.cat(cols, 1).double()), rows(R0.double()), d1, p


def time_coefficients(engine: SDZEEngine, ctx: StepContext, p: int) -> Tensor | None:
    """The exact W₁ step's coefficients along W₁'s time column, (p·m', p) orthonormal, on a time-dependent problem
    with gn_w1_time_only; else None. e_t is the batch's last direction (``joint_directions``), so its basis
    coordinates are the data basis's last ``dv`` row a (m'); output row k's are e_k ⊗ a. The step is then
    d₁ = −A (J₁A)⁺R (least squares in those p coefficients); W₁'s x-part moves through the hidden probes only.

    Why: with all of W₁ the minimum-norm step pays ‖ΔW₁‖_F, and a unit of ΔW₁ along e_t moves a pre-activation by
    t ≤ T while one along the batch's x-span moves it by |x| ≈ √(2νdt) (≈ 17 at d = 10³): the step fitted the
    solution's t-trend through batch-specific x-directions, which do not generalize at d ≫ N (semilinear heat stayed
    at its terminal null, 0.87 at d = 100 after 300 steps). Time column only: 0.0057 there, and 1.4e-2 / 1.1e-2
    at d = 10³ / 10⁴ after 10 minutes; HJB d = 100 unchanged (docs/time-dependent.md, session 5)."""
    if not engine.cfg.gn_w1_time_only or not isinstance(engine.problem, ParabolicProblem) or ctx.data_basis is None:
        return None
    a = ctx.data_basis.dv[-1].double()
    a = a / a.norm()
    m = a.shape[0]
    A = torch.zeros(p * m, p, dtype=torch.float64, device=a.device)
    for k in range(p):
        A[k * m : (k + 1) * m, k] = a
    return A


def free_bias(P: Tensor, h1: int, threshold: float) -> Tensor | None:
    """The LM's free-column mask (n,): the output bias (column h1 − 1) when the output weights' columns are nearly
    collinear with it on this batch, mean_k cos²(P_b, P_wk) ≥ ``threshold`` (knob gn_free_bias); else None.

    Why: at high d the point law puts every coordinate at O(1/√d), the hidden features barely vary across points and
    each weight column is ≈ a multiple of the bias column. The damped minimum-norm split of the solution's level K
    then gives the h weights h/(h+1) of it (each column's share goes as 1/λ_k, whatever its scale), and the weights'
    product with the features' small point-to-point variation is noise at unseen points — measured, it kept the
    default above the constant null at d ≥ 10^5 (‖w‖ ≈ 870 with b ≈ −1.7 after 20 steps). Measured mean cos²: 0.13
    (scaled problem, d = 10^4), 0.87 (d = 10^3), 0.95 (10^4), ≥ 0.99 (10^5) for sine_gordon_two_body; at 10^3 freeing
    the bias made learning slower (docs/benchmarks.md), hence a threshold and not always.
    """
    pb, Pw = P[:, h1 - 1], P[:, : h1 - 1]
    cos2 = float(((pb @ Pw).square() / ((pb @ pb) * Pw.square().sum(0) + 1e-300)).mean())
    if cos2 < threshold:
        return None
    free = torch.zeros(P.shape[1], dtype=torch.bool, device=P.device)
    free[h1 - 1] = True
    return free


def step_offset(zs: list[Perturbation], last: Tensor, w1: Tensor | None, ap: Tensor, eta: float) -> Offset:
    """The worker's own step η (Σ_k a_k Z_k + output-layer step + W₁ step) as an ``Offset``."""
    subspace: list[Tensor | None] = []
    for l in range(len(zs[0].S) if zs else 0):
        A = sum((float(ap[k]) * eta) * z.S[l] for k, z in enumerate(zs) if z.S[l] is not None)
        if l == 0 and w1 is not None:
            A = A + eta * w1
        subspace.append(None if isinstance(A, int) else A)  # int: no term at all (exact W₁ without a W₁ step)
    hb = ()
    if zs and zs[0].hidden_bias:
        hb = tuple(
            sum((float(ap[k]) * eta) * z.hidden_bias[l] for k, z in enumerate(zs))
            for l in range(len(zs[0].hidden_bias))
        )
    return Offset(tuple(subspace), hb, eta * last)


def probe_gauss_newton(engine: SDZEEngine, step: int, worker: int, ctx: StepContext) -> WorkerReport:
    """This worker's LM coefficients (probes a_k, output layer, W₁) with backtracking on its CRN loss."""
    cfg = engine.cfg
    zs = [engine.draw(step, worker, k, ctx.data_basis) for k in range(cfg.q)]
    P, R, d1, p = jacobian_columns(engine, ctx, zs)
    loss0 = float(R.square().mean())
    h1 = engine.model.width + 1
    n1 = h1 + (1 if p else 0)
    eta = engine.schedule(step)
    lam = cfg.gn_damping
    if engine.holdout:  # Marquardt's rule across steps: start from the last accepted damping ÷ 3, never below λ₀
        lam = max(lam, engine.gn_lambda.get(worker, lam) / 3.0)

    region = TrustRegion.of(engine, zs, eta, cfg.gn_trust)
    free = free_bias(P, h1, cfg.gn_free_bias)

    def split(a: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:  # output layer, W₁ coefficients, probes
        last, w1, ap = region.bound(a[:h1], (a[h1] * d1).reshape(p, -1) if p else None, a[n1:])
        return last.to(engine.dtype), w1.to(engine.dtype) if w1 is not None else None, ap

    held = holdout_context(engine.model, engine.layers, engine.step_data, ctx, step, worker) if engine.holdout else None
    held0 = rows_loss(engine, held, None) if held is not None else 0.0

    def descends(parts) -> bool:  # on the batch, and (gn_holdout) on the held-out batch: no over-fit steps
        if trial_loss(engine, ctx, zs, *parts, eta) >= loss0:
            return False
        return held is None or trial_loss(engine, held, zs, *parts, eta) < held0

    rejected, lam0 = 0, lam
    for _ in range(cfg.gn_backtracks + 1):
        parts = split(levenberg_marquardt(P, R, lam, free))
        if cfg.gn_backtracks == 0 or descends(parts):
            break
        rejected += 1
        lam *= 10.0  # Levenberg–Marquardt: a step that raises the CRN loss is retried more damped
    else:
        parts = split(P.new_zeros(P.shape[1]))  # no damping gave descent: skip this batch (counted by apply)
        lam = lam0
    last, w1, ap = parts
    probes = [(k, float(ap[k])) for k in range(cfg.q)]
    damping = lam if engine.holdout else None  # recorded by every replica in apply (engine.gn_lambda)
    return WorkerReport(worker, probes, loss0, last=last, w1=w1, rejected_trials=rejected, damping=damping)


@dataclass(frozen=True)
class TrustRegion:
    """Bounds on one worker's step, block by block (knob ``gn_trust`` = τ): ‖ΔW‖_F ≤ τ · max(‖W‖_F, 1) for W₁ and
    for every hidden layer. The output layer is left free (``out_norm`` = ∞): it enters the residual linearly (up to
    F) and must grow by orders of magnitude in the first steps at high d (N ≈ f/ΔB); bounding it too stalled the
    fit in measurements (docs/benchmarks.md).

    Why: at d ≫ N the batch's Gauss–Newton step can interpolate N points with a step many times the weights' size
    (measured: ‖ΔW₁‖ = 14‖W₁‖ in the first step at d = 10^6, N = 16; hidden layers ×20–170 in two steps at d = 10^5,
    which saturates their tanh units for good). Each block's step is scaled into its bound before the trial loss
    is measured, so backtracking judges the step that is applied. The coefficients of a block are bounded as
    η‖A‖_F with ‖U A Vᵀ‖_F = ‖A‖_F (orthonormal bases); the hidden probes share one coefficient per probe across
    layers, so they are scaled by the tightest layer's factor.
    """

    tau: float
    eta: float
    w1_norm: float
    out_norm: float
    hidden_norms: tuple[float, ...] = ()
    probe_S: tuple[Tensor, ...] = ()  # per hidden subspace layer: (q, r_out, r_in) stacked S_k

    @staticmethod
    def of(engine: SDZEEngine, zs: list[Perturbation], eta: float, tau: float) -> TrustRegion:
        if tau <= 0 or eta <= 0:
            return TrustRegion(0.0, eta, 0.0, 0.0)
        m = engine.model
        hidden, stacks = [], []
        for l, lay in enumerate(engine.layers):
            if not zs or zs[0].S[l] is None:
                continue
            W = m.W[l] if lay.V is None or l == 0 else m.W[l] + lay.U @ lay.C @ lay.V.t()  # h × h: cheap
            hidden.append(max(frobenius(W), 1.0))
            stacks.append(torch.stack([z.S[l] for z in zs]).double())
        return TrustRegion(
            tau,
            eta,
            max(frobenius(m.W[0]), 1.0),
            float("inf"),  # the output layer is free: measured, bounding it stalls the fit (docs/benchmarks.md)
            tuple(hidden),
            tuple(stacks),
        )

    def _factor(self, step_norm: float, weight_norm: float) -> float:
        cap = self.tau * weight_norm
        step = self.eta * step_norm
        return 1.0 if step <= cap else cap / step

    def bound(self, last: Tensor, w1: Tensor | None, ap: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        """(output-layer coefficients (h+1,), W₁ coefficients (p × m') or None, probe coefficients (q,)), bounded."""
        if self.tau <= 0:
            return last, w1, ap
        if w1 is not None:
            w1 = w1 * self._factor(float(w1.norm()), self.w1_norm)
        last = torch.cat([last[:-1] * self._factor(float(last[:-1].norm()), self.out_norm), last[-1:]])
        if self.probe_S and ap.numel():
            a = ap.double()
            f = min(
                self._factor(float(torch.einsum("k,kij->ij", a, S).norm()), n)
                for S, n in zip(self.probe_S, self.hidden_norms, strict=True)
            )
            ap = ap * f
        return last, w1, ap


def frobenius(W: Tensor, block: int = 1 << 16) -> float:
    """‖W‖_F of a matrix (h, d): its rows' ``norms.piecewise_squared_norms`` (norms of ``block``-column pieces in W's
    dtype, no copy, relative rounding ≈ 1e-7 each, squares summed in float64), summed. One pass over W: 0.53 s for
    W₁ at d = 10^7, h = 128, where a float64 sum of squares by fresh row blocks took 29 s; a bound needs no more
    digits (one float32 norm of all 1.28·10⁹ numbers is off by 3e-4). Float64 W: its own norm."""
    if W.dtype == torch.float64:
        return float(W.norm())
    return math.sqrt(float(piecewise_squared_norms(W, block).sum()))


def rows_loss(engine: SDZEEngine, ctx: StepContext, offset: Offset | None) -> float:
    """The mean square of the LM's rows (``least_squares_rows``) on a CRN batch at θ_eff + offset (float64)."""
    R = perturbed_residual(engine, ctx, offset)[0]
    return float(least_squares_rows(engine, ctx)(R.double()).square().mean())


def trial_loss(
    engine: SDZEEngine,
    ctx: StepContext,
    zs: list[Perturbation],
    last: Tensor,
    w1: Tensor | None,
    ap: Tensor,
    eta: float,
) -> float:
    """``rows_loss`` on this worker's CRN batch after its own step."""
    return rows_loss(engine, ctx, step_offset(zs, last, w1, ap, eta))
