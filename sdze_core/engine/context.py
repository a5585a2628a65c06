"""A step's inputs on one worker: its CRN batch, the shared first-layer products and the first layer's basis.

Everything here is computed once per (step, worker) and shared by all 2q evaluations of the step (CRNS).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..model import MLP
from ..residual import BatchSource, StepBatch
from ..subspace import DataBasis
from ..taylor import FirstLayer
from .bases import SubspaceLayer


@dataclass(frozen=True)
class StepContext:
    """What every evaluation of one worker's step shares.

    batch:         the step's common random numbers (points, source values, directions, boundary jets).
    first_layer:   W₁x + b₁ (N, h) and W₁v_s (S, h) of the unperturbed first layer; None where not needed.
    data_basis:    the batch's data-aligned first-layer basis (w1_basis "data"), else None.
    x_in_basis:    V₁ᵀx (N, r) for a random first-layer basis, else None.
    dirs_in_basis: V₁ᵀv_s (S, r) for a random first-layer basis, else None.
    """

    batch: StepBatch
    first_layer: FirstLayer | None
    data_basis: DataBasis | None
    x_in_basis: Tensor | None = None
    dirs_in_basis: Tensor | None = None


class StepData:
    """The workers' batches of the current step (via ``BatchSource``) and their data-aligned bases.

    ``apply`` reuses what ``probe`` drew; a new step lets the previous step's batches and bases go first
    (one batch is 4 GB at d = 10^7).
    """

    def __init__(self, batches: BatchSource):
        self.batches = batches
        self._bases: list[tuple[StepBatch, DataBasis]] = []
        self._step = -1

    def batch(self, step: int, worker: int) -> StepBatch:
        """Worker w's CRN batch of step t (with source values and boundary jets)."""
        if step != self._step:
            self._bases, self._step = [], step
        return self.batches.get(step, worker)

    def light_batch(self, step: int, worker: int) -> StepBatch:
        """Points and directions only: what another worker needs to rebuild this batch's data basis."""
        return self.batches.get(step, worker, with_source=False)

    def data_basis(self, batch: StepBatch) -> DataBasis:
        """The batch's aligned first-layer basis, built once per batch (probe and apply share it)."""
        for b, basis in self._bases:
            if b is batch:
                return basis
        basis = DataBasis.build(batch.x, batch.dirs)
        live = self.batches.live()  # drop bases of batches the batch cache has let go (older steps)
        self._bases = [(b, B) for b, B in self._bases if any(b is x for x in live)] + [(batch, basis)]
        return basis


def build_context(
    model: MLP, layers: list[SubspaceLayer], data: StepData, batch: StepBatch, first: bool = True
) -> StepContext:
    """The shared products of ``batch`` for the current weights and bases."""
    aligned = bool(layers) and layers[0].V is None
    first_layer = FirstLayer.compute(model.W[0], model.b[0], batch.x, batch.dirs) if first else None
    basis = data.data_basis(batch) if aligned else None
    if layers and layers[0].V is not None:
        V = layers[0].V
        return StepContext(batch, first_layer, basis, batch.x @ V, batch.dirs.project(V.t()))
    return StepContext(batch, first_layer, basis)


HOLDOUT_WORKER = 1 << 20  # worker w's held-out batch of step t is the batch source's (t, HOLDOUT_WORKER + w)


def holdout_context(
    model: MLP, layers: list[SubspaceLayer], data: StepData, train: StepContext, step: int, worker: int
) -> StepContext:
    """Worker w's held-out CRN batch of step t (knob gn_holdout) in the training batch's first-layer basis, so a
    step's W₁ coefficients (in that basis) apply to its points: xv = Vᵀx of the held-out points (``DataBasis.at``)."""
    batch = data.batch(step, HOLDOUT_WORKER + worker)
    if train.data_basis is None:
        return build_context(model, layers, data, batch)
    tb = train.batch
    basis = train.data_basis.at(tb.x, tb.dirs, batch.x, batch.dirs)
    return StepContext(batch, FirstLayer.compute(model.W[0], model.b[0], batch.x, batch.dirs), basis)
