"""Points that live several steps (knob ``point_lifetime``, ``sdze_core/point_pool.py``): one group of the batch is
redrawn per step, the rest kept with their source values; the batch stays a pure function of (job seed, step,
worker), so replicas and resumed runs agree; the method still learns; impossible combinations are refused."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from core_helpers import params_equal, tiny_spec
from pydantic import ValidationError
from test_learning import learned, learning_run

from sdze_core.memory import estimate
from sdze_core.point_pool import born_step, group_sizes
from sdze_core.residual import BatchSource, make_batch, source_chunked
from sdze_core.seeds import generator
from sdze_core.solver import Solver
from sdze_core.spec import JobSpec


def test_groups_split_the_batch_and_each_is_redrawn_every_lifetime_steps():
    assert group_sizes(10, 4) == [3, 3, 2, 2] and group_sizes(100, 1) == [100] and group_sizes(5, 5) == [1] * 5
    L = 4
    for g in range(L):
        borns = [born_step(t, g, L) for t in range(12)]
        assert all(b <= t and (b - g) % L == 0 and t - b < L for t, b in enumerate(borns))
        assert sorted({t for t in range(12) if born_step(t, g, L) == t}) == list(range(g, 12, L))


def _source(lifetime: int, n: int = 10, dim: int = 30) -> tuple[BatchSource, object]:
    cfg = tiny_spec(problem={"name": "sine_gordon_two_body", "dim": dim}, batch_size=n, point_lifetime=lifetime)
    cfg = cfg.to_config()
    s = Solver(cfg, "cpu")
    return s.engine.batches, s


def _rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x}


def test_each_step_draws_one_group_and_keeps_the_others_with_their_source_values():
    src, solver = _source(4)
    prev = src.get(0, 0)
    for t in range(1, 9):
        b = src.get(t, 0)
        kept = _rows(b.x) & _rows(prev.x)
        new = group_sizes(10, 4)[t % 4]
        assert len(kept) == 10 - new, t
        # the kept source values are those of the kept points, and every f is the source at its own point
        f_ref = source_chunked(solver.problem, b.x).to(b.f.dtype)
        torch.testing.assert_close(b.f, f_ref, rtol=1e-6, atol=1e-6 * float(f_ref.abs().max()))
        prev = b
    assert src.pool.drawn == 10 + 8 * 10 // 4  # the first batch whole, then a quarter per step (10 = 3+3+2+2)


def test_the_batch_is_a_pure_function_of_the_step_fresh_or_walked_light_or_full():
    walked, _ = _source(4)
    for t in range(7):
        walked.get(t, 0)
    fresh, _ = _source(4)  # a resumed run, or a replica that never saw the earlier steps
    a, b = walked.get(6, 0), fresh.get(6, 0)
    assert torch.equal(a.x, b.x) and torch.equal(a.f, b.f)
    light, _ = _source(4)
    lb = light.get(6, 0, with_source=False)  # another worker's points only (its data basis) ...
    assert lb.f is None and torch.equal(lb.x, a.x)
    assert torch.equal(light.get(6, 0).f, a.f)  # ... then the full batch at the same points


def test_lifetime_one_is_the_fresh_batch_of_every_step():
    src, solver = _source(1)
    assert src.pool is None
    cfg = solver.cfg.solver
    b = src.get(3, 0)
    ref = make_batch(solver.problem, cfg.batch_size, cfg.estimator, cfg.samples, generator(src.seed(3, 0)))
    assert torch.equal(b.x, ref.x) and torch.equal(b.f, ref.f)


def test_replicas_with_long_lived_points_take_the_same_step():
    spec = tiny_spec(method="sdze", steps=5, point_lifetime=3)
    a, b = Solver(spec.to_config()), Solver(spec.to_config())
    for t in range(5):
        reports = [a.probe(t, w) for w in range(2)]
        a.apply_probes(t, reports)
        b.apply_probes(t, list(reversed(reports)))
    assert params_equal(a, b) and a.checksum() == b.checksum()


def test_sdze_learns_with_points_that_live_four_steps():
    r = learning_run("sdze", {"point_lifetime": 4})
    assert learned(r), r


def test_first_order_baseline_learns_with_points_that_live_four_steps():
    r = learning_run("sdgd_adam", {"point_lifetime": 4})
    assert learned(r), r


@pytest.mark.parametrize(
    "problem,solver,words",
    [
        ({"name": "sine_gordon_two_body", "dim": 50}, {"batch_size": 8, "point_lifetime": 9}, "at most batch_size"),
        ({"name": "semilinear_heat", "dim": 10}, {"point_lifetime": 2}, "for stationary problems"),
    ],
    ids=["longer-than-batch", "time-dependent"],
)
def test_impossible_lifetimes_are_refused_naming_the_field(problem, solver, words):
    with pytest.raises(ValidationError) as e:
        JobSpec.model_validate({"problem": problem, "solver": {"method": "sdze", "steps": 5, **solver}})
    assert "point_lifetime" in str(e.value) and words in str(e.value)


def test_memory_estimate_counts_the_pool_beside_the_assembled_batch():
    cfg = tiny_spec(problem={"name": "sine_gordon_two_body", "dim": 100_000}).to_config()
    pooled = dataclasses.replace(cfg, solver=dataclasses.replace(cfg.solver, point_lifetime=4))
    extra = estimate(pooled).phases["step"] - estimate(cfg).phases["step"]
    assert extra == cfg.solver.batch_size * 100_000 * 4  # one more float32 batch
