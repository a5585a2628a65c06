"""Error against t (parabolic.evaluation.time_slices): slice points, what is known on each slice, the figures."""

import math

import pytest
import torch

from sdze_core.parabolic import make_parabolic_problem
from sdze_core.parabolic.evaluation import SLICES, null_constant, slice_points, time_slices
from sdze_core.parabolic.sampling import ParabolicTestSet

F64 = torch.float64


@pytest.mark.parametrize("name", ["hjb_cole_hopf", "bsb"])
def test_slice_points_follow_the_test_law_at_their_time(name):
    p = make_parabolic_problem(name, 4)
    xi = torch.randn(20_000, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    x0 = p.origin(F64)
    at0 = slice_points(p, 0.0, xi)
    assert torch.equal(at0[:, :4], x0.expand(20_000, 4)) and torch.all(at0[:, 4] == 0)  # the marginal at 0 is δ(x₀)
    t = 0.5 * p.T
    x = slice_points(p, t, xi)[:, :4]
    if p.law == "gaussian":  # x = x₀ + √(2νt)ξ: variance 2νt per coordinate
        assert abs(float(x.var(0).mean()) / (2 * p.nu * t) - 1) < 0.03
    else:  # geometric Brownian motion without drift: E[x] = x₀
        torch.testing.assert_close(x.mean(0), x0, rtol=0.02, atol=0)


def test_exact_prediction_has_zero_error_and_g_has_the_terminal_null():
    p = make_parabolic_problem("hjb_cole_hopf", 6)

    def exact(xt):
        return p.u_exact(xt[:, :6].double(), xt[:, 6].double())

    def terminal_only(xt):
        return p.terminal.value(xt[:, :6].double())

    test = ParabolicTestSet(p, 300, seed=1)
    K = null_constant(p, test)
    good, arrays = time_slices(p, exact, 50, seed=3, null_K=K, dtype=F64, rows=16)
    null, _ = time_slices(p, terminal_only, 50, seed=3, null_K=K, dtype=F64, rows=16)
    assert [s["t"] for s in good] == [k * p.T / (SLICES - 1) for k in range(SLICES)]
    for s, n in zip(good, null, strict=True):
        assert s["rel_l2"] < 1e-12 and s["origin_rel_error"] < 1e-12
        assert n["rel_l2"] == pytest.approx(s["null_terminal_rel_l2"], rel=1e-12)
    assert [s["truth"] for s in good] == ["exact"] * 4 + ["terminal condition"]  # u(T, ·) = g by definition
    assert good[-1]["null_terminal_rel_l2"] == 0.0 and good[0]["null_terminal_rel_l2"] > 0.1  # g is u at T only
    # the best constant of the test set, evaluated on slice t: ‖g + τK − u*‖/‖u*‖ from the saved arrays
    k = 2
    u, g = arrays["slice_u_ref"][k], arrays["slice_g"][k]
    want = float((g + (p.T - good[k]["t"]) * K - u).norm() / u.norm())
    assert good[k]["null_rel_l2"] == pytest.approx(want, rel=1e-12)
    assert arrays["slice_u_pred"].shape == (SLICES, 50)
    torch.testing.assert_close(arrays["slice_u_pred"], arrays["slice_u_ref"])


def test_point_reference_problem_knows_only_t0_and_T():
    p = make_parabolic_problem("semilinear_heat", 10)  # u(0, 0) = 0.47006; g = 5/(10 + 2|x|²)

    def constant(xt):
        return torch.full((xt.shape[0],), 0.4, dtype=xt.dtype)

    slices, arrays = time_slices(p, constant, 40, seed=5, dtype=F64)
    assert [s["truth"] for s in slices] == ["reference point", None, None, None, "terminal condition"]
    assert slices[0]["rel_l2"] == pytest.approx(abs(0.4 - 0.47006) / 0.47006, rel=1e-12)
    assert slices[0]["rel_l2"] == slices[0]["origin_rel_error"]
    assert all(s["rel_l2"] is None and s["null_terminal_rel_l2"] is None for s in slices[1:4])
    assert all(math.isnan(float(v)) for v in arrays["slice_rel_l2"][1:4])
    g = arrays["slice_g"][-1]
    assert slices[-1]["rel_l2"] == pytest.approx(float((0.4 - g).norm() / g.norm()), rel=1e-12)
    assert slices[-1]["u_origin_ref"] == 0.5 and slices[-1]["null_rel_l2"] is None  # g(0) = 1/2; no best K
