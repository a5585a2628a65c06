"""Admission estimates: a job's peak memory per worker, and the size of its largest sweep, from its RunConfig.

One worker's peak resident memory is what stays alive for the whole run plus the largest of its phases
(train step, evaluation, checkpoint and artifacts), in bytes, with s = 4 (float32) or 8 (float64) bytes per number,
d = problem.dim, h = model.width, L = model.depth, N = solver.batch_size:

- runtime:   the Python process with torch, numpy, matplotlib and safetensors imported (``RUNTIME_BYTES``;
             a d = 100 solve peaks at 0.44 GiB, docs/operations.md);
- weights:   P·s, P = h·d + h + (L−2)(h² + h) + h + 1 parameters;
- optimizer: 3·P·s for the first-order baselines (gradient and two Adam moments); P·s for a dense momentum
             (``optimizer_state="full"``) or MeZO's dense perturbation (``perturbation="full"``); else the r×r
             subspace state, which does not grow with d and is left out;
- step:      the batch, N·d·s, twice with more than one worker (a replica rebuilds another worker's batch to
             align its basis), once more with gn_holdout (its held-out batch), plus S·d·s for dense spatial
             directions (estimators hte, gauss; twice with gn_holdout), the points doubled with point_lifetime
             > 1 (the pool's groups beside the assembled batch); and f(x) in float64 blocks of at most 2^22
             numbers (``residual.source_chunked``), 3 blocks alive;
- evaluation: a test chunk of rows = min(eval.chunk, test_points, 2^22/d) points (``sampling.TestSet.rows``)
             in float64, its cast, and the exact solution's temporaries: 2·rows·d·(8 + s);
- checkpoint: writing a checkpoint or the model costs no copy (``save_file`` writes from the tensors' memory) and
             restoring one reads the model's tensors in place (``state_io.load_into``); what is left: the
             optimizer state, which is restored whole beside the live one, and samples.npz's points in float64
             (at most 2·10^7 numbers, ``solver.write_samples``), twice.

Measured against peak RSS at d = 10^4 … 10^6 by ``benchmarks/bench_memory.py`` (docs/operations.md), and a whole
``sdze solve`` against 2 × weights + batch + 0.5 GiB at d = 10^6 and 10^7 by its ``--bound`` rows (docs/benchmarks.md).
``work`` bounds what cannot finish: the coordinates of one pass over the test set (test_points·d) — 10^7
points at d = 10^7 are 10^14 numbers to draw and push through the model at every evaluation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .config import RunConfig, holdout_on
from .parabolic.problems import is_time_dependent

GiB = 1 << 30
RUNTIME_BYTES = 450 * (1 << 20)
BLOCK_FLOATS = 1 << 22  # residual.source_chunked and sampling.TestSet: 2^22 float64 numbers (32 MiB) per block
SAMPLES_MAX_FLOATS = 20_000_000  # solver.write_samples
SAMPLES_HEAD = 8
FIRST_ORDER = frozenset({"sdgd_adam", "hte_adam"})


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak bytes of one worker: ``resident`` parts live all run, plus the largest of ``phases``."""

    resident: dict[str, int]
    phases: dict[str, int]

    @property
    def peak_phase(self) -> str:
        return max(self.phases, key=self.phases.__getitem__)

    @property
    def parts(self) -> dict[str, int]:
        """The parts that make up ``total``: the resident ones and the peak phase."""
        return {**self.resident, self.peak_phase: self.phases[self.peak_phase]}

    @property
    def total(self) -> int:
        return sum(self.resident.values()) + self.phases[self.peak_phase]

    def describe(self) -> str:
        """``"152.95 GiB (weights 152.59 GiB, runtime 0.44 GiB, step 0.09 GiB)"``: the total and its parts."""
        items = sorted(((k, v) for k, v in self.parts.items() if v), key=lambda kv: -kv[1])
        return f"{gib(self.total)} ({', '.join(f'{k} {gib(v)}' for k, v in items)})"


def machine_memory_bytes() -> int:
    """Physical memory of this machine (0 where the platform does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def gib(n: float) -> str:
    return f"{n / GiB:.2f} GiB" if n < 100 * GiB else f"{n / GiB:.0f} GiB"


def param_count(dim: int, width: int, depth: int) -> int:
    """Parameters of the MLP d → h → … → h → 1 with ``depth`` weight matrices."""
    return width * dim + width + (depth - 2) * (width * width + width) + width + 1


def estimate(cfg: RunConfig) -> MemoryEstimate:
    """Peak resident bytes of one worker running ``cfg`` (see the module docstring for each part)."""
    s = 8 if cfg.dtype == "float64" else 4
    d, N = cfg.problem.dim, cfg.solver.batch_size
    P = param_count(d, cfg.model.width, cfg.model.depth)
    zo = cfg.solver.zo
    if cfg.solver.method in FIRST_ORDER:
        opt = 3 * P * s
    elif zo.optimizer_state == "full" or zo.perturbation == "full":
        opt = P * s
    else:
        opt = 0
    dense_dirs = cfg.solver.estimator in ("hte", "gauss")
    time_dependent = is_time_dependent(cfg.problem.name, cfg.problem.pde)
    holdout = cfg.solver.method not in FIRST_ORDER and holdout_on(cfg.solver, d, time_dependent)  # a second batch
    batches = (2 if cfg.workers > 1 else 1) + (1 if holdout else 0)
    batches *= 2 if cfg.solver.point_lifetime > 1 else 1  # a pool's live groups beside the step's assembled batch
    batch = N * d * s * batches + (cfg.solver.samples * d * s * (2 if holdout else 1) if dense_dirs else 0)
    rows = max(1, min(cfg.eval.chunk, cfg.eval.test_points, BLOCK_FLOATS // d))
    n_samples = min(cfg.eval.sample_points, cfg.eval.test_points)
    sample_floats = n_samples * d if n_samples * d <= SAMPLES_MAX_FLOATS else n_samples * (SAMPLES_HEAD + 1)
    resident = {"runtime": RUNTIME_BYTES, "weights": P * s, "optimizer": opt}
    phases = {
        "step": batch + 3 * 8 * max(min(N * d, BLOCK_FLOATS), d),  # a block holds at least one point
        "evaluation": 2 * rows * d * (8 + s),
        "checkpoint": opt + 2 * 8 * sample_floats,
    }
    return MemoryEstimate({k: int(v) for k, v in resident.items()}, {k: int(v) for k, v in phases.items()})


def work(cfg: RunConfig) -> int:
    """Coordinates in one pass over the test set (test_points · d), drawn and evaluated at every evaluation."""
    return cfg.eval.test_points * cfg.problem.dim
