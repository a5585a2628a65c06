"""The admission estimate (sdze_core.memory) term by term against its closed form, and the jointly absurd specs."""

from __future__ import annotations

from sdze_core.memory import BLOCK_FLOATS, RUNTIME_BYTES, estimate, param_count, work
from sdze_core.spec import JobSpec

GiB = 1 << 30


def cfg(**parts):
    return JobSpec.model_validate({"problem": {"name": "poisson_two_body", "dim": 1000}, **parts}).to_config()


def test_parts_follow_their_formulas():
    d, h, L, N = 100_000, 128, 4, 100
    e = estimate(cfg(problem={"name": "poisson_two_body", "dim": d}))
    P = h * d + h + (L - 2) * (h * h + h) + h + 1
    assert param_count(d, h, L) == P
    assert e.resident == {"runtime": RUNTIME_BYTES, "weights": 4 * P, "optimizer": 0}
    assert e.phases["step"] == N * d * 4 + 3 * 8 * BLOCK_FLOATS  # N·d = 10^7 > 2^22: full source blocks
    assert e.phases["evaluation"] == 2 * (BLOCK_FLOATS // d) * d * 12
    # checkpoints are written from and read into the live tensors; 2000 sample points × 10^5 > 2·10^7 numbers:
    # samples.npz keeps 8 coordinates and the radius per point
    assert e.phases["checkpoint"] == 2 * 8 * 2000 * 9
    assert e.total == RUNTIME_BYTES + 4 * P + max(e.phases.values())
    # float64 doubles every number; Adam keeps gradient + 2 moments; more workers rebuild a second batch.
    e64 = estimate(cfg(problem={"name": "poisson_two_body", "dim": d}, dtype="float64"))
    assert e64.resident["weights"] == 8 * P
    adam = estimate(cfg(problem={"name": "poisson_two_body", "dim": d}, solver={"method": "sdgd_adam"}))
    assert adam.resident["optimizer"] == 3 * 4 * P
    assert adam.phases["checkpoint"] == 3 * 4 * P + 2 * 8 * 2000 * 9  # the optimizer state is restored whole
    assert e64.phases["step"] == N * d * 8 + 3 * 8 * BLOCK_FLOATS
    two = estimate(cfg(problem={"name": "poisson_two_body", "dim": d}, resources={"workers": 2}))
    assert two.phases["step"] - e.phases["step"] == N * d * 4


def test_absurd_specs_are_huge_and_the_default_d1e7_is_not():
    d7 = {"name": "poisson_two_body", "dim": 10_000_000}
    wide = estimate(cfg(problem=d7, model={"width": 4096}))
    assert wide.total > 150 * GiB and wide.resident["weights"] == 4 * param_count(10**7, 4096, 4)
    batch = estimate(cfg(problem=d7, solver={"batch_size": 100_000}))
    assert batch.phases["step"] > 3000 * GiB and batch.peak_phase == "step"
    assert work(cfg(problem=d7, eval={"test_points": 10_000_000})) == 10**14
    default = estimate(cfg(problem=d7))
    # weights 4.8 GiB + a step's batch 3.7 GiB (checkpoints copy nothing) + runtime
    assert default.peak_phase == "step" and 9 * GiB < default.total < 9.5 * GiB
    assert "weights" in default.describe() and "GiB" in default.describe()
