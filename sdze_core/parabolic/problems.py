"""Parabolic catalogue: terminal-value problems  u_t + L u + F(u, ∇u, x, t) = 0 on [0,T)×R^d, u(T, x) = g(x).

    L u = ν Δu + κ Σ_i x_i² ∂²_ii u + β x·∇u                  (Laplacian, diagonal diffusion, linear drift)
    F   = reaction(u; x, t) + μ |∇u|² + ρ Σ_i |∂_i u|^p + c₀

The network reads x̃ = (x, t) ∈ R^{d+1} and the terminal condition is a hard constraint:
    u(x, t) = g(x) + (T − t)·N(x̃)        (every problem here; u(T, ·) = g whatever N is).
Facts (equations, T, g, reference values) are those of the SDGD/STDE/DeepBSDE/FBSNN codes as read in
``research/time-dependent.md``; the exact solutions are derived here and checked against autograd in the tests.
Point laws (``law``): "gaussian"  x = x₀ + √(2νt)·ξ (the marginal of the diffusion dX = √(2ν) dW from x₀, STDE's
N(0, 2tI) for ν = 1); "gbm"  x_i = x₀_i·exp(σ√t ξ_i − σ²t/2), σ² = 2κ (geometric Brownian motion, FBSNN's
Black–Scholes–Barenblatt paths). t ~ U[0, T] for both. ``train_law`` "paths" (after SDGD's sampler: Brownian paths
from x₀, each seen at t = 0 and at one uniform time per stratum of (0, T], so batches include (0, x₀)) trains the two
point-reference problems; see ``sampling``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..taylor import Jet
from .cole_hopf import hjb_log_solution_chunked
from .terminal import Terminal

# u(0, 0) of the two problems without a closed form, from SDGD and STDE (identical there; STDE says multilevel
# Picard). Unverified against the papers' text.
HEAT_REFERENCE = {10: 0.47006, 100: 0.31674, 1000: 0.28753, 10000: 0.28433}
ALLEN_CAHN_REFERENCE = {10: 0.89060, 100: 1.04510, 1000: 1.09100, 10000: 1.11402}

REACTIONS = ("none", "heat", "allen_cahn", "linear", "clipped_square")


@dataclass(frozen=True)
class ParabolicProblem:
    """One terminal-value problem (see the module docstring for the equation and the ansatz).

    ``reaction``: "none"; "heat" (1−u²)/(1+u²); "allen_cahn" u−u³; "linear" a·u (a = ``reaction_coef``);
    "clipped_square" min(1, (u − w(x,t))²) with w the exact solution (DeepBSDE's reaction–diffusion).
    ``exact``: name of the closed form (None: only ``reference`` = u(0, x₀) is known, or nothing).
    """

    name: str
    dim: int
    T: float
    terminal: Terminal
    nu: float = 1.0
    kappa: float = 0.0
    beta: float = 0.0
    reaction: str = "none"
    reaction_coef: float = 1.0
    grad_sq: float = 0.0
    grad_pow: float = 0.0
    power: float = 2.0
    const: float = 0.0
    law: str = "gaussian"
    train_law: str | None = None  # law of the training batches when it differs from the test law ("paths")
    terminal_rule: str = "hard"  # "hard": u = g + (T − t)·N;  "soft": u = N with a terminal-value loss (weight below)
    terminal_weight: float = 20.0
    x0: str = "zero"
    exact: str | None = None
    reference: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    # ------------------------------------------------------------------------------------ points
    def origin(self, dtype=torch.float64, device="cpu") -> Tensor:
        """x₀ (d,): zero, or FBSNN's (1, 0.5, 1, 0.5, …) for Black–Scholes–Barenblatt."""
        if self.x0 == "zero":
            return torch.zeros(self.dim, dtype=dtype, device=device)
        if self.x0 == "bsb":
            return torch.where(torch.arange(self.dim, device=device) % 2 == 0, 1.0, 0.5).to(dtype)
        raise ValueError(f"unknown origin {self.x0!r}")

    @property
    def order(self) -> int:
        """Highest derivative order the jets carry (2: Laplacian / diffusion)."""
        return 2

    @property
    def input_dim(self) -> int:
        """The network's input dimension d + 1 (x then t)."""
        return self.dim + 1

    # ------------------------------------------------------------------------------------ bounded domain
    # On R^d (every catalogue problem) the hard rule is u = g + τ·N. A problem on a bounded domain Ω (user PDEs,
    # ``pde.parabolic``) overrides the four hooks below: u = G + τ·B_Ω·N with the lift G = g(x) + h(x, t) − h(x, T)
    # (h the boundary values; G = g at t = T and G = h on ∂Ω wherever h(·, T) = g there) and B_Ω the domain's
    # boundary factor (``pde.domain``), so u(T, ·) = g and u = h on ∂Ω whatever N is.
    def domain_factor(self, x: Tensor) -> Tensor | None:
        """B_Ω(x) (N,), or None on R^d."""
        return None

    def domain_factor_jet(self, x: Tensor, spatial) -> Jet | None:
        """B_Ω's order-2 jet along the spatial directions: [(N, 1), (N, S), (N, S)], or None on R^d."""
        return None

    def lift_value(self, x: Tensor, t: Tensor) -> Tensor | None:
        """L = h(x, t) − h(x, T) (N,), or None (L ≡ 0)."""
        return None

    def lift_jets(self, x: Tensor, t: Tensor, spatial) -> tuple[Tensor, ...] | None:
        """(L (N,), D_v L (N, S), D_v² L (N, S), ∂_t L (N,), ∂²_t L (N,)) of L = h(x, t) − h(x, T), or None (L ≡ 0)."""
        return None

    def sample_domain(self, n: int, gen: torch.Generator, dtype=torch.float32, device="cpu") -> Tensor:
        """n points x (n, d) from the domain's law (the "domain" point law)."""
        raise ValueError(f"{self.name} has no bounded domain")

    def lifted(self, x: Tensor, t: Tensor) -> Tensor:
        """G(x, t) (N,): the part of the hard rule's u that does not depend on N (g on R^d)."""
        g, lift = self.terminal.value(x), self.lift_value(x, t)
        return g if lift is None else g + lift

    def factor(self, x: Tensor, t: Tensor) -> Tensor:
        """τ·B_Ω(x) (N,), τ = T − t: what multiplies N in the hard rule."""
        b = self.domain_factor(x)
        tau = self.T - t
        return tau if b is None else tau * b

    def ansatz(self, xt: Tensor, n: Tensor) -> Tensor:
        """u from the network's output N (n,) at points x̃ (n, d+1): G + τ·B_Ω·N (hard rule; G = g, B_Ω = 1 on
        R^d) or N (soft)."""
        if self.terminal_rule == "soft":
            return n
        x, t = xt[:, : self.dim].double(), xt[:, self.dim].double()
        return self.lifted(x, t).to(n.dtype) + self.factor(x, t).to(n.dtype) * n

    # ------------------------------------------------------------------------------------ reaction
    def reaction_value(self, u: Tensor, aux: Tensor | None = None) -> Tensor:
        r = self.reaction
        if r == "none":
            return torch.zeros_like(u)
        if r == "heat":
            return (1 - u * u) / (1 + u * u)
        if r == "allen_cahn":
            return u - u**3
        if r == "linear":
            return self.reaction_coef * u
        if r == "clipped_square":
            return torch.clamp((u - aux).square(), max=1.0)
        raise ValueError(f"unknown reaction {r!r}")

    def reaction_derivative(self, u: Tensor, aux: Tensor | None = None) -> Tensor:
        """∂F/∂u (the reaction part; the gradient terms are linearised in ``residual.linearization``)."""
        r = self.reaction
        if r == "none":
            return torch.zeros_like(u)
        if r == "heat":
            return -4 * u / (1 + u * u).square()
        if r == "allen_cahn":
            return 1 - 3 * u * u
        if r == "linear":
            return torch.full_like(u, self.reaction_coef)
        if r == "clipped_square":
            e = u - aux
            return torch.where(e.square() < 1.0, 2 * e, torch.zeros_like(e))
        raise ValueError(f"unknown reaction {r!r}")

    def reaction_aux(self, x: Tensor, t: Tensor) -> Tensor | None:
        """Per-point data the reaction reads: w(x, t) for "clipped_square", else None."""
        return self.u_exact(x, t) if self.reaction == "clipped_square" else None

    # ------------------------------------------------------------------------------------ exact
    @property
    def has_exact(self) -> bool:
        return self.exact is not None

    def u_exact(self, x: Tensor, t: Tensor) -> Tensor:
        """u*(x, t) for x (N, d), t (N,), float64; differentiable where the closed form is."""
        tau = self.T - t
        if self.exact == "hjb_lin":  # u = Σx + T − t
            return x.sum(-1) + tau
        if self.exact == "bsb":  # u = exp((r + σ²)(T − t))·|x|², r = β, σ² = 2κ
            return torch.exp((self.beta + 2 * self.kappa) * tau) * (x * x).sum(-1)
        if self.exact == "reaction_diffusion":  # u = a + sin(λΣx)·exp(−νλ²d(T − t))
            lam, a = self.terminal.scale, self.terminal.shift
            return a + torch.sin(lam * x.sum(-1)) * torch.exp(-self.nu * lam * lam * self.dim * tau)
        if self.exact == "cole_hopf":
            if self.nu != 1.0:
                raise ValueError("the Cole–Hopf solution here assumes ν = 1")
            return hjb_log_solution_chunked((x * x).sum(-1), tau, self.dim, mu=-self.grad_sq)
        raise ValueError(f"{self.name} has no closed form")

    def reference_point(self, dtype=torch.float64) -> tuple[Tensor, Tensor, float] | None:
        """(x₀ (1, d), t = 0 (1,), u(0, x₀)) where a reference value is known, else None."""
        x = self.origin(dtype).unsqueeze(0)
        t = torch.zeros(1, dtype=dtype)
        if self.reference is not None:
            return x, t, float(self.reference)
        if self.has_exact:
            return x, t, float(self.u_exact(x, t)[0])
        return None


def _heat(d: int) -> ParabolicProblem:
    return ParabolicProblem(
        "semilinear_heat",
        d,
        0.3,
        Terminal("radial", "heat"),
        reaction="heat",
        train_law="paths",
        terminal_rule="soft",
        reference=HEAT_REFERENCE.get(d),
    )


def _allen_cahn(d: int) -> ParabolicProblem:
    return ParabolicProblem(
        "allen_cahn_time",
        d,
        0.3,
        Terminal("argmax"),
        reaction="allen_cahn",
        train_law="paths",
        terminal_rule="soft",
        reference=ALLEN_CAHN_REFERENCE.get(d),
        notes=("g = arctan(max_i x_i) per point (STDE's code takes one max over the whole batch: a bug)",),
    )


def _hjb(d: int) -> ParabolicProblem:
    return ParabolicProblem(
        "hjb_cole_hopf",
        d,
        1.0,
        Terminal("radial", "log"),
        grad_sq=-1.0,
        exact="cole_hopf",
        terminal_rule="soft",  # g's curvature 2d/(1+|x|²) near the origin is far above u's: see docs/time-dependent.md
    )


def _hjb_lin(d: int) -> ParabolicProblem:
    return ParabolicProblem(
        "hjb_lin",
        d,
        1.0,
        Terminal("ridge", "identity"),
        grad_pow=-1.0 / d,
        power=1.75,
        const=2.0,
        exact="hjb_lin",
        notes=("the null g + (T−t)·K is exact at K = 1: this problem cannot show learning",),
    )


def _bsb(d: int) -> ParabolicProblem:
    r, sigma = 0.05, 0.4
    return ParabolicProblem(
        "bsb",
        d,
        1.0,
        Terminal("radial", "square"),
        nu=0.0,
        kappa=0.5 * sigma * sigma,
        beta=r,
        reaction="linear",
        reaction_coef=-r,
        law="gbm",
        x0="bsb",
        exact="bsb",
    )


def _reaction_diffusion(d: int) -> ParabolicProblem:
    return ParabolicProblem(
        "reaction_diffusion",
        d,
        1.0,
        Terminal("ridge", "sin", scale=1.0 / math.sqrt(d), shift=1.6),
        nu=0.5,
        reaction="clipped_square",
        exact="reaction_diffusion",
        notes=("DeepBSDE's ReactionDiffusion (κ = 0.6, λ = 1/√d, dX = dW so L = ½Δ)",),
    )


PARABOLIC_CATALOGUE = {
    "semilinear_heat": _heat,
    "allen_cahn_time": _allen_cahn,
    "hjb_cole_hopf": _hjb,
    "hjb_lin": _hjb_lin,
    "bsb": _bsb,
    "reaction_diffusion": _reaction_diffusion,
}
PARABOLIC_NAMES = tuple(PARABOLIC_CATALOGUE)


def is_time_dependent(problem_name: str, pde: str | None) -> bool:
    """As the engine decides (a ``ParabolicProblem``): a parabolic catalogue name, or a written-out PDE (canonical
    JSON) with a time section."""
    return problem_name in PARABOLIC_CATALOGUE or (pde is not None and json.loads(pde).get("time") is not None)


def make_parabolic_problem(name: str, d: int) -> ParabolicProblem:
    """A catalogue problem at dimension d (``{"name": ..., "dim": d}`` is a complete spec)."""
    if name not in PARABOLIC_CATALOGUE:
        raise ValueError(f"unknown parabolic problem {name!r}; known: {', '.join(PARABOLIC_NAMES)}")
    if d < 1:
        raise ValueError("dim must be ≥ 1")
    return PARABOLIC_CATALOGUE[name](int(d))
