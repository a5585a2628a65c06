"""The Cole–Hopf HJB reference: 2-D quadrature vs the 1-D Laplace route, a linear case, an MGF, Monte Carlo."""

import math

import pytest
import torch

from sdze_core.parabolic.cole_hopf import hjb_log_solution, laplace_log_expectation, radial_log_expectation

F64 = torch.float64


def _points(d):
    r2 = torch.tensor([0.0, 0.3, 2.0 * d * 0.5, 5.0 * d], dtype=F64)
    tau = torch.tensor([1.0, 0.5, 0.5, 0.01], dtype=F64)
    return r2, tau


@pytest.mark.parametrize("d", [1, 2, 3, 10, 100, 10_000, 100_000])
def test_quadrature_matches_laplace_route(d):
    r2, tau = _points(d)
    a = hjb_log_solution(r2, tau, d, route="quadrature")
    b = hjb_log_solution(r2, tau, d, route="laplace")
    tol = 1e-7 if d <= 3 else 1e-11  # Gauss–Hermite converges slowly at d ≤ 3 (poles of φ near the z₁ axis)
    torch.testing.assert_close(a, b, rtol=0, atol=tol)


def test_laplace_route_converged_in_its_step():
    for d in (1, 10, 10_000):
        r2, tau = _points(d)
        sig = (2 * tau).sqrt()
        torch.testing.assert_close(
            laplace_log_expectation(r2, sig, d), laplace_log_expectation(r2, sig, d, h=0.004), rtol=0, atol=1e-13
        )


@pytest.mark.parametrize("d", [1, 5, 100, 10_000])
def test_linear_case_heat_equation_with_quadratic_terminal(d):
    """u_t + Δu = 0, g = |x|²: u = E[g(x + √(2τ)Z)] = |x|² + 2dτ, by the same 2-D quadrature."""
    r2, tau = _points(d)
    sig = (2 * tau).sqrt()
    got = radial_log_expectation(torch.log, r2, sig, d).exp()
    torch.testing.assert_close(got, r2 + 2 * d * tau, rtol=1e-12, atol=0)


@pytest.mark.parametrize("d", [1, 7, 1000])
def test_gaussian_moment_generating_function(d):
    """E[exp(−s|x + σZ|²)] = (1 + 2σ²s)^{−d/2} exp(−s r²/(1 + 2σ²s))."""
    r2, tau = _points(d)
    sig = (2 * tau).sqrt()
    s = 0.3 / d
    got = radial_log_expectation(lambda q: -s * q, r2, sig, d)
    a = 1 + 2 * sig**2 * s
    torch.testing.assert_close(got, -0.5 * d * torch.log(a) - s * r2 / a, rtol=0, atol=1e-12)


def test_matches_independent_monte_carlo_at_small_d():
    d, n = 3, 400_000
    gen = torch.Generator().manual_seed(5)
    xs = torch.tensor([[0.0, 0.0, 0.0], [0.5, -1.0, 0.2], [2.0, 1.0, -1.5]], dtype=F64)
    taus = torch.tensor([1.0, 0.4, 0.1], dtype=F64)
    u = hjb_log_solution((xs * xs).sum(1), taus, d)
    for i in range(3):  # independent samples for every point (the reference codes share one set)
        y = xs[i] + (2 * taus[i]).sqrt() * torch.randn(n, d, generator=gen, dtype=F64)
        v = 2 / (1 + (y * y).sum(1))
        m, se = v.mean(), v.std() / math.sqrt(n)
        assert abs(float(u[i]) - (-math.log(float(m)))) < 4 * float(se / m), (i, float(u[i]), -math.log(float(m)))


def test_terminal_value_at_tau_zero():
    r2 = torch.tensor([0.0, 1.0, 50.0], dtype=F64)
    u = hjb_log_solution(r2, torch.zeros(3, dtype=F64), 10)
    torch.testing.assert_close(u, torch.log1p(r2) - math.log(2), rtol=0, atol=1e-13)
