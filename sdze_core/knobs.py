"""Every solver knob, declared once: name, type, range, one-line meaning, and where its value comes from.

The pydantic ``SolverSpec`` (``solver_spec.py``) is generated from ``KNOBS``; the frozen ``ZOConfig``/``AdamConfig``
fields and every method's complete preset (``config.PRESETS``) are checked against it, and so is the table in
docs/method.md (``markdown_table``), by ``tests/test_knobs.py``.

Two kinds of knob:
- ``preset=True``: left out of a spec, the value is the chosen method's preset (``config.PRESETS``);
- ``preset=False``: a run-level knob with its own default (``default``), the same for every method.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import FIRST_ORDER_METHODS, METHODS, NEVER_DIM, PRESETS, ZO_METHODS


@dataclass(frozen=True)
class Knob:
    """One solver knob. Bounds are inclusive (``ge``/``le``) or strict (``gt``/``lt``); ``choices`` for strings."""

    name: str
    type: type
    meaning: str
    preset: bool = True
    default: object = None  # run-level knobs only (None may itself be the default: "unset", e.g. no time limit)
    nullable: bool = False  # run-level knobs that accept null explicitly
    choices: tuple[str, ...] = ()
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def check(self, value: object) -> str | None:
        """Why ``value`` is not allowed for this knob, or None."""
        if value is None:
            return None if (self.nullable or self.preset) else "must be set"
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not self.type:
            return f"must be of type {self.type.__name__}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}"
        for bound, ok, word in (
            (self.ge, lambda b: value >= b, "≥"),
            (self.gt, lambda b: value > b, ">"),
            (self.le, lambda b: value <= b, "≤"),
            (self.lt, lambda b: value < b, "<"),
        ):
            if bound is not None and not ok(bound):
                return f"must be {word} {_num(bound)}"
        return None

    def range_text(self) -> str:
        if self.choices:
            return " \\| ".join(f"`{c}`" for c in self.choices)
        if self.type is bool:
            return "`true` \\| `false`"
        lo = f"≥ {_num(self.ge)}" if self.ge is not None else (f"> {_num(self.gt)}" if self.gt is not None else "")
        hi = f"≤ {_num(self.le)}" if self.le is not None else (f"< {_num(self.lt)}" if self.lt is not None else "")
        return ", ".join(p for p in (lo, hi) if p)


DAY = 86400

KNOBS: tuple[Knob, ...] = (
    # -- run level: the same default for every method --------------------------------------------------------
    Knob("method", str, "the solver; its preset fills every preset knob left out; auto: the measured best for the "
         "problem's kind and d (sdze_core/method_choice.py)", preset=False, default="auto", choices=("auto", *METHODS)),
    Knob("steps", int, "training steps (null: only the time limit)", preset=False, default=1000, nullable=True,
         ge=1, le=100_000_000),
    Knob("time_limit_s", float, "training wall-time budget in seconds (null: only the steps)", preset=False,
         nullable=True, gt=0, le=30 * DAY),
    Knob("batch_size", int, "collocation points per step per worker", preset=False, default=100, ge=1, le=100_000),
    Knob("estimator", str, "spatial estimator (null: sdgd for Laplacians, hte for hte_adam, gauss for the "
         "biharmonic)", preset=False, nullable=True, choices=("sdgd", "hte", "gauss", "exact", "zspace")),
    Knob("samples", int, "sampled dimensions / probe vectors per step", preset=False, default=16, ge=1, le=10_000),
    Knob("point_lifetime", int, "steps each collocation point is used: the batch is refreshed by 1/point_lifetime "
         "of its points per step, the rest (with their source values) kept from earlier steps (stationary problems; "
         "≤ batch_size)", preset=False, default=1, ge=1, le=100_000),
    Knob("lr_decay_steps", int, "steps over which lr decays linearly (null: the run's steps or its time budget)",
         preset=False, nullable=True, ge=1, le=100_000_000),
    # -- every method: the learning rate ---------------------------------------------------------------------
    Knob("lr", float, "learning rate η₀ (zeroth-order step, or Adam's)", gt=0, le=10),
    Knob("lr_final_frac", float, "η decays linearly to lr_final_frac · η₀", ge=0, le=1),
    # -- zeroth-order methods ----------------------------------------------------------------------------------
    Knob("update", str, "sgd: momentum SGD on RMS-normalised δ; gn: subspace Gauss–Newton (Levenberg–Marquardt)",
         choices=("sgd", "gn")),
    Knob("q", int, "perturbations (probes) per worker per step", ge=1, le=4096),
    Knob("eps", float, "two-point step ε of L(θ ± εZ)", gt=0, le=1),
    Knob("gradient", str, "two_point: finite difference; forward: exact JVP along Z by dual jets",
         choices=("two_point", "forward")),
    Knob("crns", bool, "± evaluations share the step's points and directions (common random numbers)"),
    Knob("perturbation", str, "subspace: U S Vᵀ per layer; full: dense Gaussian on every parameter (MeZO)",
         choices=("subspace", "full")),
    Knob("rank", int, "subspace rank r of the hidden layers (and of a random W₁ input basis)", ge=1, le=4096),
    Knob("w1_basis", str, "W₁'s input basis: random (seeded QR, refreshed) or data (span of the step's batch)",
         choices=("random", "data")),
    Knob("w1_rank_out", int, "W₁'s output-basis rank p", ge=1, le=4096),
    Knob("w1_probes", str, "W₁ by random probes, or by its exact Jacobian in the data basis (gn, forward, data)",
         choices=("random", "jacobian")),
    Knob("refresh_every", int, "steps between basis refreshes at the start", ge=1, le=1_000_000),
    Knob("refresh_growth", float, "each refresh multiplies the interval by this (annealed lazy refresh)", ge=1,
         le=10),
    Knob("refresh_max", int, "the refresh interval never exceeds this many steps", ge=1, le=1_000_000),
    Knob("perturb_hidden_bias", bool, "probes also move the hidden biases (dense Gaussian)"),
    Knob("lr_last_mult", float, "update sgd: the output layer's rate is lr_last_mult · η", gt=0, le=1000),
    Knob("momentum", float, "update sgd: momentum β of the subspace coordinates and the output layer", ge=0, lt=1),
    Knob("optimizer_state", str, "update sgd: momentum in r×r coordinates (O(Σr²)) or dense per layer (O(P))",
         choices=("subspace", "full")),
    Knob("rms_beta", float, "update sgd: decay of the running mean of δ² that normalises δ", ge=0, lt=1),
    Knob("clip", float, "update sgd: normalised δ clipped to ±clip", gt=0, le=1e6),
    Knob("gn_damping", float, "update gn: Levenberg–Marquardt damping λ (relative to diag PᵀP)", ge=0, le=1e6),
    Knob("gn_free_bias", float, "update gn: the output bias is left undamped when the output weights' Jacobian "
         "columns are this collinear with its column on the batch (mean cos²; high d); above 1: never", ge=0, le=2),
    Knob("gn_backtracks", int, "update gn: retries with λ ×10 while a step raises the batch's CRN loss", ge=0, le=20),
    Knob("gn_trust", float, "update gn: trust region τ, each worker's step of W₁ and of every hidden layer is at "
         "most τ·max(‖W‖_F, 1) (0: off)", ge=0, le=100),
    Knob("gn_holdout", str, "update gn: a step must also lower the CRN loss of a second, held-out batch of the same "
         "size (else retried with λ ×10, as a backtrack): the per-batch fit may not over-fit its batch. auto: on for "
         "stationary problems where d < 5 × batch_size (the batch spans much of Rᵈ; at d = 100 W₁ ran away without "
         "it)", choices=("off", "on", "auto")),
    Knob("gn_w1_time_only", bool, "update gn, exact W₁, time-dependent problems: the exact step moves W₁'s time "
         "column only (its x-part through the probes): fitted in the x-span it did not generalize at d ≫ N"),
    Knob("gn_mean_row", float, "update gn, time-dependent problems: weight κ of one more least-squares row, the "
         "batch's mean residual (soft rule: minus the mean terminal mismatch / T) — by Itô the error at the law's "
         "origin x₀ divided by T, where the training points are the diffusion of L (Brownian, L = νΔ); zero at the "
         "solution; κ = 1 weighs it like all point rows together; 0: off",
         ge=0, le=10_000),
    Knob("constant_start_min_dim", int, "where the spatial dimension d is at least this, the output bias is first set "
         "to the constant that minimizes the PDE residual on a seeded batch (scalar Newton, nothing else moves; never "
         "on resume); 0: always, 2³¹−1: never", ge=0, le=NEVER_DIM),
    Knob("output_refit_points", int, "after the last step of a run that reached its budget, the output layer is "
         "re-solved by least squares on this many seeded points (exact z-space Laplacian; at most 2^28/d of them; kept "
         "only if two-fold cross-validation on them passes; its seconds count as training; second-order catalogue "
         "problems; opt-in: it lowered the error on the unit ball but raised it on the scaled ball, docs/method.md); "
         "0: never", ge=0, le=65_536),
)  # fmt: skip

BY_NAME: dict[str, Knob] = {k.name: k for k in KNOBS}
ADAM_KNOBS = ("lr", "lr_final_frac")  # the preset knobs a first-order method reads


def preset_value(method: str, name: str) -> object:
    """The value method ``method``'s preset gives knob ``name`` (None: the method does not read it)."""
    preset = PRESETS[method]
    return getattr(preset, name, None)


def markdown_table() -> str:
    """The knob table of docs/method.md: every knob, its range, its default or each method's preset value."""
    head = ["knob", "type", "range", "default", *METHODS, "meaning"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in KNOBS:
        if k.preset:
            default = "preset"
            vals = [("–" if (v := preset_value(m, k.name)) is None else f"`{_fmt(v)}`") for m in METHODS]
        else:
            default, vals = f"`{_fmt(k.default)}`", [""] * len(METHODS)
        cells = [f"`{k.name}`", k.type.__name__, k.range_text(), default, *vals, k.meaning]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _fmt(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _num(v)
    return str(v)


def _num(v: float) -> str:
    """1e8 rather than 1e+08; integers below a million in full."""
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    return f"{v:g}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


__all__ = ["ADAM_KNOBS", "BY_NAME", "FIRST_ORDER_METHODS", "KNOBS", "Knob", "ZO_METHODS", "markdown_table"]


if __name__ == "__main__":  # print the docs/method.md knob table
    print(markdown_table())
