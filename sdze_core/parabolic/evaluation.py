"""Accuracy of a parabolic solve, with its nulls (reported beside every figure).

With u = g + τN, τ = T − t, on a seeded test set (problems with a closed form; on a bounded domain read G for g
and τB_Ω for τ, ``ParabolicProblem.lifted``/``factor``):
    rel_l2                = ‖u_θ − u*‖ / ‖u*‖
    null_terminal_rel_l2  = ‖g − u*‖ / ‖u*‖                          (the terminal condition alone, N = 0)
    null_rel_l2           = min_K ‖g + τK − u*‖ / ‖u*‖
                          = sqrt(Σe² − (Σeτ)²/Στ²) / ‖u*‖,  e = u* − g  (closed-form least squares, K = Σeτ/Στ²)
    null_flat_rel_l2      = min_c ‖c − u*‖ / ‖u*‖ = sqrt(Σu*² − (Σu*)²/n) / ‖u*‖   (one constant for u itself)
    aniso_ratio           = rel_l2 / null_rel_l2   (< 1: the model learned more than the best constant)
``null_exact`` is true where that null already solves the problem (HJB-Lin: u* = g + τ): such a problem proves
nothing and is labelled so. At a point reference (t, x) = (0, x₀): ref_rel_error = |u_θ − u_ref|/|u_ref| and the
terminal null's ref_null_rel_error = |g(x₀) − u_ref|/|u_ref| (one point cannot fix a best K). Sums in float64.

Error against t (``time_slices``): at t_k = kT/4, k = 0 … 4, the same seeded normals ξ (n, d) are mapped through
the test law's marginal at t_k (so at t = 0 every point is x₀), and on each slice
    rel_l2 = ‖u_θ − u_ref‖ / ‖u_ref‖,  with the nulls ‖g − u_ref‖/‖u_ref‖ and ‖g + τK − u_ref‖/‖u_ref‖
(K the test set's best constant), where u_ref is what is known there: g at t = T (the terminal condition, for
every problem), u* where a closed form exists, the reference value at t = 0 for a point reference (the slice is x₀
then); elsewhere nothing is known and the slice's figures are None. Beside it the curve t ↦ u_θ(t, x₀).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..norms import row_norms
from ..seeds import derive, generator
from .problems import ParabolicProblem
from .sampling import ParabolicTestSet

NULL_EXACT_TOL = 1e-10
SLICES = 5  # error against t at t_k = kT/(SLICES − 1)
# what metrics.json carries beyond the stationary keys (rel_l2, null_rel_l2, aniso_ratio, val_residual)
EXTRA_METRICS = (
    "ref_rel_error",
    "ref_null_rel_error",
    "ref_u",
    "ref_value",
    "null_terminal_rel_l2",
    "null_K",
    "null_exact",
    "null_flat_rel_l2",
)


def compose(problem: ParabolicProblem, xt: Tensor, n: Tensor) -> Tensor:
    """u from the network's output N (n,) at points x̃ (n, d+1) (``ParabolicProblem.ansatz``)."""
    return problem.ansatz(xt, n)


def evaluate(
    problem: ParabolicProblem,
    predict: Callable[[Tensor], Tensor],
    test: ParabolicTestSet | None,
    dtype=torch.float32,
    device="cpu",
) -> dict[str, float]:
    """``predict`` maps x̃ (n, d+1) in ``dtype`` to u_θ (n,). Test-set metrics where a closed form exists,
    the reference-point metrics where a reference value exists."""
    out: dict[str, float] = {}
    d = problem.dim
    if problem.has_exact and test is not None:
        se = uu = ee = et = tt = su = 0.0
        count = 0
        for xt in test.chunks(torch.float64, device):
            x, t = xt[:, :d], xt[:, d]
            u_star = problem.u_exact(x, t)
            e = u_star - problem.lifted(x, t)
            tau = problem.factor(x, t)
            with torch.no_grad():
                u = predict(xt.to(dtype)).double()
            se += float((u - u_star).square().sum())
            uu += float(u_star.square().sum())
            su += float(u_star.sum())
            count += u_star.numel()
            ee += float(e.square().sum())
            et += float((e * tau).sum())
            tt += float(tau.square().sum())
        rel = math.sqrt(se / uu)
        null = math.sqrt(max(ee - et * et / tt, 0.0) / uu)
        out.update(
            rel_l2=rel,
            null_terminal_rel_l2=math.sqrt(ee / uu),
            null_rel_l2=null,
            null_K=et / tt,
            aniso_ratio=rel / null if null > 0 else float("inf"),
            null_exact=null < NULL_EXACT_TOL,
            # where u* hardly varies over the test set a flat u ≡ c beats g + τK (HJB at d = 10⁴: the constant
            # start's u ≡ c is at 8.7e-3 against 6.1e-2): the figure to beat there
            null_flat_rel_l2=math.sqrt(max(uu - su * su / count, 0.0) / uu),
        )
    ref = problem.reference_point()
    if ref is not None:
        x, t, value = ref
        xt = torch.cat([x, t.unsqueeze(1)], 1).to(device)
        with torch.no_grad():
            u = float(predict(xt.to(dtype)).double()[0])
        g0 = float(problem.lifted(x, t)[0])
        out.update(
            ref_u=u,
            ref_value=value,
            ref_rel_error=abs(u - value) / abs(value),
            ref_null_rel_error=abs(g0 - value) / abs(value),
        )
    return out


def null_constant(problem: ParabolicProblem, test: ParabolicTestSet | None, device="cpu") -> float | None:
    """The best constant K = Σeτ/Στ², e = u* − g, on the test set (as ``evaluate``'s null_K); None without u*."""
    if not problem.has_exact or test is None:
        return None
    et = tt = 0.0
    d = problem.dim
    for xt in test.chunks(torch.float64, device):
        x, t = xt[:, :d], xt[:, d]
        tau = problem.factor(x, t)
        et += float(((problem.u_exact(x, t) - problem.lifted(x, t)) * tau).sum())
        tt += float(tau.square().sum())
    return et / tt


def slice_points(problem: ParabolicProblem, t: float, xi: Tensor, gen: torch.Generator | None = None) -> Tensor:
    """x̃ (n, d+1) at time t from standard normals ξ (n, d) through the test law's marginal at t
    (``sampling.sample_points``' rules): x₀ + √(2νt)ξ ("gaussian"), x₀·exp(σ√t ξ − σ²t/2) ("gbm", σ² = 2κ); on a
    bounded domain ("domain") the domain's law from ``gen`` (the same points at every t when ``gen`` is reseeded)."""
    x0 = problem.origin(xi.dtype, xi.device)
    if problem.law == "domain":
        x = problem.sample_domain(xi.shape[0], gen, xi.dtype, "cpu").to(xi.device)
    elif problem.law == "gbm":
        s2 = 2 * problem.kappa
        x = x0 * torch.exp(math.sqrt(s2 * t) * xi - 0.5 * s2 * t)
    elif problem.law == "gaussian":
        x = x0 + math.sqrt(2 * problem.nu * t) * xi
    else:
        raise ValueError(f"no marginal law at fixed t for law {problem.law!r}")
    return torch.cat([x, torch.full_like(x[:, :1], t)], 1)


def known_values(problem: ParabolicProblem, x: Tensor, t: float) -> tuple[Tensor | None, str | None]:
    """(u at the slice's points x (n, d) where known, what it is): g at t = T ("terminal condition"), u* ("exact"),
    the point reference at t = 0 ("reference point": the slice is x₀ there), else (None, None)."""
    tt = torch.full_like(x[:, 0], t)
    if t == problem.T:  # u(T, ·) = g by definition (a quadrature u* at τ = 0 would only approximate it)
        return problem.terminal.value(x), "terminal condition"
    if problem.has_exact:
        return problem.u_exact(x, tt), "exact"
    ref = problem.reference_point(x.dtype)
    if t == 0 and ref is not None and bool((x == ref[0].to(x.device)).all()):
        return torch.full_like(tt, ref[2]), "reference point"
    return None, None


def time_slices(
    problem: ParabolicProblem,
    predict: Callable[[Tensor], Tensor],
    n: int,
    seed: int,
    null_K: float | None = None,
    dtype=torch.float32,
    device="cpu",
    rows: int = 2048,
) -> tuple[list[dict], dict[str, Tensor]]:
    """Error against t on n seeded points per slice (module docstring). Returns one dict per slice (t, truth,
    rel_l2, null_terminal_rel_l2, null_rel_l2, u_origin = u_θ(t, x₀), u_origin_ref where known, origin_rel_error)
    and float64 arrays: slice_t (K,), slice_u_pred / slice_u_ref (NaN where unknown) / slice_g / slice_r = |x|
    (K, n), and the per-slice figures (K,) with NaN for None."""
    d, T = problem.dim, problem.T
    ts = [k * T / (SLICES - 1) for k in range(SLICES)]
    out: list[dict] = []
    cols: dict[str, list] = {"slice_u_pred": [], "slice_u_ref": [], "slice_g": [], "slice_r": []}
    x0 = problem.origin(torch.float64, device).unsqueeze(0)
    for t in ts:
        se = rr = ge = ke = 0.0
        truth = None
        parts: dict[str, list] = {k: [] for k in cols}
        for i, start in enumerate(range(0, n, rows)):
            m = min(rows, n - start)
            gen = generator(derive(seed, "slice", i))
            xi = torch.randn(m, d, generator=gen, dtype=torch.float64).to(device)
            xt = slice_points(problem, t, xi, gen)
            x = xt[:, :d]
            with torch.no_grad():
                u = predict(xt.to(dtype)).double()
            g = problem.terminal.value(x)
            ref, truth = known_values(problem, x, t)
            if ref is not None:
                se += float((u - ref).square().sum())
                rr += float(ref.square().sum())
                lift = problem.lifted(x, xt[:, d])  # N = 0: g, or G on a bounded domain
                ge += float((lift - ref).square().sum())
                if null_K is not None:
                    ke += float((lift + problem.factor(x, xt[:, d]) * null_K - ref).square().sum())
            parts["slice_u_pred"].append(u)
            parts["slice_u_ref"].append(ref if ref is not None else torch.full_like(u, math.nan))
            parts["slice_g"].append(g)
            parts["slice_r"].append(row_norms(x))
        for k in cols:
            cols[k].append(torch.cat(parts[k]).cpu())
        known = truth is not None and rr > 0
        origin = torch.cat([x0, torch.full_like(x0[:, :1], t)], 1)
        with torch.no_grad():
            u0 = float(predict(origin.to(dtype)).double()[0])
        ref0, _ = known_values(problem, x0, t)
        v0 = None if ref0 is None else float(ref0[0])
        out.append(
            {
                "t": t,
                "truth": truth,
                "points": n,
                "rel_l2": math.sqrt(se / rr) if known else None,
                "null_terminal_rel_l2": math.sqrt(ge / rr) if known else None,
                "null_rel_l2": math.sqrt(ke / rr) if known and null_K is not None else None,
                "u_origin": u0,
                "u_origin_ref": v0,
                "origin_rel_error": abs(u0 - v0) / abs(v0) if v0 else None,
            }
        )
    arrays = {k: torch.stack(v) for k, v in cols.items()}
    arrays["slice_t"] = torch.tensor(ts, dtype=torch.float64)
    for key in ("rel_l2", "null_terminal_rel_l2", "null_rel_l2", "u_origin", "u_origin_ref"):
        vals = [math.nan if s[key] is None else s[key] for s in out]
        arrays["slice_" + key] = torch.tensor(vals, dtype=torch.float64)
    return out, arrays
