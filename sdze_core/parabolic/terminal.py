"""Terminal conditions g(x) of the parabolic catalogue, with their directional derivatives in closed form.

Every g here reads x only through a few O(d) reductions, so a value and the derivatives along S shared
directions cost O(Nd + NS), never a d×d Hessian. Shapes: x (N, d); directions are an ``estimators.Directions``
over the d spatial coordinates (coordinate indices or dense vectors v_s); results (N,) or (N, S).

- radial   g = ψ(s), s = |x|²:   D_v g = 2ψ'(s) x·v,   D_v² g = 4ψ''(s)(x·v)² + 2ψ'(s)|v|²
- ridge    g = a + φ(λ Σ_i x_i): D_v g = λφ'(λΣx) Σv,  D_v² g = λ²φ''(λΣx) (Σv)²
- argmax   g = arctan(m), m = max_i x_i (smooth wherever the maximiser i* is unique, i.e. almost surely):
           D_v g = v_{i*}/(1+m²),  D_v² g = −2m v_{i*}²/(1+m²)²
``sums`` gives the four coordinate sums the residual needs exactly (O(d) per point, no sampling):
Σ_i ∂²_ii g, Σ_i x_i² ∂²_ii g, x·∇g and |∇g|²:
- radial: 2dψ' + 4ψ''s,  2ψ's + 4ψ''Σx_i⁴,  2ψ's,  4ψ'²s
- ridge:  dλ²φ'',  λ²φ''s,  λφ'Σx_i,  dλ²φ'²
- argmax: −2m/(1+m²)²,  −2m³/(1+m²)²,  m/(1+m²),  1/(1+m²)²
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..estimators import Directions
from ..norms import squared_row_norms

# ψ(s) and its first two derivatives, by name: the radial terminal conditions of the reference problems
_RADIAL = {
    # semilinear heat (SDGD/STDE): 5 / (10 + 2s)
    "heat": (
        lambda s: 5.0 / (10.0 + 2.0 * s),
        lambda s: -10.0 / (10.0 + 2.0 * s) ** 2,
        lambda s: 40.0 / (10.0 + 2.0 * s) ** 3,
    ),
    # HJB (Cole–Hopf): log((1 + s)/2)
    "log": (
        lambda s: torch.log1p(s) - math.log(2.0),
        lambda s: 1.0 / (1.0 + s),
        lambda s: -1.0 / (1.0 + s) ** 2,
    ),
    # Black–Scholes–Barenblatt: s
    "square": (lambda s: s, lambda s: torch.ones_like(s), lambda s: torch.zeros_like(s)),
}

# φ(z) and derivatives for ridge terminal conditions
_RIDGE = {
    "identity": (lambda z: z, lambda z: torch.ones_like(z), lambda z: torch.zeros_like(z)),
    "sin": (torch.sin, torch.cos, lambda z: -torch.sin(z)),
}


def _vsum(dirs: Directions, like: Tensor) -> Tensor:
    """Σ_i v_i per direction, (S,)."""
    if dirs.idx is not None:
        return torch.ones(dirs.count, dtype=like.dtype, device=like.device)
    return dirs.vecs.to(like.dtype).sum(1)


@dataclass(frozen=True)
class Terminal:
    """g(x) = u(T, x). ``kind`` is radial | ridge | argmax; ``fn`` names ψ or φ; ``scale`` is λ, ``shift`` is a."""

    kind: str
    fn: str = ""
    scale: float = 1.0
    shift: float = 0.0

    def value(self, x: Tensor) -> Tensor:
        """g(x), shape (N,). Differentiable by autograd (used only by tests and exact solutions)."""
        if self.kind == "radial":
            return _RADIAL[self.fn][0]((x * x).sum(-1))
        if self.kind == "ridge":
            return self.shift + _RIDGE[self.fn][0](self.scale * x.sum(-1))
        if self.kind == "argmax":
            return torch.atan(x.max(-1).values)
        raise ValueError(f"unknown terminal kind {self.kind!r}")

    def sums(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(Σ_i ∂²_ii g, Σ_i x_i² ∂²_ii g, x·∇g, |∇g|²), each (N,), exact."""
        d = x.shape[-1]
        if self.kind == "radial":
            _, d1, d2 = _RADIAL[self.fn]
            s = (x * x).sum(-1)
            p1, p2 = d1(s), d2(s)
            x4 = x.square().square().sum(-1)
            return 2 * d * p1 + 4 * p2 * s, 2 * p1 * s + 4 * p2 * x4, 2 * p1 * s, 4 * p1 * p1 * s
        if self.kind == "ridge":
            _, d1, d2 = _RIDGE[self.fn]
            sx = x.sum(-1)
            z = self.scale * sx
            lam2 = self.scale**2
            f1, f2 = d1(z), d2(z)
            return d * lam2 * f2, lam2 * f2 * (x * x).sum(-1), self.scale * f1 * sx, d * lam2 * f1 * f1
        if self.kind == "argmax":
            m = x.max(-1).values
            q = 1 + m * m
            return -2 * m / q**2, -2 * m**3 / q**2, m / q, 1 / q**2
        raise ValueError(f"unknown terminal kind {self.kind!r}")

    def jets(self, x: Tensor, dirs: Directions) -> tuple[Tensor, Tensor, Tensor]:
        """(g (N,), D_v g (N, S), D_v² g (N, S)) along the spatial directions ``dirs``."""
        if self.kind == "radial":
            psi, d1, d2 = _RADIAL[self.fn]
            s = squared_row_norms(x)
            xv = dirs.dot(x)
            vv = dirs.sqnorm(x.dtype, x.device)
            p1, p2 = d1(s).unsqueeze(1), d2(s).unsqueeze(1)
            return psi(s), 2 * p1 * xv, 4 * p2 * xv * xv + 2 * p1 * vv
        if self.kind == "ridge":
            phi, d1, d2 = _RIDGE[self.fn]
            z = self.scale * x.sum(-1)
            sv = _vsum(dirs, x).unsqueeze(0)
            lam = self.scale
            return self.shift + phi(z), lam * d1(z).unsqueeze(1) * sv, lam * lam * d2(z).unsqueeze(1) * sv * sv
        if self.kind == "argmax":
            m, i_star = x.max(-1)
            if dirs.idx is not None:
                vi = (dirs.idx.unsqueeze(0) == i_star.unsqueeze(1)).to(x.dtype)  # (N, S)
            else:
                vi = dirs.vecs.to(x.dtype).index_select(1, i_star).t()  # v_{s, i*(n)} → (N, S)
            q = (1 + m * m).unsqueeze(1)
            return torch.atan(m), vi / q, -2 * m.unsqueeze(1) * vi * vi / (q * q)
        raise ValueError(f"unknown terminal kind {self.kind!r}")
