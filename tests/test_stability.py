"""The Gauss–Newton trust region: every block's applied step stays within τ · max(‖W‖_F, 1)."""

import pytest
import torch
from core_helpers import tiny_spec

from sdze_core.engine import probes_gauss_newton as gn
from sdze_core.solver import Solver


def _effective(solver):
    solver.engine.fold()
    return [w.clone() for w in solver.model.W], solver.model.b[-1].clone()


@pytest.mark.parametrize("tau", [0.02, 0.2])
def test_each_block_of_an_applied_step_is_within_the_trust_region(tau):
    spec = dict(method="sdze", steps=10, dtype="float64", gn_trust=tau)
    cfg = tiny_spec(**spec, problem={"name": "sine_gordon_two_body", "dim": 60})
    s = Solver(cfg.to_config())
    capped = 0
    for t in range(6):
        before, _ = _effective(s)
        s.local_step(t)
        after, _ = _effective(s)
        for l, (a, b) in enumerate(zip(after[:-1], before[:-1], strict=True)):  # the output layer is free
            bound = tau * max(float(b.norm()), 1.0)
            step = float((a - b).norm())
            assert step <= bound * (1 + 1e-9), (t, l, step, bound)
            capped += step >= bound * (1 - 1e-6)
    assert capped > 0  # the bound was active at least once: the test exercises it


def test_trust_region_scales_blocks_independently_and_leaves_the_bias_free():
    q, r = 3, 2
    S = torch.randn(q, r, r, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    region = gn.TrustRegion(0.1, 0.5, w1_norm=4.0, out_norm=2.0, hidden_norms=(3.0,), probe_S=(S,))  # out bounded
    last = torch.tensor([3.0, 4.0, 7.0], dtype=torch.float64)  # weights (3, 4): norm 5; bias 7
    w1 = torch.full((2, 2), 10.0, dtype=torch.float64)
    ap = torch.tensor([100.0, -50.0, 20.0], dtype=torch.float64)
    last2, w12, ap2 = region.bound(last, w1, ap)
    assert float(last2[-1]) == 7.0
    assert abs(0.5 * float(last2[:-1].norm()) - 0.1 * 2.0) < 1e-12
    assert abs(0.5 * float(w12.norm()) - 0.1 * 4.0) < 1e-12
    assert abs(0.5 * float(torch.einsum("k,kij->ij", ap2, S).norm()) - 0.1 * 3.0) < 1e-12
    small = torch.tensor([1e-3, 0.0, 1.0], dtype=torch.float64)
    assert torch.equal(region.bound(small, None, ap * 0)[0], small)  # inside the region: untouched
    off = gn.TrustRegion(0.0, 0.5, 0.0, 0.0)
    assert off.bound(last, w1, ap)[1] is w1


def test_trust_region_norm_needs_no_float64_copy_of_w1():
    """‖W‖_F for the trust region: float32 norms of row pieces (views, no copy of W₁), squares summed in float64 —
    equal to the float64 norm within float32 rounding (1e-6 relative) whatever the block size, including blocks
    wider than W and widths that are not a multiple of the block."""
    from sdze_core.engine.probes_gauss_newton import frobenius

    W = torch.randn(37, 100_003, generator=torch.Generator().manual_seed(0)) * 3 + 0.5
    for cols, block in ((1001, 1), (100_003, 1000), (100_003, 4096), (100_003, 1 << 16), (100_003, 1 << 22)):
        exact = float(W[:, :cols].double().norm())
        assert abs(frobenius(W[:, :cols], block) - exact) <= 1e-6 * exact
    exact = float(W.double().norm())
    assert frobenius(W.double()) == exact


def test_checksum_needs_no_float64_copy_and_keeps_its_value():
    """The replica checksum sums each float32 parameter in float64 by row blocks (no 8·h·d copy of W₁ at d = 10^7):
    equal to the whole-tensor float64 formula to rounding."""
    from sdze_core.model import float64_sums

    g = torch.Generator().manual_seed(1)
    for shape in ((7, 3001), (5,), ()):
        t = torch.randn(shape, generator=g)
        s1, s2 = float64_sums(t, chunk=1000)
        assert abs(s1 - float(t.double().sum())) <= 1e-12 * float(t.double().abs().sum())
        assert abs(s2 - float(t.double().square().sum())) <= 1e-12 * float(t.double().square().sum())
