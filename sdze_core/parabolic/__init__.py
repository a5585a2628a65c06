"""Terminal-value parabolic problems u_t + L u + F(u, ∇u, x, t) = 0 (issue 14): catalogue, exact solutions,
collocation, forward-mode residual, nulls. See ``docs/time-dependent.md``."""

from .problems import PARABOLIC_CATALOGUE, PARABOLIC_NAMES, ParabolicProblem, make_parabolic_problem

__all__ = ["PARABOLIC_CATALOGUE", "PARABOLIC_NAMES", "ParabolicProblem", "make_parabolic_problem"]
