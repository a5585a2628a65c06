"""First-order baselines (SPEC §2.6): SDGD + Adam and HTE + Adam by autograd through the same Taylor jets.

Same network, problem, sampling and spatial estimator as SDZE; the only difference is that ∇θL comes from
one backward pass through the jet computation and Adam consumes it. Sharing W₁x and the sampled W₁
columns makes the forward as cheap as first-order can be; the backward of W₁'s column gather is a scatter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .config import SolverConfig
from .model import MLP
from .parabolic.hooks import batch_source
from .problems import Problem
from .residual import residual, u_jet
from .schedule import LinearDecay
from .taylor import FirstLayer, hidden_jet

ADAM_BETAS = (0.9, 0.999)  # Adam's defaults, as in the reference papers' first-order baselines


@dataclass
class AdamEngine:
    problem: Problem
    model: MLP
    solver: SolverConfig
    job_seed: int
    schedule: LinearDecay
    dtype: torch.dtype = torch.float32
    device: str = "cpu"
    opt: torch.optim.Optimizer | None = field(default=None)

    def __post_init__(self) -> None:
        for p in self.model.params():
            p.requires_grad_(True)
        self.batches = batch_source(self.problem, self.solver, self.job_seed, self.dtype, self.device)
        self.batches.first_layer = lambda: self.model.W[0]  # estimator zspace builds its directions from W₁
        a = self.solver.adam
        self.opt = torch.optim.Adam(self.model.params(), lr=a.lr, betas=ADAM_BETAS)

    def step(self, step: int) -> float:
        """One Adam step on the CRN batch of step t (worker 0); returns the batch loss before the update."""
        m = self.model
        with torch.no_grad():
            batch = self.batches.get(step, 0)
        first = FirstLayer.compute(m.W[0], m.b[0], batch.x, batch.dirs)
        phi = hidden_jet(first, m.W[1:-1], m.b[1:-1], self.problem.order)
        loss = residual(self.problem, batch, u_jet(batch, phi, m.W[-1], m.b[-1])).square().mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        for g in self.opt.param_groups:
            g["lr"] = self.schedule(step)
        self.opt.step()
        return float(loss.detach())

    def state_dict(self) -> dict[str, torch.Tensor]:
        sd = {}
        for i, p in enumerate(self.model.params()):
            st = self.opt.state.get(p, {})
            for key in ("exp_avg", "exp_avg_sq", "step"):
                if key in st:
                    sd[f"adam.{i}.{key}"] = torch.as_tensor(st[key])
        return sd

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        for i, p in enumerate(self.model.params()):
            if f"adam.{i}.exp_avg" in sd:
                self.opt.state[p] = {k: sd[f"adam.{i}.{k}"].clone() for k in ("step", "exp_avg", "exp_avg_sq")}
