"""``levenberg.levenberg_marquardt``: both branches (normal equations, n ≤ N; Woodbury dual, n > N) solve the
same damped problem, checked against a direct float64 solve of the definition and against each other."""

import pytest
import torch

from sdze_core.levenberg import levenberg_marquardt

F64 = torch.float64


def definition(P: torch.Tensor, R: torch.Tensor, damping: float) -> torch.Tensor:
    """a = −(H + λ diag H + μ I)⁻¹ g with H = PᵀP/N, g = PᵀR/N, μ = 1e-9 mean(diag H), solved directly."""
    N, n = P.shape
    H = P.T @ P / N
    mu = 1e-9 * float(torch.diagonal(H).mean()) + 1e-30
    A = H + damping * torch.diag(torch.diagonal(H)) + mu * torch.eye(n, dtype=F64)
    return -torch.linalg.solve(A, P.T @ R / N)


@pytest.mark.parametrize("N,n", [(40, 7), (7, 40), (20, 20), (20, 21)])
@pytest.mark.parametrize("damping", [1e-3, 0.1, 10.0])
def test_each_branch_equals_the_definition(N, n, damping):
    g = torch.Generator().manual_seed(N * 100 + n)
    P = torch.randn(N, n, generator=g, dtype=F64) * torch.logspace(0, 2, n, dtype=F64)  # uneven column scales
    R = torch.randn(N, generator=g, dtype=F64)
    torch.testing.assert_close(levenberg_marquardt(P, R, damping), definition(P, R, damping), rtol=1e-8, atol=1e-10)


def test_normal_equations_and_woodbury_agree_on_the_same_problem():
    """Each branch against the other branch's formula on the problem it handles: the dual (Woodbury) result for
    n > N equals the normal-equation solve, the normal-equation result for n ≤ N equals the Woodbury formula."""
    g = torch.Generator().manual_seed(3)
    N = 12
    P = torch.randn(N, 13, generator=g, dtype=F64)
    R = torch.randn(N, generator=g, dtype=F64)
    torch.testing.assert_close(levenberg_marquardt(P, R, 0.5), definition(P, R, 0.5), rtol=1e-8, atol=1e-12)
    Pt = P[:, :10]
    dg = Pt.square().sum(0) / N
    D = 0.5 * dg + (1e-9 * float(dg.mean()) + 1e-30)
    woodbury = -(Pt / D).T @ torch.linalg.solve((Pt / D) @ Pt.T + N * torch.eye(N, dtype=F64), R)
    torch.testing.assert_close(levenberg_marquardt(Pt, R, 0.5), woodbury, rtol=1e-8, atol=1e-12)


def test_a_zero_residual_gives_a_zero_step_and_damping_shrinks_it():
    g = torch.Generator().manual_seed(5)
    P, R = torch.randn(30, 6, generator=g, dtype=F64), torch.randn(30, generator=g, dtype=F64)
    assert torch.equal(levenberg_marquardt(P, torch.zeros(30, dtype=F64), 0.1), torch.zeros(6, dtype=F64))
    norms = [float(levenberg_marquardt(P, R, lam).norm()) for lam in (1e-3, 1e-1, 1e1, 1e3)]
    assert norms == sorted(norms, reverse=True) and norms[-1] < 1e-2 * norms[0]


def definition_free(P: torch.Tensor, R: torch.Tensor, damping: float, free: torch.Tensor) -> torch.Tensor:
    """The same problem with the ``free`` columns undamped: (H + diag((λ dg + μ) ⊙ [not free]))a = −g, μ from the
    damped columns' mean dg, solved directly (positive definite: the free columns are nonzero)."""
    N, n = P.shape
    H = P.T @ P / N
    dg = torch.diagonal(H)
    mu = 1e-9 * float(dg[~free].mean()) + 1e-30
    D = torch.where(free, torch.zeros_like(dg), damping * dg + mu)
    return -torch.linalg.solve(H + torch.diag(D), P.T @ R / N)


@pytest.mark.parametrize("N,n", [(40, 7), (7, 40), (20, 21)])
def test_free_columns_are_left_undamped(N, n):
    """Free columns (the output bias at high d) solved by projection equal the direct solve with zero damping on
    them, in both branches; and however strong the damping, the free column still fits its part exactly."""
    g = torch.Generator().manual_seed(N + n)
    P = torch.randn(N, n, generator=g, dtype=F64) * torch.logspace(0, 2, n, dtype=F64)
    R = torch.randn(N, generator=g, dtype=F64)
    free = torch.zeros(n, dtype=torch.bool)
    free[n - 1] = True
    for damping in (1e-3, 0.1, 10.0):
        torch.testing.assert_close(
            levenberg_marquardt(P, R, damping, free), definition_free(P, R, damping, free), rtol=1e-7, atol=1e-9
        )
    a = levenberg_marquardt(P, R, 1e12, free)  # every other column damped away: the free one is least squares
    pb = P[:, n - 1]
    assert float(a[:-1].abs().max()) < 1e-8 * float(a[-1].abs())
    torch.testing.assert_close(a[-1], -(pb @ R) / (pb @ pb), rtol=1e-6, atol=0)


def test_free_bias_takes_the_level_when_features_are_nearly_constant():
    """The high-d failure and its fix in miniature: 16 weight columns ≈ c_k × the bias column (features nearly
    constant on the batch) and a target that is mostly a level. Damped, the level goes to the weights (each
    column's share ∝ 1/λ_k: 16/17 of it); with the bias free it goes to the bias and the weights stay small."""
    from sdze_core.engine.probes_gauss_newton import free_bias

    g = torch.Generator().manual_seed(7)
    N, h = 12, 16
    pb = 1.0 + 0.1 * torch.randn(N, generator=g, dtype=F64)
    Pw = pb.unsqueeze(1) * (1.0 + 1e-3 * torch.randn(N, h, generator=g, dtype=F64))
    P = torch.cat([Pw, pb.unsqueeze(1)], 1)
    R = -5.0 * pb + 1e-3 * torch.randn(N, generator=g, dtype=F64)
    free = free_bias(P, h + 1, 0.98)
    assert free is not None and free.tolist() == [False] * h + [True]
    damped, freed = levenberg_marquardt(P, R, 0.1), levenberg_marquardt(P, R, 0.1, free)
    assert float(damped[:h].sum()) > 0.8 * 5.0 and abs(float(damped[h])) < 0.1 * 5.0
    torch.testing.assert_close(freed[h], torch.tensor(5.0, dtype=F64), rtol=1e-2, atol=0)
    assert float(freed[:h].abs().sum()) < 0.05
    # features that vary across points (low d): the bias stays damped
    assert free_bias(torch.randn(N, h + 1, generator=g, dtype=F64), h + 1, 0.98) is None
