"""Variance of the sampled parabolic residual with and without g's exact coordinate sums (the control variate).

    python benchmarks/parabolic_variance.py > docs/time-dependent-variance.json

At a fixed random network (width 12, depth 3, float64), 8 points of each problem's law and 200 seeded SDGD draws
of S = 16 coordinates: mean over points of Var(R̂), with the shift (``ParabolicBatch.shift``) and without it, under
the hard ansatz u = g + (T − t)·N (the control variate is that ansatz's).
"""

from __future__ import annotations

import dataclasses
import json

import torch

from sdze_core.model import MLP
from sdze_core.parabolic.problems import make_parabolic_problem
from sdze_core.parabolic.residual import batch_from_points, net_jet, residual, sample_spatial, u_jet
from sdze_core.parabolic.sampling import sample_points
from sdze_core.seeds import generator

F64 = torch.float64


def main() -> None:
    rows = []
    for name in ("semilinear_heat", "allen_cahn_time", "hjb_cole_hopf", "bsb", "reaction_diffusion"):
        for d in (200, 1000):
            p = dataclasses.replace(make_parabolic_problem(name, d), terminal_rule="hard")
            m = MLP.init(d + 1, 12, 3, seed=3, dtype=F64)
            xt = sample_points(p, 8, generator(6), F64)
            cv, plain = [], []
            for k in range(200):
                b = batch_from_points(p, xt, sample_spatial("sdgd", d, 16, generator(2000 + k), F64))
                n = net_jet(b, m.W, m.b)[1]
                cv.append(residual(p, b, u_jet(b, n)))
                plain.append(residual(p, dataclasses.replace(b, shift=None), u_jet(b, n)))
            v_cv = float(torch.stack(cv).var(0).mean())
            v_plain = float(torch.stack(plain).var(0).mean())
            rows.append(
                {"problem": name, "dim": d, "var_with_cv": v_cv, "var_without": v_plain, "ratio": v_plain / v_cv}
            )
    print(
        json.dumps(
            {"command": "python benchmarks/parabolic_variance.py", "S": 16, "draws": 200, "rows": rows}, indent=1
        )
    )


if __name__ == "__main__":
    main()
