"""Domains of user PDEs: point laws, the boundary factor B of the hard constraint, and B's Taylor jets.

The network is ``u = g(x) + B(x)·N(x)``; B vanishes exactly on the boundary and is positive (ball, cube) or
of one sign (annulus) inside, so u = g there whatever N is. The rule per domain:

- ball(R):             B = 1 − |x|²/R²                      (the catalogue's 1 − |x|², 1 − |x|²/d)
- annulus(r₁, r₂):     B = (r₁² − |x|²)(r₂² − |x|²)         (the catalogue's (1 − |x|²)(4 − |x|²))
- cube([lo, hi]^d):    B = d / Σ_i 1/(1 − y_i²),  y_i = (2x_i − lo − hi)/(hi − lo)
  the harmonic mean of the per-face factors 1 − y_i² ∈ (0, 1]. It is exactly 0 on every face (one term of
  the sum is infinite there), smooth (C^∞) inside, 1 at the centre, and never below min_i(1 − y_i²): unlike
  the product Π_i(1 − y_i²), whose typical value at uniform points is e^{−0.61 d} (below the smallest
  float64 from d ≈ 1200), it keeps O(1/log d) values at every d. Near a face it behaves like d·(1 − y_i²)/Σ…, i.e.
  linearly in the distance, as a distance function should.

Points: balls and annuli follow the catalogue's law x = r·g/|g|, g ~ N(0, I_d), r ~ U[r_lo, r_hi]
(uniform in radius); cubes are uniform. Boundary points: |x| = R (ball), |x| = r₁ or r₂ alternately
(annulus), a uniform point with one uniformly chosen coordinate set to lo or hi (cube).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..norms import row_norms, squared_row_norms

KINDS = ("ball", "annulus", "cube")


@dataclass(frozen=True)
class CubeFactor:
    """B = d / Σ_i q(y_i), q(y) = 1/(1 − y²), y = a x + b (a = 2/(hi − lo), b = −(hi + lo)/(hi − lo))."""

    dim: int
    lo: float
    hi: float

    @property
    def ab(self) -> tuple[float, float]:
        a = 2.0 / (self.hi - self.lo)
        return a, -(self.hi + self.lo) / (self.hi - self.lo)

    def value(self, x: Tensor) -> Tensor:
        a, b = self.ab
        S = sum(self._q_taylor(xs * a + b, 0).sum(-1) for xs in x.split(max(1, (1 << 15) // max(1, x.shape[0])), 1))
        return self.dim / S

    @staticmethod
    def _q_taylor(y: Tensor, k: int) -> Tensor:
        """q^(k)(y)/k! = ½[(1 − y)^−(k+1) + (−1)^k (1 + y)^−(k+1)]."""
        return 0.5 * ((1 - y) ** -(k + 1) + (-1) ** k * (1 + y) ** -(k + 1))

    def jet(self, x: Tensor, dirs, order: int) -> list:
        """Jet of B(x + t v_s), coefficients (N, 1) then (N, S), via S(t) = Σ_i q(y_i + t a v_i) and 1/S."""
        a, b = self.ab
        y = x * a + b  # (N, d): same size as the batch (the engine already holds x)
        S0 = self._q_taylor(y, 0).sum(-1, keepdim=True)
        Sk = [S0]
        for k in range(1, order + 1):
            qk = self._q_taylor(y, k)
            if dirs.idx is not None:
                Sk.append(qk.index_select(1, dirs.idx) * a**k)
            else:
                Sk.append(qk @ ((dirs.vecs.to(x.dtype) * a) ** k).t())
        # reciprocal jet r = 1/S: r_k = −(1/S_0) Σ_{j=1..k} S_j r_{k−j}
        r = [1 / S0]
        for k in range(1, order + 1):
            acc = sum(Sk[j] * r[k - j] for j in range(1, k + 1))
            r.append(-acc / S0)
        return [self.dim * c for c in r]


@dataclass(frozen=True)
class Domain:
    """kind ∈ ball (radius), annulus (inner, outer), cube (low, high); ``dim`` = d."""

    kind: str
    dim: int
    radius: float = 1.0
    inner: float = 1.0
    outer: float = 2.0
    low: float = -1.0
    high: float = 1.0

    @property
    def r_interval(self) -> tuple[float, float]:
        if self.kind == "ball":
            return (0.0, self.radius)
        if self.kind == "annulus":
            return (self.inner, self.outer)
        raise AttributeError("a cube has no radial interval")

    @property
    def box(self) -> tuple[float, float] | None:
        return (self.low, self.high) if self.kind == "cube" else None

    @property
    def boundary_poly(self):
        """B as b0 + b1 s + b2 s² in s = |x|² (ball, annulus), or the cube's factor object."""
        if self.kind == "ball":
            return (1.0, -1.0 / self.radius**2, 0.0)
        if self.kind == "annulus":
            p, q = self.inner**2, self.outer**2
            return (p * q, -(p + q), 1.0)
        return CubeFactor(self.dim, self.low, self.high)

    def boundary(self, x: Tensor) -> Tensor:
        """B(x), shape (N,)."""
        f = self.boundary_poly
        if isinstance(f, CubeFactor):
            return f.value(x)
        s = squared_row_norms(x)
        return f[0] + f[1] * s + f[2] * s * s

    def sample(self, n: int, gen: torch.Generator, dtype=torch.float32, device="cpu") -> Tensor:
        if self.kind == "cube":
            x = torch.rand(n, self.dim, generator=gen, dtype=dtype, device=device)
            return x.mul_(self.high - self.low).add_(self.low)
        x = torch.randn(n, self.dim, generator=gen, dtype=dtype, device=device)
        lo, hi = self.r_interval
        r = torch.rand(n, generator=gen, dtype=dtype, device=device) * (hi - lo) + lo
        return x.mul_((r / row_norms(x)).unsqueeze(1))

    def sample_boundary(self, n: int, gen: torch.Generator, dtype=torch.float64, device="cpu") -> Tensor:
        """n points on the boundary (see the module docstring for the law)."""
        if self.kind == "cube":
            x = self.sample(n, gen, dtype, device)
            j = torch.randint(0, self.dim, (n,), generator=gen, device=device)
            side = torch.randint(0, 2, (n,), generator=gen, device=device).to(dtype)
            x[torch.arange(n, device=device), j] = self.low + side * (self.high - self.low)
            return x
        x = torch.randn(n, self.dim, generator=gen, dtype=dtype, device=device)
        if self.kind == "ball":
            r = torch.full((n,), self.radius, dtype=dtype, device=device)
        else:
            r = torch.where(torch.arange(n, device=device) % 2 == 0, self.inner, self.outer).to(dtype)
        return x.mul_((r / row_norms(x)).unsqueeze(1))

    def validate(self) -> None:
        ok = all(math.isfinite(v) for v in (self.radius, self.inner, self.outer, self.low, self.high))
        if not ok:
            raise ValueError("domain numbers must be finite")
        if self.kind == "ball" and not self.radius > 0:
            raise ValueError("radius must be > 0")
        if self.kind == "annulus" and not 0 < self.inner < self.outer:
            raise ValueError("annulus needs 0 < inner < outer")
        if self.kind == "cube" and not self.low < self.high:
            raise ValueError("cube needs low < high")
