"""A solve in one process: problem + network + engine for a ``RunConfig``, behind the step API.

``LocalExecutor`` is what the trainer loop drives (``step``, ``evaluate``, checkpoints, export); the Ray
runner in ``worker/`` implements the same protocol with a group of actors, reusing the engines unchanged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor

from .baselines import AdamEngine
from .config import FIRST_ORDER_METHODS, RunConfig
from .constant_start import fit_output_bias
from .engine import SDZEEngine, WorkerReport
from .evaluation import evaluate
from .model import MLP
from .norms import row_norms
from .output_refit import refit_output_layer, refit_points, refit_rows
from .parabolic import solving as parabolic
from .parabolic.evaluation import compose
from .parabolic.problems import PARABOLIC_CATALOGUE, ParabolicProblem, make_parabolic_problem
from .parabolic.validation import validation_residual as parabolic_validation_residual
from .pde.metrics import effective_mlp, residual_metrics, user_pde_metrics
from .problems import Problem, make_problem
from .problems import build_problem as build_user_or_named
from .sampling import TestSet
from .schedule import LinearDecay
from .seeds import derive
from .state_io import load_into
from .validation import second_order_residual, validation_points, validation_residual

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class StepResult:
    loss: float
    comm_bytes: int = 0


class Executor(Protocol):
    """What the trainer loop needs from whatever runs the steps (one process or a Ray worker group)."""

    def step(self, t: int) -> StepResult: ...
    def evaluate(self) -> dict[str, float]: ...
    def set_horizon(self, horizon: int) -> None: ...
    def save_checkpoint(self, path: Path) -> None: ...
    def start(self) -> dict: ...
    def refit(self) -> dict: ...
    def load_checkpoint(self, path: Path) -> None: ...
    def export(self, out_dir: Path) -> dict: ...
    def close(self) -> None: ...


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def build_problem(cfg: RunConfig, dtype: torch.dtype = torch.float64) -> Problem | ParabolicProblem:
    if cfg.problem.name in PARABOLIC_CATALOGUE:  # terminal-value problems on x̃ = (x, t) (parabolic/)
        return make_parabolic_problem(cfg.problem.name, cfg.problem.dim)
    if cfg.problem.pde is not None:  # a user PDE written out in the job spec (pde/, docs/pde.md)
        return build_user_or_named(cfg.problem.name, cfg.problem.dim, cfg.problem.seed, cfg.problem.pde, dtype)
    return make_problem(cfg.problem.name, cfg.problem.dim, seed=cfg.problem.seed, dtype=dtype)


def test_set(cfg: RunConfig, problem: Problem) -> TestSet:
    return TestSet(problem, cfg.eval.test_points, derive(cfg.seed, "testset", cfg.problem.seed), cfg.eval.chunk)


def initial_horizon(cfg: RunConfig) -> int:
    if cfg.solver.lr_decay_steps is not None:
        return cfg.solver.lr_decay_steps
    return cfg.solver.steps if cfg.solver.steps is not None else 10**9


class Solver:
    """Problem, network and engine of one replica. ``engine`` is an SDZEEngine or an AdamEngine."""

    def __init__(self, cfg: RunConfig, device: str | None = None):
        self.cfg = cfg
        self.device = resolve_device(device or cfg.device)
        self.dtype = DTYPES[cfg.dtype]
        self.problem = build_problem(cfg)
        m = cfg.model
        dim_in = self.problem.input_dim if self.parabolic else cfg.problem.dim  # parabolic: the network reads (x, t)
        self.model = MLP.init(dim_in, m.width, m.depth, derive(cfg.seed, "init"), self.dtype, self.device)
        s = cfg.solver
        first_order = s.method in FIRST_ORDER_METHODS
        lr0 = s.adam.lr if first_order else s.zo.lr
        frac = s.adam.lr_final_frac if first_order else s.zo.lr_final_frac
        self.schedule = LinearDecay(lr0, initial_horizon(cfg), frac)
        cls = AdamEngine if first_order else SDZEEngine
        self.engine = cls(self.problem, self.model, s, cfg.seed, self.schedule, self.dtype, self.device)

    @property
    def parabolic(self) -> bool:
        return isinstance(self.problem, ParabolicProblem)

    @property
    def zeroth_order(self) -> bool:
        return isinstance(self.engine, SDZEEngine)

    # -- the two halves of an SDZE step (SPEC §2.5) ------------------------------------------------------
    def probe(self, t: int, worker: int = 0) -> WorkerReport:
        return self.engine.probe(t, worker)

    def apply_probes(self, t: int, reports: list[WorkerReport]) -> float:
        return self.engine.apply(t, reports)

    def local_step(self, t: int) -> float:
        if self.zeroth_order:
            return self.apply_probes(t, [self.probe(t, 0)])
        return self.engine.step(t)

    def start(self) -> dict:
        """What a fresh run does before its first step (never on resume): the constant start where the method's
        ``constant_start_min_dim`` knob asks for it at this d (``constant_start``). Returns its record for
        metrics.json, or {}."""
        if not (self.zeroth_order and self.problem.dim >= self.cfg.solver.zo.constant_start_min_dim):
            return {}
        seed = derive(self.cfg.seed, "constant_start", self.cfg.problem.seed)
        low = self.engine.lowrank_terms(None)
        p, m, kw = self.problem, self.model, {"dtype": self.dtype, "device": self.device}
        if not self.parabolic and self.cfg.problem.pde is None and p.order == 2:
            # the points, f and W₁x once; each evaluation only the hidden and output layers
            rms = second_order_residual(p, m, low, seed, max(64, validation_points(p.dim)), **kw)
        else:
            rms = partial(self._residual_rms, low, seed)
        return fit_output_bias(m, lambda: rms() ** 2).as_dict()

    def refit(self) -> dict:
        """What a run that reached its budget does after the last step: the output refit (``output_refit``) where
        the method's ``output_refit_points`` knob asks for it (second-order catalogue problems: their residual is
        linear in the output layer up to F(u); not built for time-dependent ones, where a prototype lowered the
        residual of semilinear heat but raised its reference-point error). Returns its record (metrics.json), or {}."""
        p, cfg, m = self.problem, self.cfg, self.model
        requested = cfg.solver.zo.output_refit_points if self.zeroth_order else 0
        if requested == 0 or self.parabolic or cfg.problem.pde is not None or p.order != 2:
            return {}
        n = refit_points(requested, p.dim, m.width)
        if n == 0:
            return {"points": 0, "accepted": False, "skipped": "fewer than 4(h + 1) points within n·d ≤ 2^28"}
        self.engine.fold()  # W ← W + U C Vᵀ: the same function, no pending low-rank terms to carry
        rows = refit_rows(p, m, None, derive(cfg.seed, "output_refit", cfg.problem.seed), n, self.dtype, self.device)
        return refit_output_layer(m, rows, p.nonlinearity, p.nonlinearity_derivative).as_dict()

    def _residual_rms(self, low: list, seed: int) -> float:
        """The held-out RMS residual at ``seed`` (time-dependent, user and fourth-order problems)."""
        p, m, kw = self.problem, self.model, {"dtype": self.dtype, "device": self.device}
        if self.parabolic:
            return parabolic_validation_residual(p, m, low, seed, **kw)["val_residual"]
        if self.cfg.problem.pde is not None:  # a user PDE: the residual metric its evaluation reports
            return residual_metrics(p, effective_mlp(m, low), 64, seed, boundary_points=1, **kw)["residual_rms"]
        return validation_residual(p, m, low, seed, 64, **kw)["val_residual"]

    # -- evaluation and export ------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """u_θ(x) = B(x)·N(x) for x (n, d), including pending low-rank updates (W + U C Vᵀ)."""
        m = self.model
        x = x.to(self.device, self.dtype)
        low = self.engine.lowrank_terms(x) if self.zeroth_order else [None] * (m.depth - 1)
        h = x
        for l in range(m.depth - 1):
            z = torch.addmm(m.b[l], h, m.W[l].detach().t())
            if low[l] is not None:
                z = z + low[l].apply(h)
            h = torch.tanh(z)
        n = torch.addmm(m.b[-1], h, m.W[-1].detach().t())[:, 0]
        if self.parabolic:
            return compose(self.problem, x, n)  # u = g(x) + (T − t)·N(x, t) at x̃ = (x, t)
        return self.problem.ansatz(x, n)  # u = g + B·N (g ≡ 0 for the catalogue)

    def evaluate_test(self) -> dict[str, float]:
        if self.parabolic:  # rel L2 and nulls where u* is known, the reference-point error where u(0, x₀) is
            return parabolic.evaluate_solver(self)
        return self._evaluate_stationary()

    def _evaluate_stationary(self) -> dict[str, float]:
        """Test accuracy (needs u*) and the held-out PDE residual (``validation``: never reads u*)."""
        if self.cfg.problem.pde is not None:  # user PDE: residual + boundary error, accuracy where u* exists
            low = self.engine.lowrank_terms(None) if self.zeroth_order else None
            seed = derive(self.cfg.seed, "validation", self.cfg.problem.seed)
            ts = test_set(self.cfg, self.problem)
            return user_pde_metrics(self.problem, self.model, low, self.predict, ts, seed, self.dtype, self.device)
        out = evaluate(self.problem, self.predict, test_set(self.cfg, self.problem), self.dtype, self.device)
        low = self.engine.lowrank_terms(None) if self.zeroth_order else None
        seed = derive(self.cfg.seed, "validation", self.cfg.problem.seed)
        return {**out, **validation_residual(self.problem, self.model, low, seed, dtype=self.dtype, device=self.device)}

    def checksum(self) -> float:
        with torch.no_grad():
            return self.model.checksum()

    def counters(self) -> dict[str, int]:
        """What the engine's updates refused or cut so far (``engine.COUNTERS``); empty for first-order methods."""
        return dict(getattr(self.engine, "counters", {}))

    def fingerprint(self, sample: int = 4096) -> str:
        """A cheap digest of the state, compared across replicas after every step (``worker.executor``).

        BLAKE2b of the bytes of every state tensor, except that a tensor of more than 16·``sample`` elements
        (W₁ at large d, a random W₁ basis, W₁'s dense momentum) contributes an evenly strided ``sample`` of its
        elements: O(h² + sample) per step instead of O(P). The full ``state_tensors`` digest runs every few steps.
        """
        h = hashlib.blake2b(digest_size=16)
        sd = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        sd.update({f"engine.{k}": v for k, v in self.engine.state_dict().items()})
        for name in sorted(sd):
            t = sd[name].detach().reshape(-1)
            if t.numel() > 16 * sample:
                t = t[:: t.numel() // sample]
            h.update(name.encode())
            h.update(t.contiguous().cpu().numpy().tobytes())
        return h.hexdigest()

    def state_tensors(self) -> dict[str, Tensor]:
        sd = {f"model.{k}": v.detach() for k, v in self.model.state_dict().items()}
        sd.update({f"engine.{k}": v for k, v in self.engine.state_dict().items()})
        return {k: v.contiguous().cpu() for k, v in sd.items()}

    def load_state_tensors(self, sd: dict[str, Tensor]) -> None:
        with torch.no_grad():
            for k, v in self.model.state_dict().items():
                v.copy_(sd[f"model.{k}"])
        self.engine.load_state_dict({k[7:]: v.to(self.device) for k, v in sd.items() if k.startswith("engine.")})

    def save_checkpoint(self, path: Path) -> None:
        """Write the state into the folder ``path`` (created). Not atomic by itself: the trainer writes into a
        fresh folder and swaps it in (``Trainer._write_swapped``)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file(self.state_tensors(), str(path / "state.safetensors"))
        (path / "schedule.json").write_text(json.dumps(self.schedule.state_dict()))
        (path / "counters.json").write_text(json.dumps(self.counters()))

    def load_checkpoint(self, path: Path) -> None:
        path = Path(path)
        # the model's tensors are read in place (``state_io``: no second copy of W₁), the engine's loaded whole
        model = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        rest = load_into(path / "state.safetensors", model)
        self.engine.load_state_dict({k[7:]: v.to(self.device) for k, v in rest.items() if k.startswith("engine.")})
        self.schedule.load_state_dict(json.loads((path / "schedule.json").read_text()))
        if (path / "counters.json").exists() and hasattr(self.engine, "counters"):
            self.engine.counters.update(json.loads((path / "counters.json").read_text()))

    def export(self, out_dir: Path) -> dict:
        """Write model.safetensors (effective weights) and samples.npz; return facts for metrics.json."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if self.zeroth_order:
            self.engine.fold()
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in self.model.state_dict().items()},
            str(out_dir / "model.safetensors"),
            metadata={
                "problem": self.cfg.problem.name,
                "dim": str(self.cfg.problem.dim),
                "problem_seed": str(self.cfg.problem.seed),
                "activation": "tanh",
                "output": "u(x, t) = g(x) + (T - t) * N(x, t)" if self.parabolic else "u(x) = g(x) + B(x) * N(x)",
                **({"pde": self.cfg.problem.pde} if self.cfg.problem.pde is not None else {}),
            },
        )
        (parabolic.write_samples if self.parabolic else write_samples)(self, out_dir / "samples.npz")
        return {"params": self.model.num_params()}


def write_samples(solver: Solver, path: Path, max_floats: int = 20_000_000, head: int = 8) -> None:
    """samples.npz: test points (or their first ``head`` coordinates and radii when too large),
    prediction ``u_pred``, exact ``u_exact`` and boundary factor ``B``."""
    cfg = solver.cfg
    ts = test_set(cfg, solver.problem)
    n = min(cfg.eval.sample_points, ts.n)
    xs, xh, rs, up, ue, bs = [], [], [], [], [], []
    full = n * cfg.problem.dim <= max_floats
    got = 0
    for x in ts.chunks(torch.float64, solver.device):
        x = x[: n - got]
        got += x.shape[0]
        # a copy: a view's numpy array would keep the whole chunk alive (at d = 10^7 a chunk is one 80 MB row)
        (xs if full else xh).append((x if full else x[:, :head]).cpu().numpy().copy())
        rs.append(row_norms(x).cpu().numpy())
        up.append(solver.predict(x).double().cpu().numpy())
        has_exact = getattr(solver.problem, "has_exact", True)  # user PDEs may have no u*: NaN then
        ue.append(solver.problem.u_exact(x).cpu().numpy() if has_exact else np.full(x.shape[0], np.nan))
        bs.append(solver.problem.boundary(x).cpu().numpy())
        if got >= n:
            break
    arrays = {
        "u_pred": np.concatenate(up),
        "u_exact": np.concatenate(ue),
        "B": np.concatenate(bs),
        "r": np.concatenate(rs),
    }
    arrays["x" if full else "x_head"] = np.concatenate(xs if full else xh)
    np.savez_compressed(path, **arrays)


class LocalExecutor:
    """Runs every step in this process (one worker)."""

    def __init__(self, cfg: RunConfig, device: str | None = None):
        self.solver = Solver(cfg, device)

    def step(self, t: int) -> StepResult:
        return StepResult(self.solver.local_step(t), 0)

    def evaluate(self) -> dict[str, float]:
        return self.solver.evaluate_test()

    def set_horizon(self, horizon: int) -> None:
        self.solver.schedule.horizon = int(horizon)

    def save_checkpoint(self, path: Path) -> None:
        self.solver.save_checkpoint(path)

    def start(self) -> dict:
        return self.solver.start()

    def refit(self) -> dict:
        return self.solver.refit()

    def load_checkpoint(self, path: Path) -> None:
        self.solver.load_checkpoint(path)

    def export(self, out_dir: Path) -> dict:
        return self.solver.export(out_dir)

    def describe(self) -> dict:
        return {"params": self.solver.model.num_params(), "device": self.solver.device}

    def counters(self) -> dict[str, int]:
        return self.solver.counters()

    def close(self) -> None:
        pass
