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
    """

    worker: int
    probes: list[tuple[int, float]]
    loss: float
    last: Tensor | None = None
    w1: Tensor | None = None

    def payload_bytes(self) -> int:
        """Bytes this report puts on the wire: 4-byte k and δ per probe, the loss, the GN coefficients."""
        n = 8 * len(self.probes) + 4 + 8
        for t in (self.last, self.w1):
            if t is not None:
                n += 4 * t.numel()
        return n
