"""Exact solution of the HJB benchmark by quadrature (Cole–Hopf), to ~1e-10 at any d.

PDE  u_t + Δu − μ|∇u|² = 0 on [0,T)×R^d,  u(T,x) = g(x) = log((1+|x|²)/2).
Cole–Hopf: w = e^{−μu} solves the heat equation w_t + Δw = 0, so with τ = T − t and σ = √(2τ)
    u(t, x) = −(1/μ) log E[exp(−μ g(x + σZ))],   Z ~ N(0, I_d).
g reads only q = |x + σZ|² = (r + σ z₁)² + σ² c with r = |x|, z₁ = Z·x/|x| ~ N(0,1) and c = |Z − z₁x/|x||² ~ χ²_{d−1}
independent of z₁, so the expectation is a 2-D integral over (z₁, c) whatever d:
- z₁ by probabilists' Gauss–Hermite, c = 2y by generalized Gauss–Laguerre for y ~ Gamma((d−1)/2) (weight
  y^α e^{−y}, α = (d−1)/2 − 1), both from the Golub–Welsch eigenproblem of their Jacobi matrices (stable for any α,
  so d = 10^4 is no harder than d = 10);
- the sum is taken as a log-sum-exp of log-weights plus log φ(q), in float64.
Measured against the 1-D route below: ≤ 1e-13 in log E at d ≥ 10 (any d up to 10^5), but only ~1e-8 at d ≤ 3
with 200 × 200 nodes (φ has complex poles ~1/σ from the real z₁ axis, so Gauss–Hermite converges slowly there).
The reference codes estimate it by Monte Carlo with one sample set shared by all test points; here each point
gets its own deterministic quadrature. ``laplace_log_expectation`` is an independent 1-D route for the same
expectation (used by the tests): (1+q)^{−μ} = Γ(μ)^{−1} ∫₀^∞ s^{μ−1} e^{−s(1+q)} ds and the Gaussian moment
E[e^{−s|x+σZ|²}] = (1+2σ²s)^{−d/2} exp(−s r²/(1+2σ²s)) leave one integral in s, taken by the trapezoidal rule in
log s (exponentially convergent for this analytic, double-exponentially decaying integrand): ≤ 1e-14 at every
d tried (1 … 10^5). ``hjb_log_solution`` therefore uses the 1-D route; the 2-D quadrature is the generic tool
(any radial φ) and the independent cross-check.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import torch
from torch import Tensor

F64 = torch.float64


def _golub_welsch(diag: Tensor, off: Tensor) -> tuple[Tensor, Tensor]:
    """Nodes and normalised log-weights of the Gauss rule of a probability measure from its Jacobi matrix."""
    J = torch.diag(diag) + torch.diag(off, 1) + torch.diag(off, -1)
    nodes, vecs = torch.linalg.eigh(J)
    w = vecs[0].square()
    return nodes, torch.log(w.clamp_min(1e-300))


@lru_cache(maxsize=8)
def hermite_rule(n: int) -> tuple[Tensor, Tensor]:
    """Gauss rule for N(0, 1): (nodes, log-weights), n points."""
    k = torch.arange(1, n, dtype=F64)
    return _golub_welsch(torch.zeros(n, dtype=F64), k.sqrt())


@lru_cache(maxsize=32)
def gamma_rule(n: int, shape: float) -> tuple[Tensor, Tensor]:
    """Gauss rule for Gamma(shape, 1) (density y^{shape−1}e^{−y}/Γ(shape)): generalized Laguerre, α = shape − 1."""
    a = shape - 1.0
    k = torch.arange(n, dtype=F64)
    kk = torch.arange(1, n, dtype=F64)
    return _golub_welsch(2 * k + a + 1, (kk * (kk + a)).sqrt())


def radial_log_expectation(
    log_phi: Callable[[Tensor], Tensor], r2: Tensor, sigma: Tensor, d: int, n_z: int = 200, n_c: int = 200
) -> Tensor:
    """log E[φ(|x + σZ|²)] for Z ~ N(0, I_d), given |x|² = r2 (N,) and σ (N,) (float64); (N,).

    ``log_phi`` maps q (any shape) to log φ(q). Cost O(N·n_z·n_c), independent of d.
    """
    r2, sigma = r2.to(F64), sigma.to(F64)
    z, lwz = hermite_rule(n_z)
    r = r2.clamp_min(0).sqrt()
    a = (r.unsqueeze(1) + sigma.unsqueeze(1) * z).square()  # (N, n_z)
    if d == 1:
        return torch.logsumexp(lwz + log_phi(a), dim=1)
    y, lwc = gamma_rule(n_c, (d - 1) / 2.0)
    s2c = (sigma.square().unsqueeze(1) * (2 * y)).unsqueeze(1)  # (N, 1, n_c)
    q = a.unsqueeze(2) + s2c  # (N, n_z, n_c)
    return torch.logsumexp((lwz.unsqueeze(1) + lwc.unsqueeze(0)) + log_phi(q), dim=(1, 2))


def laplace_log_expectation(r2: Tensor, sigma: Tensor, d: int, mu: float = 1.0, h: float = 0.01) -> Tensor:
    """log E[(1 + |x + σZ|²)^{−μ}] by the 1-D Laplace-transform route (see module docstring); (N,)."""
    r2, sigma = r2.to(F64).unsqueeze(1), sigma.to(F64).unsqueeze(1)
    lam0 = 1.0 + d * 2 * sigma.square() + r2  # initial decay rate of the integrand in s
    lo = -torch.log(lam0) - 45.0  # below: the integrand ~ s^μ, negligible
    steps = torch.arange(0, int(55.0 / h) + 1, dtype=F64) * h
    y = lo + steps  # (N, K): log s
    s = torch.exp(y)
    a = 1 + 2 * sigma.square() * s
    log_f = mu * y - s - 0.5 * d * torch.log(a) - s * r2 / a  # log(s^{μ} e^{−s} E[e^{−s q}]), ds = s dy
    return torch.logsumexp(log_f, dim=1) + math.log(h) - math.lgamma(mu)


def hjb_log_solution(r2: Tensor, tau: Tensor, d: int, mu: float = 1.0, route: str = "laplace") -> Tensor:
    """u(t, x) of the Cole–Hopf HJB benchmark from |x|² (N,) and τ = T − t (N,); float64, differentiable.

    u = −(1/μ) log E[(2/(1+q))^μ] = −log 2 − (1/μ) log E[(1+q)^{−μ}],
    q = |x + √(2τ) Z|²; at τ = 0 it is g(x) exactly. ``route``: "laplace" (1-D, default) or "quadrature" (2-D).
    """
    r2, tau = r2.to(F64), tau.to(F64)
    sigma = (2 * tau.clamp_min(0)).sqrt()
    if route == "laplace":
        log_e = laplace_log_expectation(r2, sigma, d, mu)
    elif route == "quadrature":
        log_e = radial_log_expectation(lambda q: -mu * torch.log1p(q), r2, sigma, d)
    else:
        raise ValueError(f"unknown route {route!r}")
    return -math.log(2.0) - log_e / mu


def hjb_log_solution_chunked(r2: Tensor, tau: Tensor, d: int, mu: float = 1.0, rows: int = 256) -> Tensor:
    """``hjb_log_solution`` a few points at a time (each point holds ~5 500 float64 quadrature terms)."""
    return torch.cat([hjb_log_solution(a, b, d, mu) for a, b in zip(r2.split(rows), tau.split(rows), strict=True)])
