"""The 1-D radial solve (``parabolic.radial_reference``): checked on a closed form, then against the anchors' values."""

from __future__ import annotations

import math

import pytest
import torch

from sdze_core.parabolic.problems import HEAT_REFERENCE, make_parabolic_problem
from sdze_core.parabolic.radial_reference import origin_value, problem_origin_value


@pytest.mark.parametrize("dim", [3, 1000])
def test_heat_equation_with_quadratic_terminal_value(dim):
    # u_t + Δu = 0, u(T) = |x|²: u = |x|² + 2d(T − t), so u(0, 0) = 2dT (the scheme is exact on quadratics)
    v = origin_value(lambda s: s, torch.zeros_like, dim, 0.3, cells=200, steps=50)
    assert v == pytest.approx(2 * dim * 0.3, rel=1e-10)


def test_pure_reaction_is_integrated_in_time():
    # F(v) = 1 − v with a constant terminal value 0: v(t) = 1 − e^{−(T − t)} (no spatial dependence)
    v = origin_value(torch.zeros_like, lambda u: 1 - u, 50, 0.3, cells=100, steps=100)
    assert v == pytest.approx(1 - math.exp(-0.3), rel=1e-8)  # RK4 + Strang: O(Δt⁴) here


@pytest.mark.parametrize(("dim", "tol"), [(10, 1.2e-3), (100, 4e-4), (1000, 3e-4), (10000, 1e-4)])
def test_semilinear_heat_references_agree_with_the_radial_solve(dim, tol):
    # the anchors' u(0, 0) (multilevel Picard, unverified) against this solve at 800 cells × 800 steps, which moves
    # by < 1e-4 relative from 400 × 400 (7e-5 at d = 10⁴, below 1e-5 elsewhere)
    p = make_parabolic_problem("semilinear_heat", dim)
    fine = problem_origin_value(p)
    assert fine == pytest.approx(problem_origin_value(p, 400, 400), rel=1e-4)
    assert fine == pytest.approx(HEAT_REFERENCE[dim], rel=tol)


def test_only_radial_plain_problems():
    for name in ("allen_cahn_time", "hjb_cole_hopf", "bsb"):
        with pytest.raises(ValueError, match="not a radial problem"):
            problem_origin_value(make_parabolic_problem(name, 10))
