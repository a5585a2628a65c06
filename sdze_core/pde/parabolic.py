"""A time-dependent (terminal-value) user PDE built from its JSON form: the ``time`` block (docs/pde.md).

    u_t + ν Δu + κ Σ_i x_i² ∂²_ii u + β x·∇u + F(u; x, t) + μ|∇u|² + ρ Σ_i |∂_i u|^p + c₀ = 0   on [0, T) × R^d
    (or [0, T) × Ω with a ``domain``),   u(T, x) = g(x)   (and u = h(x, t) on ∂Ω)

is compiled to the *same* ``parabolic.problems.ParabolicProblem`` the catalogue uses (a subclass whose reaction,
terminal condition and exact solution are compiled expressions), so the residual, the engines' hooks, the point
laws, the nulls and the metrics are those of ``sdze_core/parabolic`` — there is no second residual. Fields:

- ``pde.operator``: ``laplacian`` ν, ``diffusion`` κ, ``drift`` β (numbers or constant expressions in d; ν, κ ≥ 0:
  a terminal-value problem with negative diffusion is ill-posed);
- ``pde.reaction`` F(u; x, t): an expression in u, x and t (u may not appear inside sum/max/min);
  ``pde.gradient_square`` μ, ``pde.gradient_power`` ρ with ``pde.power`` p ∈ [1, 8], ``pde.constant`` c₀;
- ``time``: ``horizon`` T, ``terminal`` g(x), ``rule`` hard | soft, ``terminal_weight`` λ (soft),
  ``law`` gaussian | gbm, ``train_law`` marginal | paths, ``origin`` x₀ (a pattern tiled to length d),
  ``reference`` u(0, x₀), ``solution`` "cole_hopf";
- ``exact`` u*(x, t), an expression in x and t (checked against g at t = T, and against h on ∂Ω);
- ``domain`` (ball, annulus, cube: ``pde.domain``) and ``boundary`` h(x, t), an expression in x and t (default g):
  the network is u = G + (T − t)·B(x)·N with the lift G = g(x) + h(x, t) − h(x, T) and the domain's factor B, so u
  meets g at t = T and h on ∂Ω (where h(·, T) = g, checked). Points: the domain's law, t ~ U[0, T].

Combinations that cannot run are refused here with the field named: the gaussian law needs ν > 0 (its spread
is the diffusion's, x = x₀ + √(2νt)ξ), gbm needs κ > 0 and a positive origin, paths need the gaussian law,
``solution: cole_hopf`` needs u_t + νΔu + μ|∇u|² = 0 with a radial g, and exact and cole_hopf are exclusive; a
domain needs the hard rule, no law/train_law/solution, and x₀ inside it; ``boundary`` needs a domain.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..parabolic.cole_hopf import radial_log_expectation
from ..parabolic.problems import ParabolicProblem
from ..parabolic.sampling import terminal_points
from ..taylor import Jet, boundary_jet
from .compile import Program, compile_tree
from .domain import Domain
from .expr import PdeError, parse, parse_lets
from .problem import CHECK_VANISHING_MAX_DIM, MAX_REACTION_CHARS, _coefficients, _const, _domain
from .scalar import ScalarView, find_op
from .terminal_expr import ExprTerminal, directional_jets

TIME_FIELDS = ("horizon", "terminal", "rule", "terminal_weight", "law", "train_law", "origin", "reference", "solution")
PDE_FIELDS = ("operator", "reaction", "gradient_square", "gradient_power", "power", "constant")
OPERATOR_FIELDS = ("laplacian", "diffusion", "drift")
RULES = ("hard", "soft")
LAWS = ("gaussian", "gbm")
TRAIN_LAWS = ("marginal", "paths")
SOLUTIONS = ("cole_hopf",)
MAX_ORIGIN = 64
MAX_HORIZON = 1e6
POWER_RANGE = (1.0, 8.0)
EXACT_CHECK_TOL = 1e-8  # |u*(x, T) − g(x)| ≤ tol·max|g| + 1e-12 at seeded points


@dataclass(frozen=True)
class SpecParabolicProblem(ParabolicProblem):
    """A ``ParabolicProblem`` whose reaction, terminal condition and exact solution are compiled expressions."""

    reaction_view: ScalarView | None = field(default=None, compare=False, repr=False)
    exact_prog: Program | None = field(default=None, compare=False, repr=False)
    pattern: tuple[float, ...] = (0.0,)
    domain_obj: Domain | None = None  # a bounded domain Ω (law "domain"); None: R^d
    boundary_prog: Program | None = field(default=None, compare=False, repr=False)  # h(x, t) on ∂Ω; None: h = g

    # ---------------------------------------------------------------- bounded domain (ParabolicProblem's hooks)
    def domain_factor(self, x: Tensor) -> Tensor | None:
        return None if self.domain_obj is None else self.domain_obj.boundary(x)

    def domain_factor_jet(self, x: Tensor, spatial) -> Jet | None:
        return None if self.domain_obj is None else boundary_jet(self.domain_obj.boundary_poly, x, spatial, 2)

    def sample_domain(self, n: int, gen: torch.Generator, dtype=torch.float32, device="cpu") -> Tensor:
        if self.domain_obj is None:
            return super().sample_domain(n, gen, dtype, device)
        return self.domain_obj.sample(n, gen, dtype, device)

    def boundary_value(self, x: Tensor, t: Tensor) -> Tensor:
        """h(x, t) (N,): the given boundary values, or g(x) where none are given."""
        return self.terminal.value(x) if self.boundary_prog is None else self.boundary_prog(x=x, t=t)

    def lift_value(self, x: Tensor, t: Tensor) -> Tensor | None:
        if self.boundary_prog is None:
            return None
        h = self.boundary_prog
        return h(x=x, t=t) - h(x=x, t=torch.full_like(t, self.T))

    def lift_jets(self, x: Tensor, t: Tensor, spatial) -> tuple[Tensor, ...] | None:
        """L = h(x, t) − h(x, T) and its derivatives by nested forward-mode jvp: along each of the S spatial
        directions (skipped when h does not read x) and along t (O(S·N·d) per batch, as a general g)."""
        if self.boundary_prog is None:
            return None
        h, T = self.boundary_prog, torch.full_like(t, self.T)
        value = h(x=x, t=t) - h(x=x, t=T)
        if _reads_x(h):
            d1, d2 = directional_jets(lambda y: h(x=y, t=t) - h(x=y, t=T), x, spatial)
        else:
            d1 = d2 = torch.zeros(x.shape[0], spatial.count, dtype=x.dtype, device=x.device)
        one = torch.ones_like(t)

        def in_time(tt: Tensor) -> Tensor:
            return h(x=x, t=tt)

        def first_t(tt: Tensor) -> Tensor:
            return torch.func.jvp(in_time, (tt,), (one,))[1]

        dt, dtt = torch.func.jvp(first_t, (t,), (one,))
        return value, d1, d2, dt, dtt

    def origin(self, dtype=torch.float64, device="cpu") -> Tensor:
        """x₀ (d,): the origin pattern repeated to length d."""
        p = torch.tensor(self.pattern, dtype=dtype, device=device)
        return p.repeat(-(-self.dim // p.numel()))[: self.dim]

    def reaction_value(self, u: Tensor, aux: Tensor | None = None) -> Tensor:
        if self.reaction_view is None:
            return torch.zeros_like(u)
        return self.reaction_view(u, aux)[0]

    def reaction_derivative(self, u: Tensor, aux: Tensor | None = None) -> Tensor:
        if self.reaction_view is None:
            return torch.zeros_like(u)
        return self.reaction_view(u, aux, order=1)[1]

    def reaction_aux(self, x: Tensor, t: Tensor) -> Tensor | None:
        """The reaction's u-independent inputs per point (N, m), float64 (``scalar.ScalarView.leaf_values``)."""
        if self.reaction_view is None:
            return None
        return self.reaction_view.leaf_values(x, t)

    def reference_point(self, dtype=torch.float64) -> tuple[Tensor, Tensor, float] | None:
        """As the catalogue's, but None where u*(0, x₀) = 0 (a relative error there is undefined; the test-set
        metrics still apply). A given ``time.reference`` is refused at 0."""
        ref = super().reference_point(dtype)
        return None if ref is None or ref[2] == 0.0 else ref

    def u_exact(self, x: Tensor, t: Tensor) -> Tensor:
        tau = self.T - t
        if self.exact == "expression":
            return self.exact_prog(x=x, t=t)
        if self.exact == "cole_hopf":
            return _cole_hopf(self, x, tau)
        raise ValueError(f"{self.name} has no closed form")


def _reads_x(prog: Program) -> bool:
    """Whether the program reads x at all (coordinates, |x|² or a reduction)."""
    return any(ins.op in ("x", "xc", "norm2", "red") for ins in prog.instrs)


def _cole_hopf(p: SpecParabolicProblem, x: Tensor, tau: Tensor, rows: int = 64) -> Tensor:
    """u = (ν/μ) log E[exp((μ/ν) ψ(|x + σZ|²))], σ = √(2ντ), for u_t + νΔu + μ|∇u|² = 0 with g = ψ(|x|²):
    w = exp((μ/ν)u) solves w_t + νΔw = 0. The expectation is the 2-D quadrature of ``cole_hopf``."""
    a = p.grad_sq / p.nu
    psi = p.terminal.view
    r2 = (x * x).sum(-1).double()
    sig = (2 * p.nu * tau.double().clamp_min(0)).sqrt()
    out = [
        radial_log_expectation(lambda q: a * psi(q)[0], r, s, p.dim) / a
        for r, s in zip(r2.split(rows), sig.split(rows), strict=True)
    ]
    return torch.cat(out)


def _num(spec: Mapping, key: str, d: int, fld: str, default: float) -> float:
    v = spec.get(key)
    return default if v is None else _const(v, d, f"{fld}.{key}")


def _choice(spec: Mapping, key: str, choices: tuple[str, ...], default: str, fld: str) -> str:
    v = spec.get(key, default)
    if v is None:
        return default
    if v not in choices:
        raise PdeError(f"{fld}.{key}", f"must be one of {', '.join(choices)}")
    return v


def _origin(v: Any, fld: str) -> tuple[float, ...]:
    if v is None:
        return (0.0,)
    if not isinstance(v, list) or not 1 <= len(v) <= MAX_ORIGIN:
        raise PdeError(fld, f"must be a list of 1 to {MAX_ORIGIN} numbers (repeated to length d)")
    out = []
    for e in v:
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not math.isfinite(e):
            raise PdeError(fld, "must hold finite numbers")
        out.append(float(e))
    return tuple(out)


def parabolic_from_spec(spec: Mapping, fld: str = "problem", check_only: bool = False) -> SpecParabolicProblem:
    """Validate and compile a time-dependent problem (``spec`` has ``time``); errors are ``PdeError``s naming
    the field. ``check_only`` skips the O(d) checks above d = CHECK_VANISHING_MAX_DIM (as for stationary PDEs)."""
    extra = set(spec) - {"dim", "pde", "time", "exact", "coefficients", "name", "domain", "boundary", "let"}
    if extra:
        raise PdeError(fld, f"unknown fields {sorted(extra)}")
    d = spec.get("dim")
    if not isinstance(d, int) or isinstance(d, bool) or not 1 <= d <= 10_000_000:
        raise PdeError(f"{fld}.dim", "must be an integer in [1, 10^7]")
    domain = _domain(spec["domain"], d, f"{fld}.domain") if spec.get("domain") is not None else None
    if spec.get("boundary") is not None and domain is None:
        raise PdeError(
            f"{fld}.boundary", "only with a domain (on R^d a time-dependent problem has time.terminal alone)"
        )
    small = d <= CHECK_VANISHING_MAX_DIM
    coefs = _coefficients(spec.get("coefficients", {}), d, f"{fld}.coefficients", draw=not check_only or small)
    names = frozenset(coefs)
    lets = parse_lets(spec.get("let"), f"{fld}.let", names, allow_t=True)
    pde = spec.get("pde", {})
    if not isinstance(pde, Mapping):
        raise PdeError(f"{fld}.pde", "must be an object")
    if "source" in pde:
        raise PdeError(
            f"{fld}.pde.source", "a time-dependent problem has no source: write f(x, t) into pde.reaction (= 0 form)"
        )
    bad = set(pde) - set(PDE_FIELDS)
    if bad:
        raise PdeError(f"{fld}.pde", f"unknown fields {sorted(bad)} (time-dependent: {', '.join(PDE_FIELDS)})")
    op = pde.get("operator", {"laplacian": 1.0})
    if not isinstance(op, Mapping):
        raise PdeError(f"{fld}.pde.operator", "must be an object")
    if "biharmonic" in op:
        raise PdeError(f"{fld}.pde.operator.biharmonic", "not available for time-dependent problems")
    bad = set(op) - set(OPERATOR_FIELDS)
    if bad:
        raise PdeError(f"{fld}.pde.operator", f"unknown fields {sorted(bad)} (use {', '.join(OPERATOR_FIELDS)})")
    f_op = f"{fld}.pde.operator"
    nu, kappa, beta = (_num(op, k, d, f_op, 0.0) for k in OPERATOR_FIELDS)
    for key, v in (("laplacian", nu), ("diffusion", kappa)):
        if v < 0:
            raise PdeError(
                f"{f_op}.{key}", "must be ≥ 0 (a terminal-value problem with negative diffusion is ill-posed)"
            )
    f_pde = f"{fld}.pde"
    mu = _num(pde, "gradient_square", d, f_pde, 0.0)
    rho = _num(pde, "gradient_power", d, f_pde, 0.0)
    c0 = _num(pde, "constant", d, f_pde, 0.0)
    power = 2.0
    if pde.get("power") is not None:
        if rho == 0.0:
            raise PdeError(f"{f_pde}.power", "only with a non-zero gradient_power")
        power = _num(pde, "power", d, f_pde, 2.0)
        if not POWER_RANGE[0] <= power <= POWER_RANGE[1]:
            raise PdeError(f"{f_pde}.power", f"must be in [{POWER_RANGE[0]:g}, {POWER_RANGE[1]:g}]")
    elif rho != 0.0:
        raise PdeError(f"{f_pde}.power", "is required with gradient_power (the p of ρ Σ|∂_i u|^p)")

    def prog(key: str, text: Any, allow_u: bool = False, allow_t: bool = False) -> Program:
        if not isinstance(text, str):
            raise PdeError(key, "must be a string expression")
        if allow_u and len(text) > MAX_REACTION_CHARS:
            raise PdeError(key, f"longer than {MAX_REACTION_CHARS} characters")
        tree = parse(text, key, names, allow_u=allow_u, allow_t=allow_t, allow_x=True, lets=lets)
        return compile_tree(tree, d, coefs, key)

    reaction = prog(f"{fld}.pde.reaction", pde.get("reaction", "0"), allow_u=True, allow_t=True)
    time = spec.get("time")
    f_t = f"{fld}.time"
    if not isinstance(time, Mapping):
        raise PdeError(f_t, "must be an object with horizon and terminal")
    bad = set(time) - set(TIME_FIELDS)
    if bad:
        raise PdeError(f_t, f"unknown fields {sorted(bad)} (use {', '.join(TIME_FIELDS)})")
    if time.get("horizon") is None:
        raise PdeError(f"{f_t}.horizon", "is required (the terminal time T)")
    T = _const(time["horizon"], d, f"{f_t}.horizon")
    if not 0 < T <= MAX_HORIZON:
        raise PdeError(f"{f_t}.horizon", f"must be in (0, {MAX_HORIZON:g}]")
    if time.get("terminal") is None:
        raise PdeError(f"{f_t}.terminal", "is required (g(x) = u(T, x))")
    g = prog(f"{f_t}.terminal", time["terminal"])
    rule = _choice(time, "rule", RULES, "hard", f_t)
    if domain is not None:
        _domain_rules(time, rule, f_t)
    weight = _num(time, "terminal_weight", d, f_t, 20.0)
    if time.get("terminal_weight") is not None and rule != "soft":
        raise PdeError(f"{f_t}.terminal_weight", "only with rule 'soft' (the hard rule satisfies u(T, ·) = g exactly)")
    if not 0 < weight <= 1e6:
        raise PdeError(f"{f_t}.terminal_weight", "must be in (0, 10^6]")
    law = _choice(time, "law", LAWS, "gaussian", f_t) if domain is None else "domain"
    train = _choice(time, "train_law", TRAIN_LAWS, "marginal", f_t)
    pattern = _origin(time.get("origin"), f"{f_t}.origin")
    boundary = prog(f"{fld}.boundary", spec["boundary"], allow_t=True) if spec.get("boundary") is not None else None
    if law == "gaussian" and nu <= 0:
        raise PdeError(f"{f_t}.law", "'gaussian' spreads points as x₀ + √(2νt)ξ: it needs pde.operator.laplacian > 0")
    if law == "gbm":
        if kappa <= 0:
            raise PdeError(
                f"{f_t}.law", "'gbm' (x_i = x₀_i exp(σ√t ξ − σ²t/2), σ² = 2κ) needs pde.operator.diffusion > 0"
            )
        if min(pattern) <= 0:
            raise PdeError(f"{f_t}.origin", "the gbm law needs a positive origin (x₀_i > 0)")
    if train == "paths" and law != "gaussian":
        raise PdeError(f"{f_t}.train_law", "'paths' are Brownian paths x₀ + √(2ν)W: they need law 'gaussian'")
    ref = time.get("reference")
    if ref is not None:
        ref = _const(ref, d, f"{f_t}.reference")
        if ref == 0:
            raise PdeError(f"{f_t}.reference", "must be non-zero (the reported error is relative to it)")
    solution = time.get("solution")
    exact_prog = None
    exact = None
    if spec.get("exact") is not None:
        if solution is not None:
            raise PdeError(f"{f_t}.solution", "exact and solution are exclusive (give one closed form)")
        exact_prog = prog(f"{fld}.exact", spec["exact"], allow_t=True)
        exact = "expression"
    terminal = ExprTerminal(g)
    view = None
    u_id = find_op(reaction, "u")
    r_const = ScalarView(reaction, u_id).constant
    if r_const is None or r_const != 0.0:
        view = ScalarView(reaction, u_id)
    if solution is not None:
        if solution not in SOLUTIONS:
            raise PdeError(f"{f_t}.solution", f"must be one of {', '.join(SOLUTIONS)}")
        others = [k for k, v in (("diffusion", kappa), ("drift", beta), ("gradient_power", rho), ("constant", c0)) if v]
        if view is not None:
            others.append("reaction")
        if nu <= 0 or mu == 0 or others:
            raise PdeError(
                f"{f_t}.solution",
                "'cole_hopf' solves u_t + νΔu + μ|∇u|² = 0 (ν > 0, μ ≠ 0, nothing else)"
                + (f"; remove {', '.join(others)}" if others else ""),
            )
        if terminal.form not in ("radial", "constant"):
            raise PdeError(f"{f_t}.solution", "'cole_hopf' here needs a radial terminal g(norm2(x))")
        exact = solution
    problem = SpecParabolicProblem(
        str(spec.get("name", "user")),
        d,
        T,
        terminal,
        nu=nu,
        kappa=kappa,
        beta=beta,
        reaction="expression",
        grad_sq=mu,
        grad_pow=rho,
        power=power,
        const=c0,
        law=law,
        train_law="paths" if train == "paths" else None,
        terminal_rule=rule,
        terminal_weight=weight,
        x0="pattern",
        exact=exact,
        reference=ref,
        reaction_view=view,
        exact_prog=exact_prog,
        pattern=pattern,
        domain_obj=domain,
        boundary_prog=boundary,
    )
    if not check_only or small:
        if domain is not None:
            _check_domain(problem, fld)
        if exact_prog is not None:
            _check_terminal(problem, f"{fld}.exact")
    return problem


def _domain_rules(time: Mapping, rule: str, f_t: str) -> None:
    """What a bounded domain excludes: the soft rule, the Brownian/gbm laws, the Cole–Hopf route (all R^d)."""
    if rule != "hard":
        raise PdeError(f"{f_t}.rule", "a bounded domain needs the hard rule (u = G + (T − t)·B(x)·N)")
    for key in ("law", "train_law"):
        if time.get(key) is not None:
            raise PdeError(
                f"{f_t}.{key}", "leave it out on a bounded domain: points follow the domain's law, t ~ U[0, T]"
            )
    if time.get("solution") is not None:
        raise PdeError(f"{f_t}.solution", "'cole_hopf' is a solution on R^d, not on a bounded domain")


def _check_sample(p: SpecParabolicProblem) -> tuple[int, torch.Generator]:
    """(n, generator) of the submit-time checks: 2 … 16 points within 2^21 numbers, seed 12345."""
    return max(2, min(16, (1 << 21) // p.dim)), torch.Generator().manual_seed(12345)


def _agrees(value: Tensor, ref: Tensor, scale: float) -> bool:
    """``value`` finite and within EXACT_CHECK_TOL·scale + 1e-12 of ``ref`` at every point."""
    bound = EXACT_CHECK_TOL * max(scale, 1e-300) + 1e-12
    return bool(torch.isfinite(value).all()) and not float((value - ref).abs().max()) > bound


def _check_domain(p: SpecParabolicProblem, fld: str) -> None:
    """x₀ inside Ω (the reference point and the curve u(t, x₀) live there), and h(·, T) = g on ∂Ω (else no u
    meets both the terminal and the boundary values)."""
    dom, x0 = p.domain_obj, p.origin(torch.float64)
    if dom.kind == "cube":
        inside = bool(((x0 > dom.low) & (x0 < dom.high)).all())
    else:
        lo, hi = dom.r_interval
        inside = lo < float(x0.norm()) < hi if dom.kind == "annulus" else float(x0.norm()) < hi
    if not inside:
        raise PdeError(f"{fld}.time.origin", "must lie inside the domain (x₀ = 0 is not in an annulus: give one)")
    if p.boundary_prog is None:
        return
    n, gen = _check_sample(p)
    xb = p.domain_obj.sample_boundary(n, gen, torch.float64)
    h, g = p.boundary_value(xb, torch.full((n,), p.T, dtype=torch.float64)), p.terminal.value(xb)
    if not _agrees(h, g, max(float(g.abs().max()), float(h.abs().max()))):
        raise PdeError(f"{fld}.boundary", "h(x, T) differs from time.terminal g(x) on the boundary: they must agree")


def _check_terminal(p: SpecParabolicProblem, fld: str) -> None:
    """u*(x, T) = g(x) at seeded points of the law at t = T (else the exact solution is not this problem's)."""
    n, gen = _check_sample(p)
    if p.domain_obj is None:
        xT = terminal_points(p, n, gen, torch.float64)
        x, t = xT[:, : p.dim], xT[:, p.dim]
    else:
        x, t = p.sample_domain(n, gen, torch.float64), torch.full((n,), p.T, dtype=torch.float64)
    u, g = p.u_exact(x, t), p.terminal.value(x)
    if not _agrees(u, g, float(g.abs().max())):
        raise PdeError(fld, "u*(x, T) differs from time.terminal g(x): the exact solution must meet the terminal value")
    if p.domain_obj is not None:  # and u* = h on ∂Ω at uniform times
        xb = p.domain_obj.sample_boundary(n, gen, torch.float64)
        tb = torch.rand(n, generator=gen, dtype=torch.float64) * p.T
        u, h = p.u_exact(xb, tb), p.boundary_value(xb, tb)
        if not _agrees(u, h, float(h.abs().max())):
            what = "boundary h(x, t)" if p.boundary_prog is not None else "time.terminal g(x) (no boundary given)"
            raise PdeError(fld, f"u*(x, t) differs from the {what} on the domain's boundary")
