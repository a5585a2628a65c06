"""Metrics that need no exact solution (SPEC §3.1): a held-out PDE residual and the boundary error.

On a seeded test set (the problem's own point law, chunked) with the trained network u = g + B·N:

    residual_rms      = sqrt(mean_n R_n²),  R = L̂[u] + F̃(u) − f̃   (the engine's residual, see ``problem``)
    residual_rel      = residual_rms / sqrt(mean_n f̃_n²)
    boundary_rms      = sqrt(mean_m (u(y_m) − g(y_m))²) at seeded boundary points y_m
    boundary_rel      = boundary_rms / sqrt(mean_m g(y_m)²)     (absolute when g ≡ 0: reported as boundary_rms)

L̂ is exact (all d coordinate directions) up to ``exact_max_dim`` and otherwise the unbiased SDGD estimate
with ``samples`` seeded coordinates per chunk (then E[R̂²] ≥ R²: the figure is an upper estimate). For the
biharmonic operator L̂ is the Gaussian estimate with ``samples`` directions. With the hard constraint the
boundary error is zero up to rounding; it is reported so that a broken constraint cannot go unseen.
Where u* exists, rel L2 and the constant null are computed by ``evaluation`` as for the catalogue.
"""

from __future__ import annotations

import math

import torch

from ..estimators import Directions, sample_directions
from ..evaluation import evaluate
from ..model import MLP
from ..residual import StepBatch, residual, u_jet
from ..sampling import TestSet
from ..seeds import derive, generator
from ..taylor import FirstLayer, boundary_jet, hidden_jet

# what a user PDE's evaluation adds to metrics.json (besides rel_l2 / null_rel_l2 / aniso_ratio, null without u*)
PDE_METRICS = ("residual_rms", "residual_rel", "boundary_rms", "boundary_rel", "metrics_apply")


def residual_metrics(
    problem,
    model: MLP,
    test_points: int,
    seed: int,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    samples: int = 64,
    exact_max_dim: int = 1000,
    boundary_points: int = 512,
    chunk: int = 256,
) -> dict[str, float]:
    """Held-out residual and boundary error of ``model`` on ``problem`` (catalogue or user PDE)."""
    exact = problem.order == 2 and problem.dim <= exact_max_dim
    S = problem.dim if exact else samples
    chunk = max(1, min(chunk, (1 << 24) // (S * model.width)))  # jet tensors (rows, S, h) of ≤ 2^24 numbers
    test = TestSet(problem, test_points, derive(seed, "residual-test"), chunk)
    rr = ff = 0.0
    for k, x64 in enumerate(test.chunks(torch.float64, device)):
        x = x64.to(dtype)
        gen = generator(derive(seed, "residual-dirs", k), device)
        if exact:
            dirs = Directions(order=2, weight=1.0, idx=torch.arange(problem.dim, device=device))
        else:
            kind = "gauss" if problem.order == 4 else "sdgd"
            dirs = sample_directions(kind, problem.dim, samples, problem.order, gen, dtype, device)
        f = problem.source(x64).to(dtype)
        gv = problem.boundary_value(x64).to(dtype) if not getattr(problem, "g_zero", True) else None
        batch = StepBatch(x, f, dirs, boundary_jet(problem.boundary_poly, x, dirs, problem.order), gv)
        with torch.no_grad():
            first = FirstLayer.compute(model.W[0], model.b[0], x, dirs)
            u = u_jet(batch, hidden_jet(first, model.W[1:-1], model.b[1:-1], problem.order), model.W[-1], model.b[-1])
            R = residual(problem, batch, u).double()
        rr += float(R.square().sum())
        ff += float(f.double().square().sum())
    out = {
        "residual_rms": math.sqrt(rr / test_points),
        "residual_rel": math.sqrt(rr / ff) if ff > 0 else float("nan"),
    }
    dom = getattr(problem, "domain_obj", None)
    if dom is not None:
        y = dom.sample_boundary(
            boundary_points, generator(derive(seed, "boundary-test"), device), torch.float64, device
        )
        g = problem.boundary_value(y)
        with torch.no_grad():
            u = problem.ansatz(y, model.forward(y.to(dtype)).double())
        err = float((u - g).square().mean().sqrt())
        gn = float(g.square().mean().sqrt())
        out["boundary_rms"] = err
        out["boundary_rel"] = err / gn if gn > 0 else float("nan")
    return out


def effective_mlp(model: MLP, lowrank: list | None) -> MLP:
    """The network with its pending low-rank updates folded in: W_l + M_l V_lᵀ for each hidden layer l
    (the first layer's term is h × d, the size of W₁ itself)."""
    if not lowrank or all(t is None for t in lowrank):
        return model
    W = [w.detach() for w in model.W]
    for l, t in enumerate(lowrank):
        if t is not None and t.V is not None:
            W[l] = W[l] + t.M @ t.V.t()
    return MLP(W, [b.detach() for b in model.b])


def user_pde_metrics(
    problem, model: MLP, lowrank: list | None, predict, test: TestSet, seed: int, dtype=torch.float32, device="cpu"
) -> dict[str, float | None]:
    """Everything a user PDE's evaluation reports: rel L2 / null / aniso where u* exists (else None), the
    held-out residual (also as ``val_residual``, the trainer's best-state criterion) and the boundary error."""
    out: dict[str, float | None] = {"rel_l2": None, "null_rel_l2": None, "aniso_ratio": None}
    if problem.has_exact:
        out.update(evaluate(problem, predict, test, dtype, device))
    n = max(64, min(test.n, 2000))
    res = residual_metrics(problem, effective_mlp(model, lowrank), n, seed, dtype, device)
    out.update(res)
    out["val_residual"] = res["residual_rms"]
    out["val_points"] = n
    out["metrics_apply"] = (["rel_l2", "null_rel_l2", "aniso_ratio"] if problem.has_exact else []) + [
        "residual_rms",
        "residual_rel",
        "boundary_rms",
    ]
    return out
