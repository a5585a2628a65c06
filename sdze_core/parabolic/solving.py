"""The parabolic side of a solve (``solver.Solver`` dispatches here): test set, metrics and samples.npz.

Metrics are ``evaluation.evaluate``'s (rel L2 and both nulls where a closed form exists, the reference-point
error where a reference value exists). samples.npz holds the first ``eval.sample_points`` test points with their
time: ``t``, ``r`` = |x|, ``x`` (or ``x_head``, the first 8 coordinates, when the points are too many numbers),
``u_pred``, ``g`` (the terminal-only null) and ``u_exact`` where a closed form exists — samples at many t, so
a page can plot error against t — plus the ``slice_*`` arrays of ``evaluation.time_slices`` (the same seeded points
at t = 0, T/4, T/2, 3T/4, T), whose per-slice figures also go to ``time_slices.json`` (what the page plots).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..artifacts import TIME_SLICES, write_json
from ..norms import row_norms
from ..seeds import derive
from .evaluation import evaluate, null_constant, time_slices
from .problems import ParabolicProblem
from .sampling import ParabolicTestSet
from .validation import validation_residual


def test_set(cfg, problem: ParabolicProblem) -> ParabolicTestSet:
    """The run's seeded held-out set (the same seed rule as the stationary test set)."""
    return ParabolicTestSet(
        problem, cfg.eval.test_points, derive(cfg.seed, "testset", cfg.problem.seed), cfg.eval.chunk
    )


def evaluate_solver(solver) -> dict[str, float | None]:
    """Test-set and reference-point metrics plus the held-out residual. Keys the trainer reads for every problem
    (rel_l2, null_rel_l2, aniso_ratio) are None where there is no closed form."""
    p, cfg = solver.problem, solver.cfg
    out: dict[str, float | None] = {"rel_l2": None, "null_rel_l2": None, "aniso_ratio": None}
    out.update(evaluate(p, solver.predict, test_set(cfg, p), solver.dtype, solver.device))
    low = solver.engine.lowrank_terms(None) if solver.zeroth_order else None
    seed = derive(cfg.seed, "validation", cfg.problem.seed)
    out.update(validation_residual(p, solver.model, low, seed, dtype=solver.dtype, device=solver.device))
    return out


def write_samples(solver, path: Path, max_floats: int = 20_000_000, head: int = 8) -> None:
    cfg, p = solver.cfg, solver.problem
    ts = test_set(cfg, p)
    n = min(cfg.eval.sample_points, ts.n)
    full = n * p.input_dim <= max_floats
    cols: dict[str, list] = {"x" if full else "x_head": [], "t": [], "r": [], "u_pred": [], "g": [], "u_exact": []}
    got = 0
    for xt in ts.chunks(torch.float64, solver.device):
        xt = xt[: n - got]
        got += xt.shape[0]
        x, t = xt[:, : p.dim], xt[:, p.dim]
        # copies: a view's numpy array would keep the whole chunk alive (at d = 10^7 a chunk is one 80 MB row)
        cols["x" if full else "x_head"].append((x if full else x[:, :head]).cpu().numpy().copy())
        cols["t"].append(t.cpu().numpy().copy())
        cols["r"].append(row_norms(x).cpu().numpy())
        cols["u_pred"].append(solver.predict(xt).double().cpu().numpy())
        cols["g"].append(p.terminal.value(x).cpu().numpy())
        if p.has_exact:
            cols["u_exact"].append(p.u_exact(x, t).cpu().numpy())
        if got >= n:
            break
    # error against t: slices at t = 0, T/4, …, T on the same number of seeded points (evaluation.time_slices)
    K = null_constant(p, ts, solver.device)
    seed = derive(ts.seed, "slices")
    slices, arrays = time_slices(p, solver.predict, n, seed, K, solver.dtype, solver.device, ts.rows)
    np.savez_compressed(
        path,
        **{k: np.concatenate(v) for k, v in cols.items() if v},
        **{k: v.numpy() for k, v in arrays.items()},
    )
    facts = {"problem": p.name, "dim": p.dim, "T": p.T, "terminal_rule": p.terminal_rule, "law": p.law}
    write_json(path.with_name(TIME_SLICES), {**facts, "null_K": K, "slices": slices})
