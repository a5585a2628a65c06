"""The job spec: a pydantic model validated at the boundary (CLI, REST), converted to frozen configs.

A spec is data only: names are checked against fixed catalogues, numbers are bounded and finite, unknown
fields are refused. ``solver`` fields are generated from the knob registry (``knobs.KNOBS``); the ones left out
take the chosen method's complete preset (``config.PRESETS``). Validating a ``JobSpec`` also builds its
``RunConfig`` and checks every option combination (``build.conflicts``): an impossible combination is a
validation error naming the fields, so CLI and REST refuse it before a job exists.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from .build import PRESET_KNOBS, conflicts, run_config
from .config import FIRST_ORDER_METHODS, RunConfig
from .knobs import KNOBS, Knob
from .parabolic.problems import PARABOLIC_NAMES
from .pde.schema import PdeFields
from .problems import CATALOGUE

MAX_DIM = 10_000_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, strict=True)


class ProblemSpec(PdeFields):
    """A catalogue ``name``, or the user's own PDE written out (``pde``, ``domain``, …: docs/pde.md, SPEC §3.1)."""

    name: Literal[tuple(CATALOGUE) + PARABOLIC_NAMES] | None = None  # type: ignore[valid-type]  # parabolic: docs/time-dependent.md
    dim: int = Field(ge=3, le=MAX_DIM, description="spatial dimension d")
    seed: int = Field(0, ge=0, lt=2**63, description="seed of the coefficients c_i")


class ModelSpec(_Strict):
    width: int = Field(128, ge=1, le=4096)
    depth: int = Field(4, ge=2, le=16, description="number of weight matrices")


def _spec_field(k: Knob) -> tuple[object, object]:
    """(annotation, Field) of knob ``k`` in ``SolverSpec``: preset knobs default to None (the method's value)."""
    kind = Literal[k.choices] if k.choices else k.type  # type: ignore[valid-type]
    nullable = k.preset or k.nullable
    note = " (default: the method's preset)" if k.preset else ""
    field = Field(None if k.preset else k.default, ge=k.ge, gt=k.gt, le=k.le, lt=k.lt, description=k.meaning + note)
    return (kind | None if nullable else kind), field


SolverSpec = create_model(
    "SolverSpec",
    __base__=_Strict,
    __doc__="The solver section: every knob of ``knobs.KNOBS``; preset knobs left out take the method's preset.",
    __module__=__name__,
    **{k.name: _spec_field(k) for k in KNOBS},
)


class EvalSpec(_Strict):
    test_points: int = Field(2000, ge=1, le=10_000_000)
    every: int = Field(100, ge=1, le=10_000_000, description="evaluate every this many steps")
    sample_points: int = Field(2000, ge=1, le=1_000_000, description="test points saved in samples.npz")


class ResourcesSpec(_Strict):
    workers: int = Field(1, ge=1, le=1024)
    gpus_per_worker: float = Field(0, ge=0, le=16)


class JobSpec(_Strict):
    problem: ProblemSpec
    model: ModelSpec = ModelSpec()
    solver: SolverSpec = SolverSpec()
    eval: EvalSpec = EvalSpec()
    resources: ResourcesSpec = ResourcesSpec()
    seed: int = Field(0, ge=0, lt=2**63)
    dtype: Literal["float32", "float64"] = "float32"
    checkpoint_every: int = Field(0, ge=0, le=10_000_000, description="steps between checkpoints (0: auto)")

    @model_validator(mode="after")
    def _combinations(self) -> JobSpec:
        """Build the run configuration and refuse every conflicting combination, one error per field involved."""
        given = {f for f in self.solver.model_fields_set if getattr(self.solver, f) is not None}  # null: unset
        cfg = run_config(self)
        found = conflicts(cfg, given)
        if not found:
            return self
        errors = []
        for c in found:
            from_preset = [f for f in c.fields if f in PRESET_KNOBS and f not in given]
            msg = c.msg
            if from_preset:
                values = ", ".join(f"{f}={_preset_value(cfg, f)!r}" for f in from_preset)
                chosen = f" ({cfg.solver.method_choice})" if cfg.solver.method_choice else ""
                msg += f" ({values} from the preset of method {cfg.solver.method!r}{chosen})"
            fields = list(c.fields) + (["method"] if from_preset and "method" not in c.fields else [])
            for f in fields:
                loc = tuple(f.split(".")) if "." in f else ("solver", f)
                errors.append(
                    InitErrorDetails(
                        type=PydanticCustomError("conflict", "{msg}", {"msg": msg}), loc=loc, input=_at(self, loc)
                    )
                )
        raise ValidationError.from_exception_data("JobSpec", errors)

    def to_config(self) -> RunConfig:
        """The frozen run configuration (``build.run_config``; combinations were checked at validation)."""
        return run_config(self)


def _at(spec: JobSpec, loc: tuple[str, ...]) -> object:
    node: object = spec
    for part in loc:
        node = getattr(node, part, None)
    return node


def _preset_value(cfg: RunConfig, name: str) -> object:
    s = cfg.solver
    return getattr(s.adam if s.method in FIRST_ORDER_METHODS else s.zo, name, None)
