"""Row norms of wide float32 matrices (``sdze_core.norms``): accurate at d = 10^7, unchanged bits up to 2^16."""

import pytest
import torch

from sdze_core.norms import BLOCK, row_norms, squared_row_norms
from sdze_core.problems import make_problem


def _points(n: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) / d**0.5 * 0.99  # |x| ≈ 0.99: the unit ball's rim, where B is small


@pytest.mark.parametrize("d", [BLOCK + 3, 10**6, 10**7])
def test_wide_float32_rows_are_accurate(d):
    """≤ 2e-6 relative against float64 sums of squares (measured ≤ 4.5e-7; ``torch.linalg.vector_norm`` alone:
    2e-5 at d = 10^6, 6e-4 at d = 10^7 on this CPU)."""
    x = _points(2, d)
    exact = x.double().square().sum(-1)
    s = squared_row_norms(x)
    assert s.dtype == torch.float32 and s.shape == (2,)
    assert float(((s.double() - exact).abs() / exact).max()) <= 2e-6
    s64 = squared_row_norms(x, torch.float64)
    assert s64.dtype == torch.float64
    assert float(((s64 - exact).abs() / exact).max()) <= 2e-6
    r = row_norms(x)
    assert float(((r.double() - exact.sqrt()).abs() / exact.sqrt()).max()) <= 2e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_up_to_one_block_the_former_expression_keeps_its_bits(dtype):
    x = _points(5, BLOCK, seed=1).to(dtype)
    assert torch.equal(squared_row_norms(x), torch.linalg.vector_norm(x, dim=-1).square())
    assert torch.equal(squared_row_norms(x, torch.float64), torch.linalg.vector_norm(x, dim=-1).double().square())
    assert torch.equal(row_norms(x), x.norm(dim=1))


def test_boundary_factor_at_d_1e7_from_float32_points():
    """B = 1 − |x|² near the rim of the unit ball at d = 10^7: the float32 points give B within 1e-6 of the float64
    value (a float32 ``vector_norm`` was off by ≈ 6e-4 — larger than the constant null's error once u = B·N with
    N ≈ 434 multiplies it)."""
    x = _points(2, 10**7, seed=2)
    p = make_problem("poisson_two_body", 10**7, c=torch.zeros(10**7 - 1))
    assert float((p.boundary(x).double() - p.boundary(x.double())).abs().max()) <= 1e-6
