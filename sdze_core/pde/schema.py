"""The §3.1 user-PDE form as a pydantic model (the service's and CLI's boundary); see docs/pde.md.

Field validators parse each expression (syntax, names, bounds): an error is located at that field
(``problem.pde.source``) and its message gives the character position. The model validator then binds the
whole problem at its d without O(d) work (``problem_from_spec(check_only=True)``): offsets against d,
empty windows, derivability of a derived source, the operator and domain rules; its errors name the field
path in the message. A spec that validates here compiles in the worker.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .expr import MAX_CHARS, MAX_COEF_VECTORS, MAX_LETS, PdeError, parse
from .problem import problem_from_spec

MAX_DIM = 10_000_000
Number = float | str  # a JSON number or a constant expression in d ("sqrt(d)")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, strict=True)


def _syntax(
    text: str | None, fld: str, names: set[str] | None, allow_u: bool = False, allow_t: bool = False
) -> str | None:
    if text is None:
        return None
    try:  # syntax only: whether x and t may appear depends on the whole problem (stationary or time-dependent)
        parse(text, fld, names, allow_u=allow_u, allow_t=allow_t, allow_x=True if allow_u else None)
    except PdeError as e:
        pos = -1 if e.pos is None else e.pos
        raise PydanticCustomError(
            "pde_expression", "{msg} (at position {position})", {"msg": e.msg, "position": pos}
        ) from None
    return text


class DomainSpec(_Strict):
    kind: Literal["ball", "annulus", "cube"]
    radius: Number | None = Field(None, description="ball radius (default 1)")
    inner: Number | None = Field(None, description="annulus inner radius (default 1)")
    outer: Number | None = Field(None, description="annulus outer radius (default 2)")
    low: Number | None = Field(None, description="cube lower bound of every coordinate (default -1)")
    high: Number | None = Field(None, description="cube upper bound of every coordinate (default 1)")


class OperatorSpec(_Strict):
    laplacian: Number | None = Field(None, description="coefficient a of a·Δu (time-dependent: ν of νΔu)")
    biharmonic: Number | None = Field(None, description="coefficient b of b·Δ²u (stationary only)")
    diffusion: Number | None = Field(None, description="κ of κ Σ_i x_i² ∂²_ii u (time-dependent only)")
    drift: Number | None = Field(None, description="β of β x·∇u (time-dependent only)")


class PdeSpec(_Strict):
    operator: OperatorSpec = OperatorSpec(laplacian=1.0)
    reaction: str = Field(
        "0", max_length=2000, description="F(u) (stationary), F(u; x, t) (time-dependent): an expression"
    )
    source: str | None = Field(None, max_length=MAX_CHARS, description="f(x); derived from exact when left out")
    gradient_square: Number | None = Field(None, description="μ of μ|∇u|² (time-dependent only)")
    gradient_power: Number | None = Field(None, description="ρ of ρ Σ_i |∂_i u|^p (time-dependent only)")
    power: Number | None = Field(None, description="p of ρ Σ_i |∂_i u|^p, in [1, 8]")
    constant: Number | None = Field(None, description="c₀, a constant term (time-dependent only)")

    @field_validator("reaction")
    @classmethod
    def _reaction(cls, v: str) -> str:
        return _syntax(v, "pde.reaction", None, allow_u=True, allow_t=True)

    @field_validator("source")
    @classmethod
    def _source(cls, v: str | None) -> str | None:
        return _syntax(v, "pde.source", None)  # coefficient names are checked with the whole problem


class TimeSpec(_Strict):
    """The terminal-value form u_t + L u + F = 0 on [0, T) × R^d (or × a domain), u(T, x) = g(x) (docs/pde.md)."""

    horizon: Number = Field(description="T, the terminal time (> 0)")
    terminal: str = Field(max_length=MAX_CHARS, description="g(x) = u(T, x), an expression in x")
    rule: Literal["hard", "soft"] = Field(
        "hard", description="hard: u = g + (T − t)·N; soft: u = N plus a terminal-value loss"
    )
    terminal_weight: float | None = Field(None, gt=0, le=1e6, description="λ of the soft rule's loss (default 20)")
    law: Literal["gaussian", "gbm"] | None = Field(
        None,
        description="points on R^d: x₀ + √(2νt)ξ (default), or x₀·exp(σ√t ξ − σ²t/2), σ² = 2κ; with a domain: its law",
    )
    train_law: Literal["marginal", "paths"] | None = Field(
        None, description="training batches on R^d: the law's marginal (default), or Brownian paths from x₀"
    )
    origin: list[float] | None = Field(None, min_length=1, max_length=64, description="x₀: a pattern tiled to d")
    reference: Number | None = Field(None, description="u(0, x₀), where it is the only reference")
    solution: Literal["cole_hopf"] | None = Field(None, description="a closed-form route instead of exact")

    @field_validator("terminal")
    @classmethod
    def _terminal(cls, v: str) -> str:
        return _syntax(v, "time.terminal", None)


class CoefficientSpec(_Strict):
    law: Literal["normal", "uniform"] = "normal"
    seed: int = Field(0, ge=0, lt=2**63)
    length: str = Field("d", pattern=r"^\s*d\s*(-\s*\d)?\s*$", description='"d" or "d-k", 0 <= k <= 9')
    values: list[float] | None = Field(None, description="explicit coefficients (then law and seed are unused)")
    low: Number | None = None
    high: Number | None = None


class PdeFields(_Strict):
    """The fields of a written-out PDE (SPEC §3.1). ``ProblemSpec`` (the job's ``problem``) derives from it: a
    problem is either a catalogue ``name`` or ``pde`` + ``domain`` (+ ``boundary``, ``exact``, ``coefficients``)."""

    coefficients: dict[str, CoefficientSpec] | None = Field(
        None, max_length=MAX_COEF_VECTORS, description="named coefficient vectors c[i] (user PDEs)"
    )
    domain: DomainSpec | None = Field(None, description="ball, annulus or cube (user PDEs)")
    pde: PdeSpec | None = Field(None, description="operator, reaction F(u), source f(x): the PDE written out")
    boundary: str | None = Field(
        None, max_length=MAX_CHARS, description="g(x) (default 0 if exact vanishes there); h(x, t) with time"
    )
    exact: str | None = Field(None, max_length=MAX_CHARS, description="u*(x), or u*(x, t) with time; optional")
    time: TimeSpec | None = Field(None, description="horizon and terminal condition: a time-dependent problem")
    let: dict[str, str] | None = Field(
        None, max_length=MAX_LETS, description="named subexpressions {name: expression}, usable in every expression"
    )

    @field_validator("let")
    @classmethod
    def _lets(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        for name, text in (v or {}).items():
            if len(text) > MAX_CHARS:
                raise PydanticCustomError(
                    "pde_expression", "let.{name}: longer than {n} characters", {"name": name, "n": MAX_CHARS}
                )
            _syntax(text, f"let.{name}", None, allow_u=True, allow_t=True)
        return v

    @field_validator("boundary", "exact")
    @classmethod
    def _expr(cls, v: str | None, info: ValidationInfo) -> str | None:
        # coefficient names (and whether t may appear) are checked with the whole problem
        return _syntax(v, info.field_name, None, allow_t=True)

    @property
    def is_user_pde(self) -> bool:
        return self.pde is not None

    @model_validator(mode="after")
    def _pde_form(self) -> PdeFields:
        name = getattr(self, "name", None)
        if self.pde is None:
            extra = [
                k
                for k in ("coefficients", "domain", "boundary", "exact", "time", "let")
                if getattr(self, k) is not None
            ]
            if extra:
                raise PydanticCustomError(
                    "pde_form", "{fields}: only with a written-out PDE (add pde)", {"fields": ", ".join(extra)}
                )
            if name is None:
                raise PydanticCustomError(
                    "pde_form", "give a catalogue name, or write the PDE out (pde, domain, ...: docs/pde.md)"
                )
            return self
        if name is not None:
            raise PydanticCustomError("pde_form", "name (a catalogue problem) and pde (your own PDE) are exclusive")
        if self.domain is None and self.time is None:
            raise PydanticCustomError("pde_form", "problem.domain: required with pde (or time: a time-dependent PDE)")
        try:
            problem_from_spec(self.as_dict(), check_only=True)
        except PdeError as e:
            raise PydanticCustomError("pde_problem", "{msg}", {"msg": str(e)}) from None
        except (ArithmeticError, ValueError, TypeError, RuntimeError) as e:  # never a 500 for bad input
            raise PydanticCustomError(
                "pde_problem", "problem: cannot be built ({kind}: {msg})", {"kind": type(e).__name__, "msg": str(e)}
            ) from None
        return self

    def as_dict(self) -> dict[str, Any]:
        """The plain JSON form that ``problem_from_spec`` reads: dim and the §3.1 fields (None dropped)."""
        keys = {"dim", "coefficients", "domain", "pde", "boundary", "exact", "time", "let"}
        return {k: v for k, v in self.model_dump(exclude_none=True, mode="json").items() if k in keys}

    def canonical_json(self) -> str:
        """Sorted, compact JSON: what ``ProblemConfig.pde`` carries to the workers."""
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def is_time_dependent(self) -> bool:
        return self.time is not None

    @property
    def order(self) -> int:
        op = self.pde.operator if self.pde is not None else None
        return 4 if op is not None and op.biharmonic not in (None, 0, 0.0) else 2


class UserProblemSpec(PdeFields):
    """A user PDE on its own: ``operator[u] + F(u) = f`` on ``domain``, u = g on its boundary (SPEC §3.1)."""

    dim: int = Field(ge=3, le=MAX_DIM, description="spatial dimension d")


def pde_order(pde_json: str | None) -> int:
    """Derivative order (2 or 4) of a user PDE given as canonical JSON; 2 when None."""
    if not pde_json:
        return 2
    op = json.loads(pde_json).get("pde", {}).get("operator", {})
    return 4 if op.get("biharmonic") not in (None, 0, 0.0) else 2


def parabolic_estimator_conflict(pde_json: str | None, estimator: str) -> str | None:
    """Why ``estimator`` cannot serve a time-dependent user PDE (canonical JSON) unbiasedly; None if it can or
    the problem is not time-dependent (the rule of ``parabolic.residual.check_estimator``)."""
    if not pde_json:
        return None
    spec = json.loads(pde_json)
    if "time" not in spec:
        return None
    if estimator not in ("sdgd", "hte", "exact"):
        return f"estimator {estimator!r} is not available for a time-dependent problem; use sdgd, hte or exact"
    pde = spec.get("pde", {})
    coordinatewise = [k for k in ("diffusion",) if pde.get("operator", {}).get(k) not in (None, 0, 0.0, "0")]
    coordinatewise += [k for k in ("gradient_power",) if pde.get(k) not in (None, 0, 0.0, "0")]
    if estimator == "hte" and coordinatewise:
        return (
            f"pde.{'/'.join(coordinatewise)}: a diagonal diffusion or a Σ|∂_i u|^p term needs coordinate directions "
            "(estimator 'sdgd' or 'exact'); Rademacher probes do not separate the coordinates"
        )
    return None
