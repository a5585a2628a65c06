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
