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
    pde: str | None = None  # a user PDE: the canonical JSON of its §3.1 form (name is then "user"; docs/pde.md)


@dataclass(frozen=True)
class ModelConfig:
    width: int = 128
    depth: int = 4


@dataclass(frozen=True)
class ZOConfig:
    """The zeroth-order engine's knobs (SPEC §2.2–2.4, §2.7); meanings and ranges in ``knobs.KNOBS``.

    No field has a default: a ZOConfig is always a method's complete preset (``PRESETS``) with the spec's
    overrides applied (``build.solver_config``).
    """

    update: str
    q: int
    eps: float
    gradient: str
    crns: bool
    perturbation: str
    rank: int
    w1_basis: str
    w1_rank_out: int
    w1_probes: str
    refresh_every: int
    refresh_growth: float
    refresh_max: int
    perturb_hidden_bias: bool
    lr: float
    lr_last_mult: float
    lr_final_frac: float
    momentum: float
    optimizer_state: str
    rms_beta: float
    clip: float
    gn_damping: float
    gn_free_bias: float
    gn_backtracks: int
    gn_trust: float
    gn_holdout: str
    gn_w1_time_only: bool
    gn_mean_row: float
    constant_start_min_dim: int
    output_refit_points: int


@dataclass(frozen=True)
class AdamConfig:
    """The first-order baselines' knobs (Adam's betas are fixed: ``baselines.ADAM_BETAS``)."""

    lr: float
    lr_final_frac: float


NEVER_DIM = 2**31 - 1  # a dimension threshold no problem reaches ("never")

# The constant start (``constant_start``) runs for ``sdze`` from d = 10⁴ on: measured (docs/benchmarks.md, session 6)
# it wins where the steps cannot learn the constant in time (d = 10⁶, 30 steps: aniso 1.006 against 1.62; d = 10⁷,
# 20 steps: 1.17 against 2.60), is neutral at d = 10³ (10 min: 0.0499 against 0.0500) and at d = 100 lets W₁ run
# away (‖W₁‖²_F 42 → 1.5·10⁶ in 1 000 steps, aniso back to the null), where the first steps learn the constant anyway.
# The output refit (``output_refit``) is opt-in (16 384 points is the measured choice): at d = 10³ it lowered aniso
# 0.0547 → 0.0424 after 1 500 steps (docs/output_refit_sweep_d1000_s7.json), but on sine_gordon_two_body_scaled at
# d = 10⁴ it raised it 0.907 → 1.125 while lowering the residual (docs/output_refit_sweep_scaled_d1e4_s7.json): where
# the operator barely weighs the boundary factor's own mode (ΔB = −2 on the ball of radius √d, −2d on the unit ball)
# a lower residual is not a lower error, and nothing without u* tells the two cases apart.
# Every method's complete preset. The default of "sdze" is the best-measured backprop-free variant
# (docs/benchmarks.md): subspace Gauss–Newton with the exact W₁ Jacobian; the published recipe stays reachable as
# "sdze_published" (random subspaces, CRNS, lazy annealed refresh).
# fmt: off
PRESETS: dict[str, ZOConfig | AdamConfig] = {
    "sdze": ZOConfig(
        update="gn", q=8, eps=1e-3, gradient="forward", crns=True, perturbation="subspace",
        rank=4, w1_basis="data", w1_rank_out=2, w1_probes="jacobian",
        refresh_every=1, refresh_growth=1.0, refresh_max=1000, perturb_hidden_bias=False,
        lr=0.5, lr_last_mult=3.0, lr_final_frac=0.1, momentum=0.9, optimizer_state="subspace",
        rms_beta=0.99, clip=5.0, gn_damping=0.1, gn_free_bias=0.98, gn_backtracks=6, gn_trust=1.0,
        gn_holdout="auto", gn_w1_time_only=True, gn_mean_row=10.0, constant_start_min_dim=10_000,
        output_refit_points=0,
    ),
    "sdze_published": ZOConfig(
        update="sgd", q=8, eps=1e-3, gradient="two_point", crns=True, perturbation="subspace",
        rank=4, w1_basis="random", w1_rank_out=4, w1_probes="random",
        refresh_every=10, refresh_growth=1.1, refresh_max=200, perturb_hidden_bias=False,
        lr=3e-2, lr_last_mult=3.0, lr_final_frac=0.0, momentum=0.9, optimizer_state="subspace",
        rms_beta=0.99, clip=5.0, gn_damping=0.1, gn_free_bias=2.0, gn_backtracks=0, gn_trust=0.0,
        gn_holdout="off", gn_w1_time_only=False, gn_mean_row=0.0, constant_start_min_dim=NEVER_DIM,
        output_refit_points=0,
    ),
    "sdze_no_crns": ZOConfig(
        update="sgd", q=8, eps=1e-3, gradient="two_point", crns=False, perturbation="subspace",
        rank=4, w1_basis="random", w1_rank_out=4, w1_probes="random",
        refresh_every=1, refresh_growth=1.0, refresh_max=1000, perturb_hidden_bias=False,
        lr=3e-2, lr_last_mult=3.0, lr_final_frac=0.0, momentum=0.9, optimizer_state="subspace",
        rms_beta=0.99, clip=5.0, gn_damping=0.1, gn_free_bias=2.0, gn_backtracks=0, gn_trust=0.0,
        gn_holdout="off", gn_w1_time_only=False, gn_mean_row=0.0, constant_start_min_dim=NEVER_DIM,
        output_refit_points=0,
    ),
    "zo_full": ZOConfig(
        update="sgd", q=8, eps=1e-3, gradient="two_point", crns=True, perturbation="full",
        rank=4, w1_basis="random", w1_rank_out=4, w1_probes="random",
        refresh_every=1, refresh_growth=1.0, refresh_max=1000, perturb_hidden_bias=False,
        lr=1e-3, lr_last_mult=1.0, lr_final_frac=0.0, momentum=0.9, optimizer_state="subspace",
        rms_beta=0.99, clip=5.0, gn_damping=0.1, gn_free_bias=2.0, gn_backtracks=0, gn_trust=0.0,
        gn_holdout="off", gn_w1_time_only=False, gn_mean_row=0.0, constant_start_min_dim=NEVER_DIM,
        output_refit_points=0,
    ),
    "sdgd_adam": AdamConfig(lr=1e-3, lr_final_frac=0.0),
    "hte_adam": AdamConfig(lr=1e-3, lr_final_frac=0.0),
}
# fmt: on


@dataclass(frozen=True)
class SolverConfig:
    method: str = "sdze"  # a concrete method: a spec's "auto" is resolved before (method_choice)
    method_choice: str = ""  # why "auto" chose ``method`` ("" when the spec named it)
    steps: int | None = 1000
    time_limit_s: float | None = None
    batch_size: int = 100
    estimator: str = "sdgd"
    samples: int = 16
    point_lifetime: int = 1  # steps each collocation point serves (point_pool.py); 1: a fresh batch every step
    lr_decay_steps: int | None = None  # fixed decay horizon; None: the run's steps or its estimated budget
    zo: ZOConfig = PRESETS["sdze"]  # used by the zeroth-order methods
    adam: AdamConfig = PRESETS["sdgd_adam"]  # used by the first-order methods


HOLDOUT_AUTO_RATIO = 5  # gn_holdout "auto": on where d < this × batch_size (stationary problems)


def holdout_on(solver: SolverConfig, dim: int, time_dependent: bool) -> bool:
    """Whether each Gauss–Newton trial step is also judged on a held-out batch (knob ``gn_holdout``). "auto": where
    the batch spans much of Rᵈ, d < 5N, a per-batch fit that interpolates it piles up in W₁ (d = 100, N = 100: ‖W₁‖²_F
    42 → 1 600 in 1 200 steps and the 5-minute run ended at the null; with the check it stays ≈ 280,
    docs/benchmarks.md session 7); not measured on the time-dependent problems, so off there."""
    zo = solver.zo
    if zo.gn_holdout == "on":
        return True
    usable = zo.update == "gn" and zo.gn_backtracks > 0
    auto = zo.gn_holdout == "auto" and not time_dependent and dim < HOLDOUT_AUTO_RATIO * solver.batch_size
    return usable and auto


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
