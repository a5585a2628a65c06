"""What one worker sends the others each step: the wire format of the SDZE exchange (SPEC §2.5).

A report never carries parameters or perturbations: every Z_k is regenerated from its seed
``derive(job, "pert", t, w, k)``, so a probe is the pair (k, scalar). The default method (update "gn") adds
the output layer's h+1 Levenberg–Marquardt coefficients and, with w1_probes "jacobian", a p × m' matrix of W₁
coefficients in the worker's batch basis (m' ≤ N + S). All of it is independent of d and of the parameter count.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class WorkerReport:
    """Worker ``worker``'s contribution to one step.

    probes: (k, scalar) per perturbation — δ_k (update "sgd") or the Gauss–Newton coefficient a_k (update "gn").
    loss:   the worker's CRN batch loss mean_n R_n² at θ (before the step).
    last:   update "gn" only: the output layer's h+1 coefficients (weights then bias), shape (h+1,).
    w1:     w1_probes "jacobian" only: W₁ += U₁ w1 Vᵀ in the batch's data basis, shape (p, m').
    rejected_trials: update "gn" only: Levenberg–Marquardt trial steps rejected by backtracking; gn_backtracks + 1
            means no damping gave descent and the worker's step is zero.
    damping: with the held-out check (gn_holdout) only: the worker's accepted Levenberg–Marquardt λ, which its next
            step starts from (÷ 3); every replica records it, so the engine state stays identical across replicas.

    Tensors are always on the CPU (moved in ``__post_init__``): a report crosses process boundaries and may be
    unpickled by a driver without CUDA; the engine moves them back to its device when it applies them.
    """

    worker: int
    probes: list[tuple[int, float]]
    loss: float
    last: Tensor | None = None
    w1: Tensor | None = None
    rejected_trials: int = 0
    damping: float | None = None

    def __post_init__(self) -> None:
        if self.last is not None and self.last.device.type != "cpu":
            self.last = self.last.cpu()
        if self.w1 is not None and self.w1.device.type != "cpu":
            self.w1 = self.w1.cpu()

    def payload_bytes(self) -> int:
        """Bytes this report puts on the wire, as it would be packed: the 4-byte worker id, the 8-byte loss, per
        probe a 4-byte k and an 8-byte float δ (or a_k), and for update "gn" the 4-byte rejected-trial count (plus the
        8-byte λ with the held-out check) and the coefficient tensors at their element size (4 bytes in a float32
        run, 8 in float64).
        Independent of d and of the parameter count: q probes, h + 1 and p × m' (m' ≤ N + S) coefficients."""
        n = 4 + 8 + 12 * len(self.probes)
        if self.last is not None:
            n += 4
        if self.damping is not None:
            n += 8
        for t in (self.last, self.w1):
            if t is not None:
                n += t.element_size() * t.numel()
        return n
