"""Reductions over d at d = 10^4 … 10^7 (issue 12, session 10): accuracy of float32 row norms and the cost of the
per-step sums that the high-d step pays.

    OMP_NUM_THREADS=1 python benchmarks/bench_wide_reductions.py [--dims 1e4 1e5 1e6 1e7] [--out FILE]

One torch thread, medians of 3 timings. Rows:
- ``norm_error``: |x|² of 4 points near the rim of the unit ball (|x| ≈ 0.99), float32, relative error against
  float64 sums of squares: ``torch.linalg.vector_norm`` alone, ``x·x`` summed (writes an N × d temporary), and
  ``sdze_core.norms.squared_row_norms`` (2^16-coordinate pieces summed in float64);
- ``w1_norm``: ‖W₁‖_F of a 128 × d float32 matrix as the trust region needs it each step: the former float64 sum of
  squares by fresh row blocks (reproduced here), ``model.float64_sums`` (one reused float64 buffer) and
  ``probes_gauss_newton.frobenius`` (float32 row pieces, float64 sum), with each one's relative error;
- ``source``: ``sine_gordon_two_body``'s f at 100 points (16 at d = 10^7): float64 throughout against
  ``residual.source_chunked`` on float32 points (per-term work float32, sums float64), with max |Δ| / RMS f.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sdze_core.engine.probes_gauss_newton import frobenius  # noqa: E402
from sdze_core.model import float64_sums  # noqa: E402
from sdze_core.norms import squared_row_norms  # noqa: E402
from sdze_core.problems import make_problem  # noqa: E402
from sdze_core.residual import source_chunked  # noqa: E402
from sdze_core.sampling import sample_points  # noqa: E402


def median_s(fn, repeats: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def former_float64_norm(W: torch.Tensor, chunk: int = 1 << 22) -> float:
    """The trust region's ‖W‖_F before session 10: float64 copies of row blocks of ``chunk // d`` rows (≥ 1)."""
    rows = max(1, chunk // W.shape[1])
    s2 = 0.0
    for i in range(0, W.shape[0], rows):
        s2 += float(W[i : i + rows].double().square().sum())
    return math.sqrt(s2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dims", nargs="+", type=float, default=[1e4, 1e5, 1e6, 1e7])
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench_wide_reductions_s10.json"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for d in (int(x) for x in a.dims):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(4, d, generator=g) / math.sqrt(d) * 0.99
        exact = x.double().square().sum(-1)

        def rel(s, exact=exact):
            return float(((s.double() - exact).abs() / exact).max())

        rows.append(
            {
                "row": "norm_error",
                "d": d,
                "vector_norm": rel(torch.linalg.vector_norm(x, dim=-1).square()),
                "x_times_x_sum": rel((x * x).sum(-1)),
                "squared_row_norms": rel(squared_row_norms(x)),
            }
        )
        print(rows[-1], flush=True)
        del x
        W = torch.empty(128, d).uniform_(-1e-3, 1e-3, generator=g).add_(1e-4)
        t_old, n_old = median_s(lambda W=W: former_float64_norm(W), 1 if d >= 10**7 else 3)
        t_sums, s = median_s(lambda W=W: float64_sums(W))
        t_new, n_new = median_s(lambda W=W: frobenius(W))
        ref = math.sqrt(s[1])
        rows.append(
            {
                "row": "w1_norm",
                "d": d,
                "h": 128,
                "former_float64_row_blocks_s": t_old,
                "float64_sums_s": t_sums,
                "frobenius_s": t_new,
                "former_rel_error": abs(n_old - ref) / ref,
                "frobenius_rel_error": abs(n_new - ref) / ref,
            }
        )
        print(rows[-1], flush=True)
        del W
        p = make_problem("sine_gordon_two_body", d)
        n = 16 if d >= 10**7 else 100
        pts = sample_points(p, n, torch.Generator().manual_seed(1), torch.float32, "cpu")
        t64, f64 = median_s(lambda p=p, pts=pts: source_chunked(p, pts.double()))
        t32, f32 = median_s(lambda p=p, pts=pts: source_chunked(p, pts))
        rms = float(f64.square().mean().sqrt())
        rows.append(
            {
                "row": "source",
                "d": d,
                "points": n,
                "float64_s": t64,
                "float32_terms_s": t32,
                "ratio": t64 / t32,
                "max_abs_diff_over_rms_f": float((f32 - f64).abs().max()) / rms,
            }
        )
        print(rows[-1], flush=True)
    out = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/bench_wide_reductions.py --dims "
        + " ".join(f"{x:g}" for x in a.dims),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
        "load_1min_end": os.getloadavg()[0],
        "rows": rows,
    }
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
