"""Where the HJB (Cole–Hopf) error sits: mean offset vs the rest, against t, against s = |x|² − 2dνt.

    OMP_NUM_THREADS=1 python benchmarks/hjb_error_anatomy.py --dim 100 --steps 1000 --out /tmp/a.json \
        [--knob NAME=JSON ...] [--every 250]

Trains ``sdze`` (or ``--method``) on the catalogue problem from its plain spec plus the knobs, in this process, and
every ``--every`` steps decomposes e = u_θ − u* on the run's 2 000-point test set:
  - rel L2, the flat null (best c), and rel L2 of e − mean(e) (the error left after the best shift of u_θ);
  - the best fit u* ≈ a + b·s (s = |x|² − 2dt) and its rel L2 (how much of u*'s spread is that one feature);
  - per time bin (5 bins of t): RMS e, mean e, std u*, std u_θ, corr(u_θ, u*);
  - the slope of u_θ and of u* against s (least squares), overall;
  - on 2 000 terminal points (t = T, the training law): RMS (u − g), std g, corr(u, g).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from knob_args import knob_override  # noqa: E402

from sdze_core.parabolic.sampling import sample_points  # noqa: E402
from sdze_core.parabolic.solving import test_set  # noqa: E402
from sdze_core.seeds import generator  # noqa: E402
from sdze_core.solver import Solver  # noqa: E402
from sdze_core.spec import JobSpec  # noqa: E402


def _slope(y, s):
    sc = s - s.mean()
    return float((sc * (y - y.mean())).sum() / sc.square().sum())


def anatomy(solver) -> dict:
    p, cfg = solver.problem, solver.cfg
    d = p.dim
    xs = torch.cat(list(test_set(cfg, p).chunks(torch.float64)))
    x, t = xs[:, :d], xs[:, d]
    us = p.u_exact(x, t)
    u = solver.predict(xs.to(solver.dtype)).double()
    e = u - us
    nrm = us.norm()
    s = x.square().sum(1) - 2 * p.nu * d * t
    A = torch.stack([torch.ones_like(s), s], 1)
    coef = torch.linalg.lstsq(A, us.unsqueeze(1)).solution[:, 0]
    out = {
        "rel_l2": float(e.norm() / nrm),
        "flat_null": float((us - us.mean()).norm() / nrm),
        "mean_e": float(e.mean()),
        "rel_l2_after_shift": float((e - e.mean()).norm() / nrm),
        "rel_l2_affine_in_s": float((us - A @ coef).norm() / nrm),
        "slope_u_s": _slope(u, s),
        "slope_ustar_s": _slope(us, s),
        "corr_u_ustar": float(torch.corrcoef(torch.stack([u, us]))[0, 1]),
        "bins": [],
    }
    edges = torch.linspace(0, p.T, 6, dtype=torch.float64)
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        m = (t >= a) & (t < b)
        if m.sum() < 3:
            continue
        um, usm, em, sm = u[m], us[m], e[m], s[m]
        out["bins"].append(
            {
                "t": [round(float(a), 2), round(float(b), 2)],
                "n": int(m.sum()),
                "rms_e": float(em.square().mean().sqrt()),
                "mean_e": float(em.mean()),
                "std_ustar": float(usm.std()),
                "std_u": float(um.std()),
                "corr": float(torch.corrcoef(torch.stack([um, usm]))[0, 1]),
                "slope_u_s": _slope(um, sm),
                "slope_ustar_s": _slope(usm, sm),
            }
        )
    xt = sample_points(p, 2000, generator(12345), torch.float64)
    xt[:, d] = p.T
    xt[:, :d] = torch.randn(2000, d, generator=generator(54321), dtype=torch.float64) * math.sqrt(2 * p.nu * p.T)
    g = p.terminal.value(xt[:, :d])
    uT = solver.predict(xt.to(solver.dtype)).double()
    out["terminal"] = {
        "rms_u_minus_g": float((uT - g).square().mean().sqrt()),
        "mean_u_minus_g": float((uT - g).mean()),
        "std_g": float(g.std()),
        "corr_u_g": float(torch.corrcoef(torch.stack([uT, g]))[0, 1]),
    }
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", default="hjb_cole_hopf")
    ap.add_argument("--method", default="sdze")
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=None, help="stop after this many seconds of training")
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--knob", type=knob_override, action="append", default=[])
    ap.add_argument("--save", default=None, help="torch.save the final model state here")
    ap.add_argument(
        "--problem-field", type=knob_override, action="append", default=[], help="NAME=JSON: a ParabolicProblem field"
    )
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    solver_spec = {"method": a.method, "steps": a.steps, **dict(a.knob)}
    if a.seconds:
        solver_spec["time_limit_s"] = a.seconds
    spec = {
        "problem": {"name": a.problem, "dim": a.dim},
        "solver": solver_spec,
        "eval": {"test_points": 2000, "every": a.every},
        "seed": a.seed,
    }
    if a.problem_field:  # a variant of the catalogue problem (terminal_weight, train_law, ...)
        import dataclasses

        from sdze_core.parabolic import problems as P

        base = P.PARABOLIC_CATALOGUE[a.problem]
        P.PARABOLIC_CATALOGUE[a.problem] = lambda d: dataclasses.replace(base(d), **dict(a.problem_field))
        spec["problem_fields"] = dict(a.problem_field)
    s = Solver(JobSpec.model_validate({k: v for k, v in spec.items() if k != "problem_fields"}).to_config())
    res = {"spec": spec, "rows": [], "load0": os.getloadavg()[0]}
    t0 = time.perf_counter()
    train = 0.0
    s.start()
    for t in range(a.steps):
        t1 = time.perf_counter()
        loss = s.local_step(t)
        train += time.perf_counter() - t1
        last = t + 1 == a.steps or (a.seconds and train > a.seconds)
        if (t + 1) % a.every == 0 or last:
            an = anatomy(s)
            an.update(step=t + 1, train_s=round(train, 1), loss=float(loss) if loss is not None else None)
            res["rows"].append(an)
            b = " ".join(f"{r['rms_e']:.3f}/{r['mean_e']:+.3f}/{r['corr']:.2f}" for r in an["bins"])
            print(
                f"step {t + 1} {train:.0f}s rel {an['rel_l2']:.4f} flat {an['flat_null']:.4f} "
                f"shift {an['rel_l2_after_shift']:.4f} mean_e {an['mean_e']:+.4f} corr {an['corr_u_ustar']:.3f} "
                f"slope {an['slope_u_s']:.5f}/{an['slope_ustar_s']:.5f} | bins rms/mean/corr {b} | "
                f"T: rms {an['terminal']['rms_u_minus_g']:.4f} std_g {an['terminal']['std_g']:.4f} "
                f"corr {an['terminal']['corr_u_g']:.3f}",
                flush=True,
            )
            Path(a.out).write_text(json.dumps(res, indent=1))
        if last:
            break
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    res["load1"] = os.getloadavg()[0]
    Path(a.out).write_text(json.dumps(res, indent=1))
    if a.save:
        torch.save(s.model.state_dict(), a.save)


if __name__ == "__main__":
    main()
