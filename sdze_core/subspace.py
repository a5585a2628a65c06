"""Per-layer subspaces for implicit low-rank perturbations (SPEC §2.3, §2.7).

A weight W ∈ R^{m×n} is perturbed as ``U S Vᵀ`` with orthonormal U (m×r_out), V (n×r_in) and a small
Gaussian S (r_out×r_in) per perturbation; ``(W + εUSVᵀ)x = Wx + εU(S(Vᵀx))`` is evaluated without forming
the matrix. Two kinds of input basis V:
- random: QR of a Gaussian n×r matrix drawn from a subspace seed (the published method);
- data-aligned (first layer only): an orthonormal basis of span{x_1..x_N, v_1..v_S}, the step's points and
  jet directions, which contains the row space of ∂L/∂W₁. It is represented implicitly through the batch's
  Gram matrix G = XᵀX = QΛQᵀ as V = X T with T = Q Λ^{-1/2} (m × m'), so Vᵀx_n = Tᵀ G[:, n] and no d×m QR
  is ever taken; every worker can rebuild it from the batch seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .estimators import Directions


def random_basis(n: int, r: int, gen: torch.Generator, dtype=torch.float32, device="cpu") -> Tensor:
    """An orthonormal n×r basis (r ≤ n): QR of a Gaussian matrix drawn from ``gen``."""
    r = min(r, n)
    g = torch.randn(n, r, generator=gen, dtype=dtype, device=device)
    q, rr = torch.linalg.qr(g)
    # unique QR (positive diagonal); row-major, as after a checkpoint round trip: matmul rounding depends on layout
    return (q * torch.sign(torch.diagonal(rr)).unsqueeze(0)).contiguous()


def gram64(a: Tensor, b: Tensor | None = None, cols: int | None = None) -> Tensor:
    """a bᵀ as float64, accumulated over column blocks. Float32 inputs are multiplied in float32 per block of
    8192 columns (rounding ≈ 1e-5 relative, harmless for the well-conditioned batch Gram) and summed in float64:
    no float64 copy of a d-wide batch, which made the Gram 5× a forward pass at d = 10^6."""
    b = a if b is None else b
    wide = a.dtype == torch.float32 and b.dtype == torch.float32
    cols = cols or (1 << 13 if wide else 1 << 16)
    out = torch.zeros(a.shape[0], b.shape[0], dtype=torch.float64, device=a.device)
    for j in range(0, a.shape[1], cols):
        if wide:
            out += (a[:, j : j + cols] @ b[:, j : j + cols].t()).double()
        else:
            out += a[:, j : j + cols].double() @ b[:, j : j + cols].double().t()
    return out


@dataclass(frozen=True)
class DataBasis:
    """V = [x_1..x_N, v_1..v_S] T, orthonormal (d × m'). ``xv`` = Vᵀx (N, m'), ``dv`` = Vᵀv (S, m')."""

    T: Tensor  # (m, m')
    xv: Tensor
    dv: Tensor

    @property
    def rank(self) -> int:
        return int(self.T.shape[1])

    @staticmethod
    def build(x: Tensor, dirs: Directions, rel_tol: float | None = None) -> DataBasis:
        """Eigen-directions of G below ``rel_tol``·λ_max are dropped (1e-6 in float32, 1e-12 in float64):
        V = X T then stays orthonormal to working precision."""
        if rel_tol is None:
            rel_tol = 1e-12 if x.dtype == torch.float64 else 1e-6
        N = x.shape[0]
        xx = gram64(x)
        xd = dirs.dot(x).double()  # (N, S); for coordinates an exact gather
        if dirs.idx is None:
            xd = gram64(x, dirs.vecs)
        if dirs.idx is not None:
            dd = torch.eye(dirs.count, dtype=torch.float64, device=x.device)  # distinct coordinates
        else:
            dd = gram64(dirs.vecs)
        G = torch.cat([torch.cat([xx, xd], 1), torch.cat([xd.t(), dd], 1)], 0)
        lam, Q = torch.linalg.eigh(G)
        keep = lam > rel_tol * lam.max()
        T = Q[:, keep] / lam[keep].sqrt()
        VtX = (T.t() @ G).to(x.dtype)  # (m', m): Vᵀ applied to every column of X
        return DataBasis(T.to(x.dtype), VtX[:, :N].t().contiguous(), VtX[:, N:].t().contiguous())

    def at(self, basis_x: Tensor, basis_dirs: Directions, x: Tensor, dirs: Directions) -> DataBasis:
        """The same V (built from ``basis_x``, ``basis_dirs``) with the coordinates of other points x (N', d) and
        directions (S', d): xv = Vᵀx = [x Xᵀ | x·v] T, dv likewise; O(N'·N·d) (the held-out batch of gn_holdout)."""
        xd = torch.cat([gram64(x, basis_x), basis_dirs.dot(x).double()], 1)  # (N', N + S)
        if dirs.idx is not None:  # directions · basis points, directions · basis directions
            dx = basis_x.index_select(1, dirs.idx).t().double()
            if basis_dirs.idx is not None:
                dd = (dirs.idx.unsqueeze(1) == basis_dirs.idx.unsqueeze(0)).double()
            else:
                dd = basis_dirs.vecs.index_select(1, dirs.idx).t().double()
        else:
            dx = gram64(dirs.vecs.to(x.dtype), basis_x)
            dd = basis_dirs.dot(dirs.vecs.to(x.dtype)).double()
        dvd = torch.cat([dx, dd], 1)  # (S', N + S)
        T = self.T.double()
        return DataBasis(self.T, (xd @ T).to(x.dtype), (dvd @ T).to(x.dtype))

    def fold(self, W: Tensor, A: Tensor, x: Tensor, dirs: Directions) -> None:
        """W += A Vᵀ in place, for A of shape (m_out, m'): W += (A Tᵀ)[:, :N] x + (A Tᵀ)[:, N:] [v]."""
        AT = A @ self.T.t()
        N = x.shape[0]
        W.addmm_(AT[:, :N], x)
        if dirs.idx is not None:
            W.index_add_(1, dirs.idx, AT[:, N:])
        else:
            W.addmm_(AT[:, N:], dirs.vecs.to(W.dtype))
