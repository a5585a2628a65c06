"""Plain frozen configurations used inside the core (the pydantic spec is converted to these)."""

from __future__ import annotations

from dataclasses import dataclass

ZO_METHODS = ("sdze", "sdze_published", "sdze_no_crns", "zo_full")
FIRST_ORDER_METHODS = ("sdgd_adam", "hte_adam")
METHODS = ZO_METHODS + FIRST_ORDER_METHODS


@dataclass(frozen=True)
class ProblemConfig:
    name: str
    dim: int
    seed: int = 0


@dataclass(frozen=True)
class ModelConfig:
    width: int = 128
    depth: int = 4


@dataclass(frozen=True)
class ZOConfig:
    """The zeroth-order engine's knobs (SPEC §2.2–2.4, §2.7).

    gradient: "two_point" (δ = [L(θ+εZ) − L(θ−εZ)]/2ε) or "forward" (δ = exact JVP of L along Z).
    perturbation: "subspace" (per-layer U S Vᵀ) or "full" (dense Gaussian on every parameter, MeZO).
    w1_basis: "random" (QR of a Gaussian, refreshed on the lazy schedule) or "data" (span of the batch).
    update: "sgd" (momentum SGD on RMS-normalised δ) or "gn" (subspace Gauss–Newton: per-point Jacobian
    columns of the probes plus the exact output-layer columns, Levenberg–Marquardt solve per batch).
    """

    update: str = "sgd"
    q: int = 8
    eps: float = 1e-3
    gradient: str = "two_point"
    crns: bool = True
    perturbation: str = "subspace"
    rank: int = 4
    w1_basis: str = "random"
    w1_rank_out: int = 4
    w1_probes: str = "random"
    refresh_every: int = 1
    refresh_growth: float = 1.0
    refresh_max: int = 1000
    perturb_hidden_bias: bool = False
    lr: float = 3e-2
    lr_last_mult: float = 3.0
    lr_final_frac: float = 0.0
    momentum: float = 0.9
    optimizer_state: str = "subspace"
    rms_beta: float = 0.99
    clip: float = 5.0
    gn_damping: float = 1e-1
    gn_backtracks: int = 0


@dataclass(frozen=True)
class AdamConfig:
    lr: float = 1e-3
    lr_final_frac: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass(frozen=True)
class SolverConfig:
    method: str = "sdze"
    steps: int | None = 1000
    time_limit_s: float | None = None
    batch_size: int = 100
    estimator: str = "sdgd"
    samples: int = 16
    lr_decay_steps: int | None = None  # fixed decay horizon; None: the run's steps or its estimated budget
    zo: ZOConfig = ZOConfig()
    adam: AdamConfig = AdamConfig()


@dataclass(frozen=True)
class EvalConfig:
    test_points: int = 2000
    every: int = 100
    chunk: int = 2048
    sample_points: int = 2000


@dataclass(frozen=True)
class RunConfig:
    problem: ProblemConfig
    model: ModelConfig
    solver: SolverConfig
    eval: EvalConfig
    seed: int = 0
    dtype: str = "float32"
    device: str = "auto"
    checkpoint_every: int = 0
    workers: int = 1
