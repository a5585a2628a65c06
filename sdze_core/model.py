"""The PINN network ``N_θ: R^d → R``: a dense tanh MLP d → h → … → h → 1.

Parameters are plain tensors (no nn.Module) so that the zeroth-order engine can update them in place
and the first-order baselines can mark them ``requires_grad``. ``depth`` counts weight matrices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .seeds import generator


@dataclass
class MLP:
    """Weights ``W[l]`` of shape (out, in) and biases ``b[l]`` of shape (out,), l = 0 … depth−1."""

    W: list[Tensor]
    b: list[Tensor]

    @staticmethod
    def init(dim: int, width: int, depth: int, seed: int, dtype=torch.float32, device="cpu") -> MLP:
        """PyTorch's ``nn.Linear`` default law: W, b ~ U(−1/√fan_in, 1/√fan_in), written in place
        (no temporary the size of W1, which at d = 10^7 is 5 GB)."""
        if depth < 2:
            raise ValueError("depth must be ≥ 2 (at least one hidden layer)")
        sizes = [dim] + [width] * (depth - 1) + [1]
        gen = generator(seed, device)
        Ws, bs = [], []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            a = 1.0 / math.sqrt(n_in)
            Ws.append(torch.empty(n_out, n_in, dtype=dtype, device=device).uniform_(-a, a, generator=gen))
            bs.append(torch.empty(n_out, dtype=dtype, device=device).uniform_(-a, a, generator=gen))
        return MLP(Ws, bs)

    @property
    def depth(self) -> int:
        return len(self.W)

    @property
    def dim(self) -> int:
        return self.W[0].shape[1]

    @property
    def width(self) -> int:
        return self.W[0].shape[0]

    def params(self) -> list[Tensor]:
        return [t for pair in zip(self.W, self.b, strict=True) for t in pair]

    def num_params(self) -> int:
        return sum(t.numel() for t in self.params())

    def state_dict(self) -> dict[str, Tensor]:
        out = {}
        for i, (w, b) in enumerate(zip(self.W, self.b, strict=True)):
            out[f"layers.{i}.weight"] = w
            out[f"layers.{i}.bias"] = b
        return out

    @staticmethod
    def from_state_dict(sd: dict[str, Tensor]) -> MLP:
        depth = len([k for k in sd if k.endswith(".weight")])
        return MLP([sd[f"layers.{i}.weight"] for i in range(depth)], [sd[f"layers.{i}.bias"] for i in range(depth)])

    def checksum(self) -> float:
        """An order-sensitive float64 fingerprint of all parameters (replica-consistency checks)."""
        total = 0.0
        for i, t in enumerate(self.params()):
            if t.dtype == torch.float64:
                total += (i + 1) * float(t.sum()) + float((t**2).sum())
            else:
                s1, s2 = float64_sums(t)
                total += (i + 1) * s1 + s2
        return total

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """N_θ(x) for x of shape (N, d) → (N,). Plain evaluation, no jets."""
        h = x
        for l in range(self.depth - 1):
            h = torch.tanh(torch.addmm(self.b[l], h, self.W[l].t()))
        return torch.addmm(self.b[-1], h, self.W[-1].t())[:, 0]


def float64_sums(t: Tensor, chunk: int = 1 << 20) -> tuple[float, float]:
    """(Σ t, Σ t²) accumulated in float64 over blocks of ``chunk`` consecutive elements, through one reused float64
    buffer: no float64 copy of t (W₁ is 5 GB in float32 at d = 10^7, h = 128; ``t.double()`` would add 10 GB) and no
    fresh block per iteration (fresh 80 MB blocks, one row each at d = 10^7, took 29 s for W₁: a page fault per
    page of every block; timings: ``benchmarks/bench_wide_reductions.py``, values: ``tests/test_stability.py``)."""
    if t.dim() == 0:
        return float(t.double()), float(t.double() ** 2)
    flat = t.reshape(-1)
    buf = torch.empty(min(chunk, flat.numel()), dtype=torch.float64, device=t.device)
    s1 = s2 = 0.0
    for i in range(0, flat.numel(), buf.numel()):
        block = buf[: min(buf.numel(), flat.numel() - i)]
        block.copy_(flat[i : i + block.numel()])
        s1 += float(block.sum())
        s2 += float(block.square_().sum())
    return s1, s2
