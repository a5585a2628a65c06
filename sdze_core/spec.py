"""The job spec: a pydantic model validated at the boundary (CLI, REST), converted to frozen configs.

A spec is data only: names are checked against fixed catalogues, numbers are bounded and finite, unknown
fields are refused. ``solver`` fields left out take the chosen method's preset (see ``PRESETS``).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .config import (
    METHODS,
    AdamConfig,
    EvalConfig,
    ModelConfig,
    ProblemConfig,
    RunConfig,
    SolverConfig,
    ZOConfig,
)
from .problems import CATALOGUE

MAX_DIM = 10_000_000

# The default of method "sdze" is the best-measured backprop-free variant (docs/benchmarks.md); the
# published recipe stays reachable as "sdze_published" (random subspaces, CRNS, lazy annealed refresh).
PRESETS: dict[str, dict] = {
    "sdze": dict(
        update="gn",
        w1_basis="data",
        w1_probes="jacobian",
        w1_rank_out=2,
        gn_backtracks=6,
        gradient="forward",
        lr=0.5,
        lr_final_frac=0.1,
        q=8,
        gn_damping=1e-1,
    ),
    "sdze_published": dict(w1_basis="random", refresh_every=10, refresh_growth=1.1, refresh_max=200),
    "sdze_no_crns": dict(w1_basis="random", crns=False),
    "zo_full": dict(perturbation="full", lr=1e-3, lr_last_mult=1.0),
    "sdgd_adam": {},
    "hte_adam": {},
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, strict=True)


class ProblemSpec(_Strict):
    name: Literal[tuple(CATALOGUE)]  # type: ignore[valid-type]
    dim: int = Field(ge=3, le=MAX_DIM, description="spatial dimension d")
    seed: int = Field(0, ge=0, lt=2**63, description="seed of the coefficients c_i")


class ModelSpec(_Strict):
    width: int = Field(128, ge=1, le=4096)
    depth: int = Field(4, ge=2, le=16, description="number of weight matrices")


class SolverSpec(_Strict):
    method: Literal[METHODS] = "sdze"  # type: ignore[valid-type]
    steps: int | None = Field(1000, ge=1, le=100_000_000)
    time_limit_s: float | None = Field(None, gt=0, le=30 * 86400, description="training wall-time budget")
    batch_size: int = Field(100, ge=1, le=100_000, description="collocation points per step per worker")
    estimator: Literal["sdgd", "hte", "gauss", "exact"] | None = Field(
        None, description="spatial estimator (default sdgd for Laplacians, gauss for the biharmonic)"
    )
    samples: int = Field(16, ge=1, le=10_000, description="sampled dimensions / probe vectors per step")
    lr: float | None = Field(None, gt=0, le=10)
    lr_final_frac: float | None = Field(None, ge=0, le=1)
    lr_decay_steps: int | None = Field(
        None, ge=1, le=100_000_000, description="steps over which lr decays (default: the run's steps or budget)"
    )
    # zeroth-order knobs (None → the method's preset)
    update: Literal["sgd", "gn"] | None = Field(None, description="ZO update: normalised SGD or subspace Gauss–Newton")
    q: int | None = Field(None, ge=1, le=4096, description="perturbations per worker per step")
    eps: float | None = Field(None, gt=0, le=1)
    gradient: Literal["two_point", "forward"] | None = None
    crns: bool | None = None
    rank: int | None = Field(None, ge=1, le=4096)
    w1_basis: Literal["random", "data"] | None = None
    w1_rank_out: int | None = Field(None, ge=1, le=4096)
    w1_probes: Literal["random", "jacobian"] | None = Field(
        None, description="W₁ by random probes or by its exact Jacobian in the data basis (update=gn)"
    )
    refresh_every: int | None = Field(None, ge=1, le=1_000_000)
    refresh_growth: float | None = Field(None, ge=1, le=10)
    perturb_hidden_bias: bool | None = None
    lr_last_mult: float | None = Field(None, gt=0, le=1000)
    momentum: float | None = Field(None, ge=0, lt=1)
    optimizer_state: Literal["subspace", "full"] | None = Field(
        None, description="momentum in r×r subspace coordinates (O(Σr²)) or dense per layer (O(P), update=sgd)"
    )
    clip: float | None = Field(None, gt=0, le=1e6)
    gn_damping: float | None = Field(None, ge=0, le=1e6, description="Levenberg–Marquardt damping (update=gn)")
    gn_backtracks: int | None = Field(
        None, ge=0, le=20, description="retries ×10 damping while a step raises the batch's CRN loss (update=gn)"
    )

    @model_validator(mode="after")
    def _budget(self) -> SolverSpec:
        if self.steps is None and self.time_limit_s is None:
            raise ValueError("set steps, time_limit_s, or both")
        return self


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

    def to_config(self) -> RunConfig:
        s = self.solver
        preset = PRESETS[s.method]
        zo_fields = {f.name for f in dataclasses.fields(ZOConfig)}
        zo_kwargs = {k: v for k, v in preset.items() if k in zo_fields}
        for k in zo_fields:
            v = getattr(s, k, None)
            if v is not None:
                zo_kwargs[k] = v
        exact_w1_ok = (zo_kwargs.get("update"), zo_kwargs.get("gradient"), zo_kwargs.get("w1_basis")) == (
            "gn",
            "forward",
            "data",
        )
        if s.w1_probes is None and zo_kwargs.get("w1_probes") == "jacobian" and not exact_w1_ok:
            zo_kwargs["w1_probes"] = "random"  # the preset's exact W₁ columns need what the overrides turned off
        adam = AdamConfig(
            lr=s.lr if s.lr is not None else 1e-3, lr_final_frac=s.lr_final_frac if s.lr_final_frac is not None else 0.0
        )
        biharmonic = CATALOGUE[self.problem.name][2] == "biharmonic"
        estimator = s.estimator or ("gauss" if biharmonic else ("hte" if s.method == "hte_adam" else "sdgd"))
        solver = SolverConfig(
            method=s.method,
            steps=s.steps,
            time_limit_s=s.time_limit_s,
            batch_size=s.batch_size,
            estimator=estimator,
            samples=s.samples,
            lr_decay_steps=s.lr_decay_steps,
            zo=ZOConfig(**zo_kwargs),
            adam=adam,
        )
        return RunConfig(
            problem=ProblemConfig(self.problem.name, self.problem.dim, self.problem.seed),
            model=ModelConfig(self.model.width, self.model.depth),
            solver=solver,
            eval=EvalConfig(self.eval.test_points, self.eval.every, sample_points=self.eval.sample_points),
            seed=self.seed,
            dtype=self.dtype,
            checkpoint_every=self.checkpoint_every,
            workers=self.resources.workers,
        )
