"""The SDZE zeroth-order engine (SPEC §2.2–2.5, §2.7): a dispatcher over probe strategies and update rules.

One step t on worker w: ``probe(t, w)`` draws the step's common random numbers (``context``), regenerates the
q perturbations Z_k from their seeds (``perturbation``) and measures them with the configured probe strategy —
two-point, forward-mode, Gauss–Newton or dense — into a ``WorkerReport``. Then ``apply(t, reports)`` runs on
every replica with the same (sorted) list and the configured update rule: subspace SGD, full-state SGD, dense
SGD or Gauss–Newton. Replicas stay identical because ``apply`` is a deterministic function of the reports.
docs/method.md walks one step through these modules in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..build import ConfigConflict, zo_conflicts
from ..config import SolverConfig, ZOConfig, holdout_on
from ..model import MLP
from ..parabolic.hooks import batch_source
from ..parabolic.problems import ParabolicProblem
from ..problems import Problem
from ..residual import StepBatch
from ..schedule import LinearDecay
from ..subspace import DataBasis
from ..tangent import TangentBuffers
from ..taylor import LowRank
from .bases import SubspaceLayer, draw_layers, fold, refresh_interval
from .context import StepContext, StepData, build_context
from .perturbation import Perturbation, draw_perturbation, perturbation_seed
from .perturbed_forward import low_rank_terms
from .probes_dense import probe_dense
from .probes_forward import probe_forward
from .probes_gauss_newton import probe_gauss_newton
from .probes_two_point import probe_two_point
from .report import WorkerReport
from .sgd_scaling import normalised_deltas
from .update_dense_sgd import apply_dense_sgd
from .update_full_sgd import apply_full_state_sgd
from .update_gauss_newton import apply_gauss_newton
from .update_subspace_sgd import apply_subspace_sgd

# Per update rule: gn_worker_steps (worker steps applied), gn_rejected_trials (LM trial steps backtracking
# rejected), gn_zeroed_steps (worker steps zeroed: no damping gave descent); sgd_probes, sgd_clipped_probes
# (normalised δ cut to ±clip).
COUNTERS = {
    "gn": ("gn_worker_steps", "gn_rejected_trials", "gn_zeroed_steps"),
    "sgd": ("sgd_probes", "sgd_clipped_probes"),
}


@dataclass
class SDZEEngine:
    """The state of one replica's zeroth-order optimiser; the model's tensors are updated in place.

    layers:        subspace state per hidden weight matrix (bases U, V; pending C; momentum).
    last_mom:      momentum of the output layer's h + 1 numbers (update "sgd").
    rms2:          running mean of δ² (update "sgd").
    refresh_index: how many times the bases were drawn; next_refresh: the step after which they are redrawn.
    full_mom:      optimizer_state "full": one dense momentum matrix per hidden weight matrix.
    counters:      what the updates refused or cut, identical on every replica (``COUNTERS``; not part of the
                   numerical state: the checkpoint keeps them beside it).
    """

    problem: Problem
    model: MLP
    solver: SolverConfig
    job_seed: int
    schedule: LinearDecay
    dtype: torch.dtype = torch.float32
    device: str = "cpu"
    layers: list[SubspaceLayer] = field(default_factory=list)
    last_mom: Tensor | None = None
    rms2: float = 0.0
    refresh_index: int = 0
    next_refresh: int = 0
    full_mom: list[Tensor] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cfg = self.cfg
        found = zo_conflicts(cfg)  # the same check a spec passes at submit (build.py)
        if found:
            raise ConfigConflict(found)
        self.batches = batch_source(self.problem, self.solver, self.job_seed, self.dtype, self.device)
        self.gn_lambda: dict[int, float] = {}  # gn_holdout: each worker's last accepted LM damping
        self.holdout = holdout_on(self.solver, self.problem.dim, isinstance(self.problem, ParabolicProblem))
        self.batches.first_layer = lambda: (self.fold(), self.model.W[0])[1]  # estimator zspace: W₁ with pending C
        self.step_data = StepData(self.batches)
        self.tangent_buffers = TangentBuffers()  # the forward-mode dual pass's reused channel-sized outputs
        self.last_mom = torch.zeros(self.model.width + 1, dtype=self.dtype, device=self.device)
        self.counters = dict.fromkeys(COUNTERS[cfg.update], 0)
        if cfg.perturbation == "subspace":
            self.draw_bases()

    @property
    def cfg(self) -> ZOConfig:
        return self.solver.zo

    @property
    def w1_exact(self) -> bool:
        """W₁ by its exact Jacobian in the data basis (w1_probes "jacobian") instead of random probes."""
        return self.cfg.w1_probes == "jacobian"

    @property
    def perturbs_output_layer(self) -> bool:
        """Probes move the output layer only under update "sgd" ("gn" has its exact columns)."""
        return self.cfg.update == "sgd"

    # ----------------------------------------------------------------------------------------- bases
    def draw_bases(self) -> None:
        """Fold C into W and draw the bases of the next refresh; schedule the one after."""
        self.fold()
        self.layers = draw_layers(self.model, self.cfg, self.job_seed, self.refresh_index, self.dtype, self.device)
        self.next_refresh += refresh_interval(self.cfg, self.refresh_index)
        self.refresh_index += 1

    def fold(self) -> None:
        """Fold every pending C into W (W ← W + U C Vᵀ) without changing bases; exact-model export."""
        fold(self.layers, self.model)

    def lowrank_terms(self, x: Tensor) -> list[LowRank | None]:
        """The pending W_eff − W = U C Vᵀ as low-rank terms for a plain forward at points x (one per hidden layer;
        all None for dense perturbations, which keep no subspace state)."""
        return low_rank_terms(self.layers, None, None) if self.layers else [None] * (self.model.depth - 1)

    # ------------------------------------------------------------------------------- step inputs, probes
    def make_batch(self, step: int, worker: int) -> StepBatch:
        """Worker w's CRN batch of step t (cached: ``apply`` reuses what ``probe`` drew)."""
        return self.step_data.batch(step, worker)

    def context(self, batch: StepBatch, first: bool = True) -> StepContext:
        return build_context(self.model, self.layers, self.step_data, batch, first)

    def draw(self, step: int, worker: int, k: int, data_basis: DataBasis | None) -> Perturbation:
        """Z_k of worker w at step t, regenerated from its seed (``data_basis``: the batch's, when W₁ is aligned)."""
        m = self.model
        return draw_perturbation(
            perturbation_seed(self.job_seed, step, worker, k),
            self.layers,
            data_basis.rank if data_basis is not None else None,
            w1_exact=self.w1_exact,
            hidden_bias_shapes=[m.b[l].shape for l in range(m.depth - 1)] if self.cfg.perturb_hidden_bias else [],
            width=m.width,
            dtype=self.dtype,
            device=self.device,
        )

    # ------------------------------------------------------------------------------------------- probe
    @torch.no_grad()
    def probe(self, step: int, worker: int = 0) -> WorkerReport:
        """Measure this worker's q seeded probes on its own CRN batch."""
        cfg = self.cfg
        batch = self.make_batch(step, worker)
        if cfg.perturbation == "full":
            return probe_dense(self, step, worker, batch)
        ctx = self.context(batch)
        if cfg.update == "gn":
            return probe_gauss_newton(self, step, worker, ctx)
        if cfg.gradient == "forward":
            return probe_forward(self, step, worker, ctx)
        return probe_two_point(self, step, worker, ctx)

    # ------------------------------------------------------------------------------------------- apply
    @torch.no_grad()
    def apply(self, step: int, reports: list[WorkerReport]) -> float:
        """Apply the gathered reports of step t (identical on every replica). Returns the mean CRN loss."""
        cfg = self.cfg
        reports = sorted(reports, key=lambda r: r.worker)
        for r in reports:  # gn_holdout: each worker's accepted λ, the same rows on every replica
            if r.damping is not None:
                self.gn_lambda[r.worker] = r.damping
        if cfg.update == "gn":
            apply_gauss_newton(self, step, reports)
        else:
            coef = normalised_deltas(self, step, reports)
            lr = self.schedule(step)
            if cfg.perturbation == "full":
                apply_dense_sgd(self, step, reports, coef, lr)
            elif cfg.optimizer_state == "full":
                apply_full_state_sgd(self, step, reports, coef, lr)
            else:
                apply_subspace_sgd(self, step, reports, coef, lr)
        if cfg.perturbation == "subspace" and step + 1 >= self.next_refresh:
            self.draw_bases()
        return sum(r.loss for r in reports) / len(reports)

    # ------------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Tensor]:
        sd: dict[str, Tensor] = {
            "rms2": torch.tensor(self.rms2, dtype=torch.float64),
            "refresh_index": torch.tensor(self.refresh_index),
            "next_refresh": torch.tensor(self.next_refresh),
            "last_mom": self.last_mom,
        }
        for l, lay in enumerate(self.layers):
            sd[f"layer{l}.U"] = lay.U
            sd[f"layer{l}.C"] = lay.C
            sd[f"layer{l}.mom"] = lay.momentum
            if lay.V is not None:
                sd[f"layer{l}.V"] = lay.V
        for l, M in enumerate(self.full_mom):
            sd[f"full_mom{l}"] = M
        if self.gn_lambda:  # gn_holdout: (worker, λ) rows of every worker, from the reports
            sd["gn_lambda"] = torch.tensor(sorted(self.gn_lambda.items()), dtype=torch.float64)
        return sd

    def load_state_dict(self, sd: dict[str, Tensor]) -> None:
        self.rms2 = float(sd["rms2"])
        self.refresh_index = int(sd["refresh_index"])
        self.next_refresh = int(sd["next_refresh"])
        self.last_mom = sd["last_mom"].clone()
        self.layers = []
        l = 0
        while f"layer{l}.U" in sd:
            V = sd.get(f"layer{l}.V")
            self.layers.append(
                SubspaceLayer(
                    sd[f"layer{l}.U"].clone(),
                    None if V is None else V.clone(),
                    sd[f"layer{l}.C"].clone(),
                    sd[f"layer{l}.mom"].clone(),
                )
            )
            l += 1
        self.full_mom = [sd[f"full_mom{l}"].clone() for l in range(len(self.model.W)) if f"full_mom{l}" in sd]
        lam = sd.get("gn_lambda")
        self.gn_lambda = {} if lam is None else {int(w): float(v) for w, v in lam.tolist()}
