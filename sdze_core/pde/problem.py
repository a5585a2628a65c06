"""A user PDE (SPEC §3.1) built from its JSON form: validated, compiled, and shaped like a catalogue Problem.

The equation is ``a·Δu + b·Δ²u + F(u) = f`` on the domain, ``u = g`` on its boundary (exactly one of a, b
non-zero), and the network is ``u = g(x) + B(x)·N(x)`` (B: ``domain``). The engine sees the equation
divided by the operator's coefficient and shifted by g, so that derivatives of g never enter it:

    R = L̂[B·N](x) + F̃(g + B·N) − f̃(x),   F̃ = F/a,   f̃ = f/a − Δg      (b·Δ² likewise, with Δ²g)

``source`` returns f̃ (the *effective* source), ``boundary_value`` returns g, ``nonlinearity`` F̃.
When ``exact`` is given and ``source`` is not, f = a·Δu* + F(u*) is derived exactly (``derive``); the
biharmonic operator then needs ``source`` (docs/pde.md says why). ``boundary`` defaults to 0 when u*
vanishes on the boundary (checked at seeded boundary points); otherwise it must be given.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from .compile import Program, compile_tree
from .derive import Laplacian
from .domain import KINDS, Domain
from .expr import COEF_NAME, MAX_COEF_VECTORS, RESERVED, PdeError, parse, parse_lets

MAX_REACTION_CHARS = 2_000
CHECK_VANISHING_MAX_DIM = 100_000  # at submit, "u* = 0 on the boundary" is checked up to this d (else at job start)
_LENGTH = re.compile(r"\s*d\s*(?:-\s*(\d))?\s*\Z")


def _const(v: Any, d: int, fld: str) -> float:
    """A domain number: a JSON number or a constant expression in d, e.g. "sqrt(d)"."""
    if isinstance(v, bool) or v is None:
        raise PdeError(fld, "must be a number or a constant expression in d")
    if isinstance(v, (int, float)):
        val = float(v)
    else:
        prog = compile_tree(parse(v, fld), d, {}, fld)
        if prog.instrs[prog.root].op != "num":
            raise PdeError(fld, "must be constant (numbers and d only)")
        val = float(prog.instrs[prog.root].const)
    if not math.isfinite(val):
        raise PdeError(fld, "must be finite")
    return val


def _coefficients(spec: Mapping, d: int, fld: str, draw: bool = True) -> dict[str, Tensor]:
    if not isinstance(spec, Mapping):
        raise PdeError(fld, "must be an object {name: {law, seed, length} | {values}}")
    if len(spec) > MAX_COEF_VECTORS:
        raise PdeError(fld, f"at most {MAX_COEF_VECTORS} coefficient vectors")
    out: dict[str, Tensor] = {}
    for name, c in spec.items():
        f = f"{fld}.{name}"
        if not isinstance(name, str) or not COEF_NAME.match(name) or name in RESERVED:
            raise PdeError(f, "a coefficient name is a letter then up to 15 letters/digits/_, not a reserved name")
        if not isinstance(c, Mapping):
            raise PdeError(f, "must be an object")
        extra = set(c) - {"law", "seed", "length", "values", "low", "high"}
        if extra:
            raise PdeError(f, f"unknown fields {sorted(extra)}")
        m = _LENGTH.match(str(c.get("length", "d")))
        if m is None:
            raise PdeError(f"{f}.length", 'must be "d" or "d-k" with 0 <= k <= 9')
        n = d - int(m.group(1) or 0)
        if n < 1:
            raise PdeError(f"{f}.length", f"is {n} at d={d}")
        if not draw:  # validation only: lengths matter, values do not (uninitialised, no O(d) work)
            if "values" in c and (not isinstance(c["values"], list) or len(c["values"]) != n):
                raise PdeError(f"{f}.values", f"must be a list of {n} numbers (length {c.get('length', 'd')})")
            out[name] = torch.empty(n, dtype=torch.float64)
            continue
        if "values" in c:
            vals = c["values"]
            if not isinstance(vals, list) or len(vals) != n:
                raise PdeError(f"{f}.values", f"must be a list of {n} numbers (length {c.get('length', 'd')})")
            try:
                t = torch.tensor([float(v) for v in vals], dtype=torch.float64)
            except (TypeError, ValueError) as e:
                raise PdeError(f"{f}.values", "must be numbers") from e
            if not torch.isfinite(t).all():
                raise PdeError(f"{f}.values", "must be finite")
            out[name] = t
            continue
        law = c.get("law", "normal")
        seed = c.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
            raise PdeError(f"{f}.seed", "must be an integer in [0, 2^63)")
        gen = torch.Generator().manual_seed(seed)
        if law == "normal":  # float32 draw widened, as the catalogue draws its c_i
            out[name] = torch.randn(n, generator=gen, dtype=torch.float32).double()
        elif law == "uniform":
            lo, hi = _const(c.get("low", 0.0), d, f"{f}.low"), _const(c.get("high", 1.0), d, f"{f}.high")
            if not lo < hi:
                raise PdeError(f, "uniform needs low < high")
            out[name] = torch.rand(n, generator=gen, dtype=torch.float32).double() * (hi - lo) + lo
        else:
            raise PdeError(f"{f}.law", "must be 'normal' or 'uniform' (or give values)")
    return out


def _domain(spec: Any, d: int, fld: str) -> Domain:
    if not isinstance(spec, Mapping) or spec.get("kind") not in KINDS:
        raise PdeError(f"{fld}.kind", f"must be one of {', '.join(KINDS)}")
    kind = spec["kind"]
    allowed = {"ball": {"radius"}, "annulus": {"inner", "outer"}, "cube": {"low", "high"}}[kind]
    extra = set(spec) - allowed - {"kind"}
    if extra:
        raise PdeError(fld, f"unknown fields {sorted(extra)} for a {kind}")
    nums = {k: _const(spec[k], d, f"{fld}.{k}") for k in allowed if k in spec}
    dom = Domain(kind, d, **nums)
    try:
        dom.validate()
    except ValueError as e:
        raise PdeError(fld, str(e)) from e
    return dom


class PdeProblem:
    """A compiled user PDE with the interface of ``problems.Problem`` (what the engines and evaluation use)."""

    def __init__(
        self,
        spec: Mapping,
        dtype: torch.dtype = torch.float64,
        name: str = "user",
        fld: str = "problem",
        check_only: bool = False,
    ):
        if not isinstance(spec, Mapping):
            raise PdeError(fld, "must be an object")
        known = {"dim", "domain", "pde", "boundary", "exact", "coefficients", "name", "let"}
        extra = set(spec) - known
        if extra:
            raise PdeError(fld, f"unknown fields {sorted(extra)}")
        d = spec.get("dim")
        if not isinstance(d, int) or isinstance(d, bool) or not 2 <= d <= 10_000_000:
            raise PdeError(f"{fld}.dim", "must be an integer in [2, 10^7]")
        self.spec = dict(spec)
        self.name, self.dim = name, d
        self.domain_obj = _domain(spec.get("domain"), d, f"{fld}.domain")
        small = d <= CHECK_VANISHING_MAX_DIM  # cheap enough to draw and evaluate at submit
        coefs = _coefficients(spec.get("coefficients", {}), d, f"{fld}.coefficients", draw=not check_only or small)
        self.coefficients = coefs
        self.c = next(iter(coefs.values())) if coefs else torch.zeros(0, dtype=torch.float64)
        names = frozenset(coefs)
        lets = parse_lets(spec.get("let"), f"{fld}.let", names, allow_t=False)
        pde = spec.get("pde")
        if not isinstance(pde, Mapping) or set(pde) - {"operator", "reaction", "source"}:
            raise PdeError(f"{fld}.pde", "must be an object with operator, reaction, source")
        op = pde.get("operator", {"laplacian": 1.0})
        if not isinstance(op, Mapping) or set(op) - {"laplacian", "biharmonic"}:
            raise PdeError(f"{fld}.pde.operator", "must be {laplacian: a} or {biharmonic: b}")
        a = _const(op.get("laplacian", 0.0), d, f"{fld}.pde.operator.laplacian")
        b = _const(op.get("biharmonic", 0.0), d, f"{fld}.pde.operator.biharmonic")
        if (a != 0) == (b != 0):
            raise PdeError(f"{fld}.pde.operator", "exactly one of laplacian, biharmonic must be non-zero")
        self.order = 2 if a != 0 else 4
        self.coef_op = a if a != 0 else b
        self.operator = "laplacian" if a != 0 else "biharmonic"

        def prog(key: str, text: str, allow_u: bool = False) -> Program:
            f = f"{fld}.{key}"
            if allow_u and isinstance(text, str) and len(text) > MAX_REACTION_CHARS:
                raise PdeError(f, f"longer than {MAX_REACTION_CHARS} characters")
            return compile_tree(parse(text, f, names, allow_u=allow_u, lets=lets), d, coefs, f)

        self.reaction = prog("pde.reaction", pde.get("reaction", "0"), allow_u=True)
        self.exact = prog("exact", spec["exact"]) if spec.get("exact") is not None else None
        self.given_source = prog("pde.source", pde["source"]) if pde.get("source") is not None else None
        if self.given_source is None and self.exact is None:
            raise PdeError(f"{fld}.pde.source", "is required when exact is not given")
        self._exact_lap = None
        if self.given_source is None:
            if self.order == 4:
                raise PdeError(
                    f"{fld}.pde.source",
                    "is required for the biharmonic operator (Δ²u* is not derived automatically: docs/pde.md)",
                )
            self._exact_lap = Laplacian(self.exact)  # raises PdeError naming `exact` if not differentiable
        if spec.get("boundary") is not None:
            self.g = prog("boundary", spec["boundary"])
        elif self.exact is not None:
            self.g = prog("boundary", "0")
            if not check_only or small:
                self._check_vanishing(fld)
        else:
            raise PdeError(f"{fld}.boundary", "is required when exact is not given")
        self.g_const = self.g.instrs[self.g.root].op == "num"
        self.g_zero = self.g_const and float(self.g.instrs[self.g.root].const) == 0.0
        self._g_lap = None
        if not self.g_const:
            if self.order == 4:
                raise PdeError(f"{fld}.boundary", "must be a constant for the biharmonic operator (Δ²g is not derived)")
            self._g_lap = Laplacian(self.g)
        self._rdual = _Dual(self.reaction)

    def _check_vanishing(self, fld: str) -> None:
        gen = torch.Generator().manual_seed(12345)
        n = max(2, min(16, (1 << 21) // self.dim))  # at most ~2^22 numbers
        xb = self.domain_obj.sample_boundary(n, gen, torch.float64)
        xi = self.domain_obj.sample(n, gen, torch.float64)
        ub, ui = self.exact(xb), self.exact(xi)
        scale = max(float(ui.abs().max()), 1e-300)
        if not torch.isfinite(ub).all() or float(ub.abs().max()) > 1e-8 * scale + 1e-12:
            raise PdeError(
                f"{fld}.boundary",
                "exact does not vanish on the boundary: give boundary values g(x) (any smooth extension of them)",
            )

    # -- the catalogue Problem's interface ------------------------------------------------------------------
    @property
    def domain(self) -> str:
        return self.domain_obj.kind

    @property
    def r_interval(self) -> tuple[float, float]:
        return self.domain_obj.r_interval

    @property
    def box(self) -> tuple[float, float] | None:
        return self.domain_obj.box

    @property
    def boundary_poly(self):
        return self.domain_obj.boundary_poly

    @property
    def has_exact(self) -> bool:
        return self.exact is not None

    def boundary(self, x: Tensor) -> Tensor:
        return self.domain_obj.boundary(x)

    def boundary_value(self, x: Tensor) -> Tensor:
        """g(x), shape (N,)."""
        return self.g(x)

    def ansatz(self, x: Tensor, n: Tensor) -> Tensor:
        """u = g(x) + B(x)·N(x) from the network's output n (N,)."""
        return self.g(x).to(n.dtype) + self.boundary(x).to(n.dtype) * n

    def u_exact(self, x: Tensor) -> Tensor:
        if self.exact is None:
            raise ValueError("this problem has no exact solution")
        return self.exact(x)

    def laplacian_exact(self, x: Tensor) -> Tensor:
        return Laplacian(self.exact)(x)[1] if self._exact_lap is None else self._exact_lap(x)[1]

    def f(self, x: Tensor) -> Tensor:
        """The source f(x) of the equation as written (given or derived), shape (N,)."""
        if self.given_source is not None:
            return self.given_source(x)
        u, lap = self._exact_lap(x)
        return self.coef_op * lap + self.reaction(u=u)

    def source(self, x: Tensor) -> Tensor:
        """The effective source f̃ = f/a − L[g] the engine's residual uses, shape (N,)."""
        f = self.f(x) / self.coef_op
        if self._g_lap is not None:
            f = f - self._g_lap(x)[1]
        return f

    def nonlinearity(self, u: Tensor) -> Tensor:
        """F̃(u) = F(u)/a."""
        return self.reaction(u=u) / self.coef_op

    def nonlinearity_derivative(self, u: Tensor) -> Tensor:
        return self._rdual(u) / self.coef_op


class _Dual:
    """F'(u) of a reaction program by forward-mode dual numbers (u ↦ (F, F'))."""

    def __init__(self, prog: Program):
        self.p = prog

    def __call__(self, u: Tensor) -> Tensor:
        from .compile import FUNC_TABLE

        vals: dict[int, tuple] = {}
        for i, ins in enumerate(self.p.instrs):
            op = ins.op
            if op == "num":
                vals[i] = (torch.tensor(ins.const, dtype=u.dtype, device=u.device), 0.0)
            elif op == "u":
                vals[i] = (u, 1.0)
            elif op in FUNC_TABLE:
                a, da = vals[ins.args[0]]
                y = FUNC_TABLE[op][0](a)
                vals[i] = (y, FUNC_TABLE[op][1](a, y) * da)
            elif op == "pow":
                a, da = vals[ins.args[0]]
                p = ins.const
                ip = int(p) if p == int(p) else p
                vals[i] = (a**ip, p * a ** (ip - 1) * da if p != 0 else 0.0)
            else:
                (a, da), (b, db) = vals[ins.args[0]], vals[ins.args[1]]
                if op == "+":
                    vals[i] = (a + b, da + db)
                elif op == "-":
                    vals[i] = (a - b, da - db)
                elif op == "*":
                    vals[i] = (a * b, a * db + b * da)
                else:
                    vals[i] = (a / b, (da * b - a * db) / (b * b))
        d = vals[self.p.root][1]
        return d.expand(u.shape) if isinstance(d, Tensor) else torch.full_like(u, float(d))


def problem_from_spec(
    spec: Mapping, dtype: torch.dtype = torch.float64, fld: str = "problem", check_only: bool = False
) -> PdeProblem:
    """Validate and compile a §3.1 problem; every error is a ``PdeError`` naming the field and position.

    ``check_only`` (submit-time validation) does no O(d) work: coefficient vectors are not drawn, and the
    "u* vanishes on the boundary" check runs only up to d = CHECK_VANISHING_MAX_DIM.
    """
    if isinstance(spec, Mapping) and "time" in spec:  # a terminal-value problem u_t + Lu + F = 0 (pde/parabolic.py)
        from .parabolic import parabolic_from_spec

        return parabolic_from_spec(spec, fld=fld, check_only=check_only)
    name = str(spec.get("name", "user")) if isinstance(spec, Mapping) else "user"
    return PdeProblem(spec, dtype, name=name, fld=fld, check_only=check_only)
