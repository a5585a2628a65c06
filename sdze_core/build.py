"""The one place a job spec becomes a ``RunConfig``, and the one place option combinations are checked.

``solver_config`` starts from the method's complete preset (``config.PRESETS``) and applies the knobs the spec
sets; nothing is switched behind the user's back. ``conflicts`` lists every impossible or meaningless
combination of the resolved configuration, naming the spec fields involved. ``JobSpec`` runs both while it is
validated, so the CLI (``sdze solve``) and REST (``POST /v1/jobs``, 422) refuse a bad combination before a job
exists, and the engine re-checks its own part (``zo_conflicts``) when it is built from a config directly.

Decision on ``w1_probes``: the sdze preset asks for the exact W₁ Jacobian, which needs update "gn", gradient
"forward" and w1_basis "data". Overriding one of those without also setting ``w1_probes: "random"`` is a
conflict (422 naming both fields), not a silent switch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config import (
    FIRST_ORDER_METHODS,
    PRESETS,
    EvalConfig,
    ModelConfig,
    ProblemConfig,
    RunConfig,
    SolverConfig,
    ZOConfig,
)
from .knobs import ADAM_KNOBS, KNOBS
from .memory import estimate
from .method_choice import AUTO, FIRST_ORDER_CHOICE, choose
from .parabolic.hooks import estimator_conflict
from .parabolic.problems import PARABOLIC_CATALOGUE, is_time_dependent
from .pde.schema import parabolic_estimator_conflict, pde_order
from .problems import CATALOGUE

if TYPE_CHECKING:
    from .spec import JobSpec

RUN_KNOBS = tuple(k.name for k in KNOBS if not k.preset)
PRESET_KNOBS = tuple(k.name for k in KNOBS if k.preset)


@dataclass(frozen=True)
class Conflict:
    """An impossible or meaningless combination: the knobs involved (solver field names or dotted paths)."""

    fields: tuple[str, ...]
    msg: str


class ConfigConflict(ValueError):
    """A configuration that cannot run as asked; ``conflicts`` names the fields."""

    def __init__(self, conflicts: list[Conflict]):
        self.conflicts = conflicts
        super().__init__("; ".join(f"{', '.join(c.fields)}: {c.msg}" for c in conflicts))


def is_biharmonic(problem_name: str, pde: str | None = None) -> bool:
    """A fourth-order problem: the catalogue's biharmonic one, or a user PDE (``pde`` JSON) with Δ²."""
    if pde is not None:
        return pde_order(pde) == 4
    return problem_name in CATALOGUE and CATALOGUE[problem_name][2] == "biharmonic"


def solver_config(
    solver, problem_name: str, pde: str | None = None, method: str | None = None, method_choice: str = ""
) -> SolverConfig:
    """``SolverSpec`` → ``SolverConfig``: the method's preset with every knob the spec sets (not None). ``method``
    (with ``method_choice``, why) replaces the spec's ``"auto"`` (``method_choice.choose``)."""
    s = solver
    method = method or s.method
    preset = PRESETS[method]
    overrides = {k: getattr(s, k) for k in PRESET_KNOBS if getattr(s, k) is not None}
    if method in FIRST_ORDER_METHODS:
        adam = dataclasses.replace(preset, **{k: v for k, v in overrides.items() if k in ADAM_KNOBS})
        zo = PRESETS["sdze"]  # not read by a first-order method
    else:
        zo = dataclasses.replace(preset, **overrides)
        adam = PRESETS["sdgd_adam"]  # not read by a zeroth-order method
    estimator = s.estimator or (
        "gauss" if is_biharmonic(problem_name, pde) else ("hte" if method == "hte_adam" else "sdgd")
    )
    return SolverConfig(
        method=method,
        method_choice=method_choice,
        steps=s.steps,
        time_limit_s=s.time_limit_s,
        batch_size=s.batch_size,
        estimator=estimator,
        samples=s.samples,
        point_lifetime=s.point_lifetime,
        lr_decay_steps=s.lr_decay_steps,
        zo=zo,
        adam=adam,
    )


def run_config(spec: JobSpec) -> RunConfig:
    """The full run configuration of a validated spec (no checks: see ``conflicts``); ``method: "auto"`` is
    resolved here (``method_choice``)."""
    pde = spec.problem.canonical_json() if spec.problem.is_user_pde else None
    name = spec.problem.name or "user"
    cfg = RunConfig(
        problem=ProblemConfig(name, spec.problem.dim, spec.problem.seed, pde),
        model=ModelConfig(spec.model.width, spec.model.depth),
        solver=solver_config(spec.solver, name, pde, None if spec.solver.method != AUTO else FIRST_ORDER_CHOICE),
        eval=EvalConfig(spec.eval.test_points, spec.eval.every, sample_points=spec.eval.sample_points),
        seed=spec.seed,
        dtype=spec.dtype,
        checkpoint_every=spec.checkpoint_every,
        workers=spec.resources.workers,
    )
    if spec.solver.method != AUTO:
        return cfg
    given = [k for k in PRESET_KNOBS if k not in ADAM_KNOBS and getattr(spec.solver, k) is not None]
    method, why = choose(name, pde, spec.problem.dim, spec.resources.workers, given, estimate(cfg).total)
    return dataclasses.replace(cfg, solver=solver_config(spec.solver, name, pde, method, why))


def zo_conflicts(zo: ZOConfig) -> list[Conflict]:
    """Combinations of zeroth-order knobs the engine cannot run (field names are ``solver`` fields)."""
    out: list[Conflict] = []
    if zo.perturbation == "full":
        if zo.gradient == "forward":
            out.append(Conflict(("perturbation", "gradient"), "forward-mode gradients need perturbation 'subspace'"))
        if zo.update == "gn":
            out.append(Conflict(("perturbation", "update"), "update 'gn' needs perturbation 'subspace'"))
        if zo.optimizer_state == "full":
            out.append(
                Conflict(("perturbation", "optimizer_state"), "optimizer_state 'full' needs perturbation 'subspace'")
            )
    if zo.optimizer_state == "full" and zo.update != "sgd":
        out.append(
            Conflict(("optimizer_state", "update"), f"optimizer_state 'full' needs update 'sgd', not {zo.update!r}")
        )
    if zo.w1_probes == "jacobian":
        wrong = [
            (name, want, getattr(zo, name))
            for name, want in (("update", "gn"), ("gradient", "forward"), ("w1_basis", "data"))
            if getattr(zo, name) != want
        ]
        if wrong:
            got = ", ".join(f"{n} is {v!r}" for n, _, v in wrong)
            out.append(
                Conflict(
                    ("w1_probes", *(n for n, _, _ in wrong)),
                    f"w1_probes 'jacobian' needs update 'gn', gradient 'forward' and w1_basis 'data' ({got}); "
                    "set w1_probes 'random' to probe W₁ randomly",
                )
            )
    if zo.gn_holdout == "on" and (zo.update != "gn" or zo.gn_backtracks == 0):
        out.append(
            Conflict(
                ("gn_holdout", "update" if zo.update != "gn" else "gn_backtracks"),
                "gn_holdout judges each Gauss–Newton trial step on a held-out batch: it needs update 'gn' and "
                f"gn_backtracks ≥ 1 (update is {zo.update!r}, gn_backtracks {zo.gn_backtracks})",
            )
        )
    two_point_sgd = zo.update == "sgd" and zo.gradient == "two_point" and zo.perturbation == "subspace"
    if not zo.crns and two_point_sgd and zo.w1_basis == "data":
        out.append(
            Conflict(
                ("crns", "w1_basis"),
                "crns false redraws each evaluation's directions, but the data-aligned W₁ basis is the step's own; "
                "use w1_basis 'random'",
            )
        )
    return out


def conflicts(cfg: RunConfig, given: set[str] | None = None) -> list[Conflict]:
    """Every conflict of a resolved configuration. ``given``: the solver fields the spec set explicitly (knobs a
    method ignores are refused only when given); ``None`` treats every knob as given."""
    s = cfg.solver
    out: list[Conflict] = []
    if s.steps is None and s.time_limit_s is None:
        out.append(Conflict(("steps", "time_limit_s"), "set steps, time_limit_s, or both"))
    if s.method in FIRST_ORDER_METHODS:
        ignored = [k for k in PRESET_KNOBS if k not in ADAM_KNOBS and (given is None or k in given)]
        if given is not None and ignored:
            out.append(
                Conflict(
                    tuple(ignored),
                    f"method {s.method!r} is a first-order baseline (autograd + Adam) and ignores zeroth-order knobs",
                )
            )
        if cfg.workers > 1:
            out.append(
                Conflict(
                    ("method", "resources.workers"),
                    f"method {s.method!r} (first-order) runs on one worker; multi-worker runs exchange seeds and "
                    "scalars and are for the zeroth-order methods",
                )
            )
    else:
        out.extend(zo_conflicts(s.zo))
    if is_biharmonic(cfg.problem.name, cfg.problem.pde) and s.estimator != "gauss":
        out.append(Conflict(("estimator", "problem.name"), "the biharmonic operator needs estimator 'gauss'"))
    if s.estimator == "zspace":  # directions from W₁ with the radial boundary correction (estimators.py)
        if cfg.problem.pde is not None:
            out.append(Conflict(("estimator", "problem.pde"), "estimator 'zspace' needs a catalogue problem"))
        if s.method not in FIRST_ORDER_METHODS and (s.zo.perturbation == "full" or not s.zo.crns):
            out.append(Conflict(("estimator", "method"), "estimator 'zspace' needs subspace perturbations with CRNS"))
    if s.point_lifetime > s.batch_size:
        out.append(
            Conflict(
                ("point_lifetime", "batch_size"),
                f"point_lifetime {s.point_lifetime} splits the batch into that many groups, one refreshed per step: "
                f"it can be at most batch_size ({s.batch_size})",
            )
        )
    if s.point_lifetime > 1 and is_time_dependent(cfg.problem.name, cfg.problem.pde):
        out.append(
            Conflict(
                ("point_lifetime", "problem.pde" if cfg.problem.pde is not None else "problem.name"),
                "point_lifetime > 1 is for stationary problems (a time-dependent batch draws its times with its "
                "points and is always fresh)",
            )
        )
    if cfg.problem.name in PARABOLIC_CATALOGUE:  # terminal-value problems: estimators that stay unbiased there
        why = estimator_conflict(cfg.problem.name, s.estimator)
        if why:
            out.append(Conflict(("estimator", "problem.name"), why))
    why = parabolic_estimator_conflict(cfg.problem.pde, s.estimator)  # the same rule for a written-out one
    if why:
        out.append(Conflict(("estimator", "problem.pde"), why))
    return out
