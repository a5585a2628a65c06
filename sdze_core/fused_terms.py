"""The two-body sums g, Eg, Δg of ``problems.Problem`` as one compiled kernel per call (torch.compile, inductor).

For term i (a = x_i, b = x_{i+1}, coefficient c_i), with φ = a + cos b + b cos a:

    g  = Σ c_i sin φ_i
    Eg = Σ c_i cos φ_i · (a ∂_aφ + b ∂_bφ),           ∂_aφ = 1 − b sin a,  ∂_bφ = cos a − sin b
    Δg = Σ c_i (cos φ_i · Δφ_i − sin φ_i · |∇φ_i|²),   Δφ = −b cos a − cos b

The eager path (``problems._two_body_block``) makes ≈ 15 passes over each block of terms; here the whole chain —
six transcendentals and the three products with c per term — is one loop per 512 terms, with no N×d temporary.
Terms are taken in blocks of ``BLOCK``: each block is summed in x's dtype and the block sums in float64, as the
eager path does, so a float32 batch keeps float64 digits in its sums (``tests/test_fused_terms.py``: within
float32 rounding of the float64 closed form, as the eager path). Measured (one thread, d = 10⁵, N = 100): 0.033 s
against 0.090 s eager; d = 10⁶: 0.33 s against 1.31 s (``benchmarks/bench_batch_floor.py``).

It is used without autograd, from ``MIN_DIM`` coordinates on, where the one-off compilation (≈ 5–30 s a process;
inductor caches it on disk) is repaid within minutes; the kernel is compiled once for any N and d (dynamic
shapes). Where compilation fails (no C++ compiler, an unsupported device) the eager path serves and this says
so once.
"""

from __future__ import annotations

import logging
import os

import torch
from torch import Tensor

BLOCK = 512  # terms summed in x's dtype before the float64 sum over blocks
MIN_DIM = 1 << 16  # below this the eager path is fast enough that compiling would not pay for itself
_ENV_OFF = "SDZE_EAGER_SOURCE"  # set to 1: never compile (debugging, or comparing against the eager path)

log = logging.getLogger(__name__)
_state: dict[str, object] = {"kernel": None, "failed": False}


def _block_sums(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """a, b (N, nb, BLOCK) the terms' two coordinates, c (nb, BLOCK) → (3, N, nb): g, Eg, Δg per block."""
    ca, sa, cb, sb = torch.cos(a), torch.sin(a), torch.cos(b), torch.sin(b)
    phi = a + cb + b * ca
    sp, cp = torch.sin(phi), torch.cos(phi)
    da = 1 - b * sa
    db = ca - sb
    g = (sp * c).sum(-1)
    eg = (cp * (a * da + b * db) * c).sum(-1)
    lap = ((cp * (-b * ca - cb) - sp * (da * da + db * db)) * c).sum(-1)
    return torch.stack([g, eg, lap])


def enabled(x: Tensor) -> bool:
    """Whether ``two_body_sums`` serves x (N, d): no autograd, d ≥ MIN_DIM, not switched off, not failed."""
    return (
        x.shape[1] >= MIN_DIM
        and not torch.is_grad_enabled()
        and not _state["failed"]
        and os.environ.get(_ENV_OFF, "") not in ("1", "true")
    )


def two_body_sums(x: Tensor, c: Tensor) -> dict[str, Tensor] | None:
    """{"g", "Eg", "lap"} (each (N,), float64) for x (N, d) and c (d − 1,) in x's dtype; None where compilation
    failed (the caller falls back to its eager path). Terms past the last whole block are left to the caller:
    ``covered(d)`` says how many terms this sums."""
    n_terms = covered(x.shape[1])
    if n_terms == 0:
        return None
    if _state["kernel"] is None:
        _state["kernel"] = torch.compile(_block_sums, dynamic=True)
    nb = n_terms // BLOCK
    a = x[:, :n_terms].unflatten(1, (nb, BLOCK))
    b = x[:, 1 : n_terms + 1].unflatten(1, (nb, BLOCK))
    try:
        sums = _state["kernel"](a, b, c[:n_terms].view(nb, BLOCK))
    except Exception as e:  # noqa: BLE001 — any compiler failure means: use the eager path from now on
        _state["failed"] = True
        log.warning("compiled source kernel unavailable (%s: %s); using the eager path", type(e).__name__, e)
        return None
    g, eg, lap = sums.to(torch.float64).sum(-1)
    return {"g": g, "Eg": eg, "lap": lap}


def covered(d: int) -> int:
    """Terms (of d − 1) the compiled kernel sums: whole blocks only."""
    return (d - 1) // BLOCK * BLOCK
