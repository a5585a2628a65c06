"""One probe's perturbation Z_k, drawn from its seed (MeZO's seed trick, SPEC §2.5).

Every worker regenerates Z_k from ``perturbation_seed(job, t, w, k)``: exchanging (k, scalar) is as good as
exchanging Z_k. In engine coordinates Z_k is
- S_l (r_out × r_in) per hidden weight matrix, i.e. W_l moves along U_l S_l V_lᵀ (None for W₁ with
  w1_probes "jacobian": W₁ is covered by exact Jacobian columns, not by random probes);
- optionally a dense Gaussian per hidden bias (perturb_hidden_bias);
- a dense Gaussian over the output layer's h weights and its bias (h + 1 numbers).
The draw order (S per layer, hidden biases, output layer) is part of the format: changing it changes every run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..seeds import derive, generator
from .bases import SubspaceLayer


@dataclass(frozen=True)
class Offset:
    """A displacement of θ_eff in engine coordinates, evaluated by ``perturbed_forward.perturbed_residual``.

    subspace:    per hidden layer l, A_l added to C_l (W_l + U_l (C_l + A_l) V_lᵀ); None: no displacement.
    hidden_bias: per hidden layer, Δb_l (empty: none).
    last:        Δ(w, b) of the output layer, (h + 1,) (None: none).
    """

    subspace: tuple[Tensor | None, ...]
    hidden_bias: tuple[Tensor, ...] = ()
    last: Tensor | None = None


@dataclass(frozen=True)
class Perturbation:
    """Z_k of one probe (see the module docstring). ``S[l]`` is (r_out × r_in); ``last`` is (h + 1,)."""

    S: tuple[Tensor | None, ...]
    hidden_bias: tuple[Tensor, ...]
    last: Tensor

    def offset(self, eps: float | Tensor, output_layer: bool) -> Offset:
        """ε Z_k as an ``Offset``; the output layer moves only when ``output_layer`` (update "sgd")."""
        return Offset(
            tuple(None if S is None else eps * S for S in self.S),
            tuple(eps * hb for hb in self.hidden_bias),
            eps * self.last if output_layer else None,
        )


def perturbation_seed(job_seed: int, step: int, worker: int, k: int) -> int:
    """The seed of probe k of worker w at step t."""
    return derive(job_seed, "pert", step, worker, k)


def draw_perturbation(
    seed: int,
    layers: list[SubspaceLayer],
    data_rank: int | None,
    *,
    w1_exact: bool,
    hidden_bias_shapes: list[torch.Size],
    width: int,
    dtype: torch.dtype,
    device: str,
) -> Perturbation:
    """Z_k from its seed. ``data_rank`` is m', the rank of the batch's data basis (data-aligned W₁ only)."""
    gen = generator(seed, device)
    S: list[Tensor | None] = []
    for l, lay in enumerate(layers):
        if l == 0 and w1_exact:
            S.append(None)
            continue
        r_in = data_rank if (l == 0 and lay.V is None) else lay.V.shape[1]
        S.append(torch.randn(lay.U.shape[1], r_in, generator=gen, dtype=dtype, device=device))
    hb = tuple(torch.randn(shape, generator=gen, dtype=dtype, device=device) for shape in hidden_bias_shapes)
    last = torch.randn(width + 1, generator=gen, dtype=dtype, device=device)
    return Perturbation(tuple(S), hb, last)


def draw_dense(seed: int, params: list[Tensor], dtype: torch.dtype, device: str) -> list[Tensor]:
    """A dense Gaussian Z with one tensor per parameter (perturbation "full", MeZO), in ``params`` order."""
    gen = generator(seed, device)
    return [torch.randn(p.shape, generator=gen, dtype=dtype, device=device) for p in params]
