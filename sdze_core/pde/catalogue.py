"""The six catalogue problems (SPEC §3) written in the PDE language.

Each spec gives u* (``exact``) and its closed-form source (``pde.source``) as expressions; the sources are
the same formulas as the hand-written ``problems.Problem`` (radial factor h(s), s = |x|², Euler operator
E = x·∇):  Δ(h g) = h Δg + 4 h' E g + (2 d h' + 4 s h'') g. Tests check u*, f and Δ²u* of these specs
against the hand-written forms, against the derived source (``derive``) and against the independent
autograd values in tests/data/problems.json.
"""

from __future__ import annotations

from typing import Any

# two-body core: φ_i = x_i + cos x_{i+1} + x_{i+1} cos x_i
PHI = "(x[i] + cos(x[i+1]) + x[i+1]*cos(x[i]))"
DA = "(1 - x[i+1]*sin(x[i]))"  # ∂φ/∂x_i
DB = "(cos(x[i]) - sin(x[i+1]))"  # ∂φ/∂x_{i+1}
LPHI = "(-x[i+1]*cos(x[i]) - cos(x[i+1]))"  # Δφ
G2 = f"sum(c[i]*sin({PHI}), i)"
EG2 = f"sum(c[i]*(cos({PHI})*(x[i]*{DA} + x[i+1]*{DB})), i)"
LG2 = f"sum(c[i]*(cos({PHI})*{LPHI} - sin({PHI})*({DA}^2 + {DB}^2)), i)"
U2 = f"((1 - norm2(x))*{G2})"
LAP2 = f"((1 - norm2(x))*{LG2} - 4*{EG2} - 2*d*{G2})"
U2S = f"((1 - norm2(x)/d)/sqrt(d)*{G2})"
LAP2S = f"(((1 - norm2(x)/d)*{LG2} - 4/d*{EG2} - 2*{G2})/sqrt(d))"

# three-body core: ψ_i = x_i x_{i+1} x_{i+2} (homogeneous of degree 3, Δψ = 0)
PSI = "(x[i]*x[i+1]*x[i+2])"
E = f"exp({PSI})"
Q = "((x[i+1]*x[i+2])^2 + (x[i]*x[i+2])^2 + (x[i]*x[i+1])^2)"  # |∇ψ|²
R2 = "(x[i]^2 + x[i+1]^2 + x[i+2]^2)"
G3 = f"sum(c[i]*{E}, i)"
EG3 = f"sum(c[i]*(3*{PSI}*{E}), i)"
EEG3 = f"sum(c[i]*((9*{PSI} + 9*{PSI}^2)*{E}), i)"
LG3 = f"sum(c[i]*({Q}*{E}), i)"
ELG3 = f"sum(c[i]*({Q}*(3*{PSI} + 4)*{E}), i)"
BLG3 = f"sum(c[i]*(({Q}^2 + 8*{PSI}*{R2} + 4*{R2})*{E}), i)"
U3 = f"((1 - norm2(x))*{G3})"
LAP3 = f"((1 - norm2(x))*{LG3} - 4*{EG3} - 2*d*{G3})"
# annulus: h = (1 − s)(4 − s), h' = 2s − 5, h'' = 2 (Δ² by the radial product rule, as problems.py)
S = "norm2(x)"
H, H1 = f"((1 - {S})*(4 - {S}))", f"(2*{S} - 5)"
U3A = f"({H}*{G3})"
BILAP3 = (
    f"({H}*{BLG3} + 4*{H1}*{ELG3} + (2*d*{H1} + 8*{S})*{LG3}"
    f" + 4*{H1}*({ELG3} + 2*{LG3}) + 32*{EEG3} + 16*d*{EG3}"
    f" + (2*d*{H1} + 8*{S})*{LG3} + 8*(2*d + 4)*{EG3} + 4*d*(2*d + 4)*{G3})"
)

BALL: dict[str, Any] = {"kind": "ball", "radius": 1.0}
# name -> (domain, operator, reaction, exact, source, coefficient length)
SPECS: dict[str, tuple[dict, dict, str, str, str, str]] = {
    "poisson_two_body": (BALL, {"laplacian": 1.0}, "0", U2, LAP2, "d-1"),
    "allen_cahn_two_body": (BALL, {"laplacian": 1.0}, "u - u^3", U2, f"{LAP2} + {U2} - {U2}^3", "d-1"),
    "sine_gordon_two_body": (BALL, {"laplacian": 1.0}, "sin(u)", U2, f"{LAP2} + sin({U2})", "d-1"),
    "sine_gordon_three_body": (BALL, {"laplacian": 1.0}, "sin(u)", U3, f"{LAP3} + sin({U3})", "d-2"),
    "biharmonic_three_body": (
        {"kind": "annulus", "inner": 1.0, "outer": 2.0},
        {"biharmonic": 1.0},
        "0",
        U3A,
        BILAP3,
        "d-2",
    ),
    "sine_gordon_two_body_scaled": (
        {"kind": "ball", "radius": "sqrt(d)"},
        {"laplacian": 1.0},
        "sin(u)",
        U2S,
        f"{LAP2S} + sin({U2S})",
        "d-1",
    ),
}


def catalogue_spec(
    name: str, dim: int, seed: int = 0, c: list[float] | None = None, with_source: bool = True
) -> dict[str, Any]:
    """The §3.1 form of a catalogue problem; ``c`` gives the coefficients explicitly, ``with_source=False``
    leaves the source out so that it is derived from ``exact``."""
    if name not in SPECS:
        raise ValueError(f"unknown problem {name!r}")
    domain, op, reaction, exact, source, length = SPECS[name]
    coef: dict[str, Any] = {"law": "normal", "seed": int(seed), "length": length}
    if c is not None:
        coef = {"length": length, "values": [float(v) for v in c]}
    pde: dict[str, Any] = {"operator": dict(op), "reaction": reaction}
    if with_source:
        pde["source"] = source
    return {"dim": dim, "domain": dict(domain), "pde": pde, "exact": exact, "coefficients": {"c": coef}}
