"""Per-layer subspace state of the zeroth-order engine (SPEC §2.3, §2.7): bases, pending coefficients, refresh.

Every hidden weight matrix W_l (m × n) is trained through W_eff = W_l + U_l C_l V_lᵀ: perturbations and updates
live in the small r_out × r_in coordinates C_l. When the bases refresh (the lazy, annealed schedule of the
published method) C_l is folded into W_l and fresh bases are drawn from ``derive(job, "basis", j, l)``.
The first layer may instead use the batch's data-aligned basis (w1_basis "data"): then V₁ is rebuilt from each
step's batch, nothing is pending in C₁, and its updates are folded into W₁ at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..config import ZOConfig
from ..model import MLP
from ..seeds import derive, generator
from ..subspace import random_basis


@dataclass
class SubspaceLayer:
    """Subspace state of one hidden weight matrix W (m × n).

    U:        output basis, orthonormal (m × r_out).
    V:        input basis, orthonormal (n × r_in); None for the data-aligned first layer (its basis is the batch's).
    C:        pending coefficients (r_out × r_in): W_eff = W + U C Vᵀ; (r_out × 0) for the data-aligned layer.
    momentum: momentum of C (same shape), for update "sgd" with optimizer_state "subspace".
    """

    U: Tensor
    V: Tensor | None
    C: Tensor
    momentum: Tensor


def draw_layers(
    model: MLP, cfg: ZOConfig, job_seed: int, refresh_index: int, dtype: torch.dtype, device: str
) -> list[SubspaceLayer]:
    """Fresh bases for refresh ``refresh_index`` (zero C and momentum), one per hidden weight matrix."""
    layers = []
    for l in range(model.depth - 1):
        W = model.W[l]
        gen = generator(derive(job_seed, "basis", refresh_index, l), device)
        data = l == 0 and cfg.w1_basis == "data"
        r_out = cfg.w1_rank_out if l == 0 else cfg.rank
        U = random_basis(W.shape[0], r_out, gen, dtype, device)
        V = None if data else random_basis(W.shape[1], cfg.rank, gen, dtype, device)
        r_in = 0 if data else V.shape[1]
        C = torch.zeros(U.shape[1], r_in, dtype=dtype, device=device)
        layers.append(SubspaceLayer(U, V, C, torch.zeros_like(C)))
    return layers


def refresh_interval(cfg: ZOConfig, refresh_index: int) -> int:
    """Steps until the next refresh: min(refresh_max, ⌈refresh_every · refresh_growth^j⌉), at least 1."""
    K = min(cfg.refresh_max, math.ceil(cfg.refresh_every * cfg.refresh_growth**refresh_index))
    return max(1, K)


def fold(layers: list[SubspaceLayer], model: MLP) -> None:
    """W ← W + U C Vᵀ for every layer with a pending C, then C ← 0 (bases unchanged)."""
    for lay, W in zip(layers, model.W, strict=False):
        if lay.V is not None and lay.C.abs().sum() > 0:
            W.addmm_(lay.U @ lay.C, lay.V.t())
            lay.C.zero_()
