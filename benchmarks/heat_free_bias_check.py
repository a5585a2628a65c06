"""Does the issue-12 free output bias fire on semilinear_heat (d = 10^3)? 400 sdze steps, counting the steps where
``engine.probes_gauss_newton.free_bias`` frees the bias, with the reference-point error and held-out residual every
100 steps. Output of the committed run: docs/heat_free_bias_check.txt ("free-bias steps [damped, free]").

    OMP_NUM_THREADS=1 python benchmarks/heat_free_bias_check.py 0.98     # the gn_free_bias threshold
"""

import sys

from sdze_core.engine import probes_gauss_newton as gn
from sdze_core.solver import Solver
from sdze_core.spec import JobSpec


def main() -> None:
    threshold = float(sys.argv[1])
    spec = JobSpec.model_validate(
        {
            "problem": {"name": "semilinear_heat", "dim": 1000},
            "solver": {"method": "sdze", "steps": 400, "gn_free_bias": threshold},
            "eval": {"test_points": 200, "every": 100},
        }
    )
    solver = Solver(spec.to_config())
    original, hits = gn.free_bias, [0, 0]

    def counting(P, h1, th):
        mask = original(P, h1, th)
        hits[mask is not None] += 1
        return mask

    gn.free_bias = counting
    for t in range(400):
        solver.local_step(t)
        if (t + 1) % 100 == 0:
            ev = solver.evaluate_test()
            figures = {k: ev.get(k) for k in ("ref_rel_error", "val_residual")}
            print(threshold, t + 1, figures, "free-bias steps", hits, flush=True)


if __name__ == "__main__":
    main()
