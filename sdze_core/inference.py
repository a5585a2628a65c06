"""Load a trained solution from its artifacts and evaluate u_θ(x) = g(x) + B(x)·N_θ(x) at new points (g ≡ 0 for the
catalogue; a user PDE's JSON travels in the weights' metadata, docs/pde.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

from .model import MLP
from .problems import Problem, build_problem


@dataclass(frozen=True)
class Solution:
    problem: Problem
    model: MLP

    @property
    def dim(self) -> int:
        """Coordinates of one point: d, or d + 1 for a time-dependent problem (x then t)."""
        return getattr(self.problem, "input_dim", self.problem.dim)

    @torch.no_grad()
    def predict(self, x: Tensor, chunk: int = 4096) -> Tensor:
        """u_θ at points x (n, d) → (n,) float64; evaluated in chunks in the model's dtype."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"points must have shape (n, {self.dim}), got {tuple(x.shape)}")
        dtype = self.model.W[0].dtype
        out = []
        for xs in x.split(chunk):
            xs = xs.to(dtype)
            out.append(self.problem.ansatz(xs, self.model.forward(xs)).double())
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def load_solution(out_dir: Path) -> Solution:
    """Read ``model.safetensors`` and the problem from ``metrics.json``/the weights' metadata."""
    out_dir = Path(out_dir)
    from safetensors import safe_open

    with safe_open(str(out_dir / "model.safetensors"), "pt") as fh:
        meta = fh.metadata() or {}
    name, dim = meta.get("problem"), meta.get("dim")
    seed = int(meta.get("problem_seed", 0))
    if name is None and (out_dir / "metrics.json").exists():
        m = json.loads((out_dir / "metrics.json").read_text())
        name, dim = m["problem"], m["dim"]
    model = MLP.from_state_dict(load_file(str(out_dir / "model.safetensors")))
    return Solution(build_problem(name, int(dim), seed=seed, pde=meta.get("pde")), model)
