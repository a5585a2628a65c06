"""The test-set metrics (``sdze_core/evaluation.py``): u* chunk by chunk, predictions gathered over chunks so that
each ``predict`` call (one pass over the whole first layer) serves at least ``predict_rows`` points."""

from __future__ import annotations

import math

import torch

from sdze_core import sampling
from sdze_core.evaluation import evaluate
from sdze_core.problems import make_problem


def test_gathered_predictions_give_the_same_metrics_with_fewer_calls():
    problem = make_problem("sine_gordon_two_body", 12)
    test = sampling.TestSet(problem, 50, seed=3, chunk=1)  # one point per chunk, as at d = 10⁷
    calls: list[int] = []

    def predict(x: torch.Tensor) -> torch.Tensor:  # a model that is u* plus a smooth error
        calls.append(x.shape[0])
        return problem.u_exact(x) + 0.01 * x[:, 0] * problem.boundary(x)

    one = evaluate(problem, predict, test, torch.float64, predict_rows=1)
    assert calls == [1] * 50
    calls.clear()
    grouped = evaluate(problem, predict, test, torch.float64, predict_rows=16)
    assert calls == [16, 16, 16, 2]
    for k in ("rel_l2", "null_rel_l2", "aniso_ratio"):
        assert math.isclose(one[k], grouped[k], rel_tol=1e-12), k
    assert 0 < grouped["rel_l2"] < grouped["null_rel_l2"]


def test_point_gather_reuses_one_buffer_and_never_writes_into_a_passed_chunk():
    from sdze_core.evaluation import PointGather

    g = PointGather(4, torch.float32, "cpu")
    rows = [torch.full((1, 3), float(i), dtype=torch.float64) for i in range(9)]
    out = []
    for r in rows:
        if g.add(r):
            out.append(g.take().clone())
            buf = g.buf
    assert [o[:, 0].tolist() for o in out] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert g.buf is buf and g.n == 1  # the same buffer for every call; one point waiting
    big = torch.arange(15.0).reshape(5, 3)
    g2 = PointGather(4, torch.float32, "cpu")
    assert g2.add(big) and g2.take() is big  # a chunk of ≥ rows points passes through without a copy
    g2.add(torch.ones(1, 3))
    assert torch.equal(big, torch.arange(15.0).reshape(5, 3))  # ... and is never written into
