"""Row norms of wide matrices (N points × d coordinates) that stay accurate at d = 10^7.

Why. ``torch.linalg.vector_norm`` over a float32 row of d numbers accumulates without pairwise blocking on this CPU:
relative error 2e-5 at d = 10^6 and 6e-4 at d = 10^7 (``tests/test_norms.py``). On the unit ball the boundary
factor B = 1 − |x|² then carries an absolute error of ≈ 6e-4, which u = B·N multiplies by N ≈ K (434 at
d = 10^7): the prediction was off by more than the constant null's whole error (aniso 1.17 at the start of every
d = 10^7 run, from this alone). ``x·x`` summed is accurate but writes an N × d temporary (4 GB at N = 100).

What. Up to ``BLOCK`` coordinates: ``vector_norm`` as before (every bit unchanged where it was accurate). Wider
rows: the norms of pieces of ``BLOCK`` coordinates (views, no copy; each piece rounds like a d = 65 536 row,
≈ 4e-7), their squares summed in float64.
"""

from __future__ import annotations

import torch
from torch import Tensor

BLOCK = 1 << 16


def piecewise_squared_norms(x: Tensor, block: int = BLOCK) -> Tensor:
    """Σ_i x_ni² per row in float64 from the norms of ``block``-coordinate pieces in x's dtype (views, no copy),
    shape x.shape[:-1]. Also the trust region's ‖W‖_F (``engine.probes_gauss_newton.frobenius``)."""
    rows = x.reshape(-1, x.shape[-1])
    n, d = rows.shape
    k = d // block
    s = torch.linalg.vector_norm(rows[:, k * block :], dim=-1).double().square()
    if k:
        head = rows[:, : k * block].reshape(n, k, block)
        s = s + torch.linalg.vector_norm(head, dim=-1).double().square().sum(-1)
    return s.reshape(x.shape[:-1])


def squared_row_norms(x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """|x_n|² over the last axis, shape x.shape[:-1], in ``dtype`` (default x's). Up to ``BLOCK`` coordinates the
    float32 norm is squared in ``dtype`` (the former expression, same bits); wider rows sum in float64."""
    dtype = dtype or x.dtype
    if x.shape[-1] <= BLOCK or x.dtype == torch.float64:
        return torch.linalg.vector_norm(x, dim=-1).to(dtype).square()
    return piecewise_squared_norms(x).to(dtype)


def row_norms(x: Tensor) -> Tensor:
    """|x_n| over the last axis, shape x.shape[:-1], in x's dtype (accurate at any width, as above)."""
    if x.shape[-1] <= BLOCK or x.dtype == torch.float64:
        return torch.linalg.vector_norm(x, dim=-1)
    return piecewise_squared_norms(x).sqrt().to(x.dtype)
