"""Where semilinear heat's reference-point error comes from: Itô's decomposition of a trained state.

    OMP_NUM_THREADS=1 python benchmarks/heat_residual_profile.py --dim 100 --steps 500 \
        --out docs/heat_residual_profile_d100_s8.json [--knob gn_mean_row=0]

For any smooth u and X_t = √2·W_t (the law of the catalogue problem, x₀ = 0), with R = u_t + Δu + F(u) and F
linearized about u* (weight e^{∫F'} taken as 1):

    u(0, 0) − u*(0, 0) ≈ E[(u − g)(T, X_T)] − ∫₀ᵀ E[R(t, X_t)] dt.

Trains ``sdze`` on the catalogue spec (plus ``--knob`` overrides, one torch thread), then measures on fresh seeded
points: the terminal mismatch's mean over 20 000 points of X_T, the residual's mean at each of ``--slices`` times
(midpoints of equal slices of [0, T], 1 000 points each, 128 sampled coordinates: unbiased for R), their Itô
combination and the actual error at (0, 0). Prints and writes one JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from knob_args import knob_override  # noqa: E402

from sdze_core.parabolic.residual import batch_from_points, net_jet, residual, sample_spatial, u_jet  # noqa: E402
from sdze_core.parabolic.sampling import terminal_points  # noqa: E402
from sdze_core.seeds import generator  # noqa: E402
from sdze_core.solver import Solver  # noqa: E402
from sdze_core.spec import JobSpec  # noqa: E402


@torch.no_grad()
def decompose(s: Solver, slices: int, points: int, seed: int = 12345) -> dict:
    """The Itô decomposition of the solver's current state (folds pending low-rank terms into W)."""
    s.engine.fold()
    p, m = s.problem, s.model
    d = p.dim
    W, b = [w.detach() for w in m.W], [x.detach() for x in m.b]
    gen = generator(seed, "cpu")
    xT = terminal_points(p, 20_000, gen, torch.float32, "cpu")
    terminal_bias = float((s.predict(xT).double() - p.terminal.value(xT[:, :d].double())).mean())
    times = [(k + 0.5) * p.T / slices for k in range(slices)]
    mean_r = []
    for t in times:
        xt = torch.zeros(points, d + 1)
        xt[:, :d] = torch.randn(points, d, generator=gen) * math.sqrt(2 * p.nu * t)
        xt[:, d] = t
        batch = batch_from_points(p, xt, sample_spatial("sdgd", d, min(d, 128), gen, torch.float32, "cpu"))
        mean_r.append(float(residual(p, batch, u_jet(batch, net_jet(batch, W, b)[1])).double().mean()))
    integral = sum(mean_r) * p.T / slices
    u00 = float(s.predict(torch.zeros(1, d + 1))[0])
    return {
        "terminal_bias": terminal_bias,
        "residual_integral": integral,
        "ito_error": terminal_bias - integral,
        "error": u00 - p.reference,
        "rel_error": (u00 - p.reference) / p.reference,
        "times": times,
        "mean_residual": mean_r,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0, help="the job seed")
    ap.add_argument("--slices", type=int, default=30)
    ap.add_argument("--points", type=int, default=1000)
    ap.add_argument("--knob", type=knob_override, action="append", default=[], help="NAME=JSON, a solver knob")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    solver = {"method": "sdze", "steps": a.steps, **dict(a.knob)}
    spec = {"problem": {"name": "semilinear_heat", "dim": a.dim}, "solver": solver, "seed": a.seed}
    s = Solver(JobSpec.model_validate(spec).to_config())
    s.start()
    t0 = time.perf_counter()
    for t in range(a.steps):
        s.local_step(t)
    train_s = time.perf_counter() - t0
    out = decompose(s, a.slices, a.points)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    print(json.dumps({k: v for k, v in out.items() if k not in ("times", "mean_residual")}))
    print("mean residual by t:", " ".join(f"{r:+.3f}" for r in out["mean_residual"]))
    out = {"command": "OMP_NUM_THREADS=1 python benchmarks/heat_residual_profile.py " + " ".join(sys.argv[1:]),
           "commit": commit.strip(), "spec": spec, "train_s": round(train_s, 1), **out}  # fmt: skip
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
