"""Problem catalogue (SPEC §3): exact solutions, closed-form source terms, boundary factors.

Every quantity is O(d) per point and is written in closed form; nothing here differentiates over d.
Notation: ``x`` has shape (N, d), ``s = |x|²``, ``E = x·∇`` (Euler operator).

Two-body core   g2(x) = Σ_{i<d} c_i sin φ_i,     φ_i = x_i + cos x_{i+1} + x_{i+1} cos x_i
Three-body core g3(x) = Σ_{i<d−1} c_i exp ψ_i,   ψ_i = x_i x_{i+1} x_{i+2}
The exact solution is ``u* = h(s) · g`` with a radial factor ``h`` (the boundary factor times a scale).
For a radial ``h(s)``:  Δ(h F) = h ΔF + 4 h' E F + (2 d h' + 4 s h'') F.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from . import fused_terms
from .norms import squared_row_norms

# name -> (body, domain, operator)
CATALOGUE: dict[str, tuple[str, str, str]] = {
    "poisson_two_body": ("two", "ball", "poisson"),
    "allen_cahn_two_body": ("two", "ball", "allen_cahn"),
    "sine_gordon_two_body": ("two", "ball", "sine_gordon"),
    "sine_gordon_three_body": ("three", "ball", "sine_gordon"),
    "biharmonic_three_body": ("three", "annulus", "biharmonic"),
    "sine_gordon_two_body_scaled": ("two", "ball_sqrt_d", "sine_gordon"),
}
PROBLEM_NAMES = tuple(CATALOGUE)


@dataclass(frozen=True)
class Problem:
    """One PDE instance: ``A[u] = f`` on a radial domain, u = 0 on its boundary.

    ``c`` holds the coefficients (length d−1 two-body, d−2 three-body); ``scale`` multiplies the exact
    solution (d^{-1/2} on the scaled ball, else 1). ``boundary_poly`` are the coefficients (b0, b1, b2)
    of the boundary factor B(s) = b0 + b1 s + b2 s² that the network output is multiplied by.
    """

    name: str
    dim: int
    body: str
    domain: str
    operator: str
    c: Tensor

    @property
    def r_interval(self) -> tuple[float, float]:
        return {"ball": (0.0, 1.0), "annulus": (1.0, 2.0), "ball_sqrt_d": (0.0, math.sqrt(self.dim))}[self.domain]

    @property
    def order(self) -> int:
        """Highest spatial derivative order of the operator (2 or 4)."""
        return 4 if self.operator == "biharmonic" else 2

    @property
    def boundary_poly(self) -> tuple[float, float, float]:
        if self.domain == "ball":
            return (1.0, -1.0, 0.0)
        if self.domain == "annulus":  # (1−s)(4−s)
            return (4.0, -5.0, 1.0)
        return (1.0, -1.0 / self.dim, 0.0)  # ball of radius √d

    @property
    def scale(self) -> float:
        return 1.0 / math.sqrt(self.dim) if self.domain == "ball_sqrt_d" else 1.0

    # -- radial factor h(s) = scale·B(s) and its s-derivatives -------------------------------------------
    def _h(self, s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b0, b1, b2 = self.boundary_poly
        k = self.scale
        return k * (b0 + b1 * s + b2 * s * s), k * (b1 + 2 * b2 * s), k * 2 * b2 + 0 * s

    def boundary(self, x: Tensor) -> Tensor:
        """B(x), shape (N,). Zero on the boundary of the domain."""
        b0, b1, b2 = self.boundary_poly
        s = squared_row_norms(x)  # no N×d temporary
        return b0 + b1 * s + b2 * s * s

    # the user-PDE interface (sdze_core.pde.problem.PdeProblem): catalogue problems have g ≡ 0 and u*
    has_exact = True
    g_zero = True
    box = None

    def boundary_value(self, x: Tensor) -> Tensor:
        """Dirichlet values g(x) ≡ 0, shape (N,)."""
        return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)

    def ansatz(self, x: Tensor, n: Tensor) -> Tensor:
        """u = g + B·N = B(x)·N(x) from the network output n (N,)."""
        return self.boundary(x).to(n.dtype) * n

    # -- core functions and their Euler/Laplace derivatives (all shape (N,)) -----------------------------
    def _core(self, x: Tensor, block: int | None = None) -> dict[str, Tensor]:
        """Sums over the coupling terms, taken in blocks of ``block`` terms: each block's temporaries stay
        cache-sized, ≈ 2^15 numbers (at d = 10^7 whole-row temporaries made the source term memory-bound,
        ~20 ns per op; at d = 10^5, 41 rows × 2^15 terms ran 4× slower than 41 × 1024).

        Each block's terms are computed in x's dtype and the block sums added in float64 (a float64 x: every
        bit as before; a float32 x — training batches, ``residual.source_chunked`` — keeps the sums' digits
        while the transcendental passes, the whole cost, run at float32 speed)."""
        width = 2 if self.body == "two" else 3  # coordinates one term reads
        n_terms = self.c.shape[0]
        block = block or max(512, (1 << 15) // max(1, x.shape[0]))
        c = self.c.to(x)
        out: dict[str, Tensor] = {}
        start = 0
        if self.body == "two" and fused_terms.enabled(x):  # one compiled pass over whole blocks (fused_terms.py)
            fused = fused_terms.two_body_sums(x, c)
            if fused is not None:
                out, start = fused, fused_terms.covered(x.shape[1])
        for j in range(start, n_terms, block):
            k = min(block, n_terms - j)
            part = self._core_block(x[:, j : j + k + width - 1], c[j : j + k])
            for key, v in part.items():
                v = v.to(torch.float64)
                out[key] = v if key not in out else out[key] + v
        return out

    def _core_block(self, x: Tensor, c: Tensor) -> dict[str, Tensor]:
        if self.body == "two":
            return _two_body_block(x, c)
        a, b, w = x[:, :-2], x[:, 1:-1], x[:, 2:]
        psi = a * b * w
        e = torch.exp(psi)
        q = (b * w) ** 2 + (a * w) ** 2 + (a * b) ** 2  # |∇ψ|², homogeneous of degree 4
        r2 = a * a + b * b + w * w
        out = {
            "g": e @ c,
            "Eg": (3 * psi * e) @ c,  # ψ homogeneous of degree 3
            "EEg": ((9 * psi + 9 * psi * psi) * e) @ c,
            "lap": (q * e) @ c,  # Δe^ψ = e^ψ |∇ψ|² since Δψ = 0
        }
        if self.operator == "biharmonic":
            out["Elap"] = (q * (3 * psi + 4) * e) @ c
            out["bilap"] = ((q * q + 8 * psi * r2 + 4 * r2) * e) @ c
        return out

    def u_exact(self, x: Tensor) -> Tensor:
        """u*(x) = scale·B(s)·g(x), shape (N,)."""
        return self._h((x * x).sum(-1))[0] * self._core(x)["g"]

    def laplacian_exact(self, x: Tensor, core: dict[str, Tensor] | None = None, s: Tensor | None = None) -> Tensor:
        """Δu*(x), shape (N,), by Δ(hF) = hΔF + 4h'EF + (2dh' + 4sh'')F (``s`` = |x|² when the caller has it)."""
        s = (x * x).sum(-1) if s is None else s
        h, h1, h2 = self._h(s)
        k = core if core is not None else self._core(x)
        return h * k["lap"] + 4 * h1 * k["Eg"] + (2 * self.dim * h1 + 4 * s * h2) * k["g"]

    def bilaplacian_exact(self, x: Tensor) -> Tensor:
        """Δ²u*(x), shape (N,), three-body annulus only.

        Δ²(hg) = Δ(hΔg) + Δ(4h'Eg) + Δ((2dh' + 4sh'')g), each term by the radial product rule, with
        Δ(Eg) = EΔg + 2Δg and E(Eg) from the homogeneity of ψ; h is a quadratic in s so h''' = 0.
        """
        if self.body != "three":
            raise NotImplementedError("Δ²u* is implemented for the three-body core")
        s = (x * x).sum(-1)
        h, h1, h2 = self._h(s)
        k = self._core(x)
        d = self.dim
        g, eg, eeg, lap, elap, bilap = k["g"], k["Eg"], k["EEg"], k["lap"], k["Elap"], k["bilap"]
        lap_eg = elap + 2 * lap
        # term 1: h·Δg
        t1 = h * bilap + 4 * h1 * elap + (2 * d * h1 + 4 * s * h2) * lap
        # term 2: (4h')·Eg, with (4h')' = 4h'', (4h')'' = 0
        t2 = 4 * h1 * lap_eg + 16 * h2 * eeg + (2 * d * 4 * h2) * eg
        # term 3: m(s)·g with m = 2dh' + 4sh'', m' = 2dh'' + 4h'' (h''' = 0), m'' = 0
        m, m1 = 2 * d * h1 + 4 * s * h2, (2 * d + 4) * h2
        t3 = m * lap + 4 * m1 * eg + (2 * d * m1) * g
        return t1 + t2 + t3

    def nonlinearity(self, u: Tensor) -> Tensor:
        """The zeroth-order part F(u) of A[u] = (Δ or Δ²)u + F(u)."""
        if self.operator == "allen_cahn":
            return u - u**3
        if self.operator == "sine_gordon":
            return torch.sin(u)
        return torch.zeros_like(u)

    def nonlinearity_derivative(self, u: Tensor) -> Tensor:
        """F'(u), for Jacobians of the residual with respect to u."""
        if self.operator == "allen_cahn":
            return 1 - 3 * u * u
        if self.operator == "sine_gordon":
            return torch.cos(u)
        return torch.zeros_like(u)

    # ``residual.source_chunked`` may pass float32 points: the per-term work then runs in float32, every sum
    # and the assembly below in float64 (the result is float64 either way)
    source_accepts_float32 = True

    def source(self, x: Tensor) -> Tensor:
        """f(x) = A[u*](x), shape (N,), float64; x float64 (closed-form checks) or float32 (training batches)."""
        if self.operator == "biharmonic":
            return self.bilaplacian_exact(x)
        core = self._core(x)  # shared by Δu* and u*: the O(d) sums are the whole cost at large d
        s = (x * x).sum(-1)
        u = self._h(s)[0] * core["g"]
        return self.laplacian_exact(x, core, s) + self.nonlinearity(u)


def _two_body_block(x: Tensor, c: Tensor) -> dict[str, Tensor]:
    """The two-body sums g, Eg, Δg over one block of terms (x: the block's coordinates, c: its coefficients).

    Without autograd, every product and sum is the same IEEE operation on the same operands as the plain formulas
    (x·y = y·x, −(p + q) = (−p) − q and 1 − p = (−p) + 1 hold exactly), only reusing b·cos a and writing into the
    temporaries in place: about half the allocations and passes of the plain path, identical bits
    (tests/test_problems.py). Under autograd (closed-form tests) the plain formulas run: in-place writes would
    overwrite tensors the backward pass needs.
    """
    a, b = x[:, :-1], x[:, 1:]
    cx, sx = torch.cos(x), torch.sin(x)  # once per coordinate: term i uses i and i+1
    ca, sa, cb, sb = cx[:, :-1], sx[:, :-1], cx[:, 1:], sx[:, 1:]
    db = ca - sb  # ∂φ/∂x_{i+1}
    if torch.is_grad_enabled() and (x.requires_grad or c.requires_grad):
        phi = a + cb + b * ca
        sp, cp = torch.sin(phi), torch.cos(phi)
        da = 1 - b * sa  # ∂φ/∂x_i
        lap_phi = -b * ca - cb
        eg = (cp * (a * da + b * db)) @ c
        lap = (cp * lap_phi - sp * (da * da + db * db)) @ c
        return {"g": sp @ c, "Eg": eg, "lap": lap}
    bca = b * ca
    phi = (a + cb).add_(bca)  # φ = a + cos b + b cos a
    sp = torch.sin(phi)
    cp = phi.cos_()
    da = torch.mul(b, sa).neg_().add_(1.0)  # 1 − b sin a
    lap_phi = bca.add_(cb).neg_()  # Δφ = −b cos a − cos b
    g = sp @ c
    eg = torch.mul(a, da).add_(torch.mul(b, db)).mul_(cp) @ c  # (cp · (a da + b db)) @ c
    lap = lap_phi.mul_(cp).sub_(da.mul_(da).add_(db.mul_(db)).mul_(sp)) @ c  # (cp Δφ − sp (da² + db²)) @ c
    return {"g": g, "Eg": eg, "lap": lap}


def make_problem(
    name: str, d: int, seed: int = 0, c: Tensor | None = None, dtype: torch.dtype = torch.float64
) -> Problem:
    """Build a catalogue problem; ``c`` overrides the seeded coefficients ``c_i ~ N(0, 1)``."""
    if name not in CATALOGUE:
        raise ValueError(f"unknown problem {name!r}; known: {', '.join(PROBLEM_NAMES)}")
    body, domain, operator = CATALOGUE[name]
    n_c = d - 1 if body == "two" else d - 2
    if n_c < 1:
        raise ValueError(f"{name} needs dim ≥ {3 if body == 'three' else 2}")
    if c is None:
        gen = torch.Generator().manual_seed(int(seed))
        # drawn in float32 (then widened) so figures compare with the calibration study's coefficients
        c = torch.randn(n_c, generator=gen, dtype=torch.float32).double()
    c = torch.as_tensor(c, dtype=torch.float64)
    if c.shape != (n_c,):
        raise ValueError(f"{name} at d={d} needs {n_c} coefficients, got {tuple(c.shape)}")
    return Problem(name, d, body, domain, operator, c.to(dtype))


def build_problem(name: str, dim: int, seed: int = 0, pde: str | None = None, dtype: torch.dtype = torch.float64):
    """The problem a job solves: a catalogue name (hand-written closed forms: the fast path, docs/pde.md), or
    a user PDE given as the canonical JSON of its §3.1 form (``pde``; compiled by ``sdze_core.pde``), or a
    time-dependent catalogue problem (``sdze_core.parabolic``, docs/time-dependent.md)."""
    from .parabolic.problems import PARABOLIC_CATALOGUE, make_parabolic_problem

    if name in PARABOLIC_CATALOGUE:
        return make_parabolic_problem(name, dim)
    if pde is None:
        return make_problem(name, dim, seed=seed, dtype=dtype)
    import json

    from .pde.problem import problem_from_spec

    spec = json.loads(pde)
    if spec.get("dim") != dim:
        raise ValueError(f"problem.dim {dim} differs from the PDE's dim {spec.get('dim')}")
    return problem_from_spec(spec, dtype)
