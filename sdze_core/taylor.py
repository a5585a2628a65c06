"""Forward-mode Taylor propagation through the MLP (SPEC §2.1). No autograd graph, no backward pass.

A jet of a quantity along a direction v is its list of Taylor coefficients in t of q(x + t v):
``[c0, c1, …, cK]`` with c_k = D_v^k q / k!. Shapes: c0 is (N, 1, n) (shared by all directions, it
broadcasts) and c_k is (N, S, n) for k ≥ 1; ``None`` stands for an exactly-zero coefficient (skipped).

- linear layer:  z_k = c_k Wᵀ (+ b for k = 0)
- tanh: with y = tanh z, p = 1 − y²:   y_k = (1/k) Σ_{j=1..k} j z_j p_{k−j},   p_k = −Σ_{j=0..k} y_j y_{k−j}
- product (Cauchy): (a·b)_k = Σ_{j=0..k} a_j b_{k−j}
The first layer is special: its input jet is [x, v, 0, …], so z_0 = W₁x + b₁ and z_1 = W₁v are computed
once per step and shared (for v = e_i, W₁v is the column W₁[:, i]: O(h), not O(d)).
A low-rank additive term ``(c_k V) Mᵀ`` per layer implements ``(W + M Vᵀ)`` without forming it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .norms import squared_row_norms

Jet = list  # list[Tensor | None]


def _mul(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    return None if a is None or b is None else a * b


def _add(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def jet_mul(a: Jet, b: Jet) -> Jet:
    """Cauchy product of two jets, truncated at the shorter order."""
    K = min(len(a), len(b)) - 1
    out: Jet = []
    for k in range(K + 1):
        acc = None
        for j in range(k + 1):
            acc = _add(acc, _mul(a[j], b[k - j]))
        out.append(acc)
    return out


def tanh_jet(z: Jet) -> Jet:
    """Jet of tanh(z) from the jet of z (order len(z) − 1), by the ODE y' = (1 − y²) z'."""
    return tanh_jets(z)[0]


def tanh_jets(z: Jet, derivative_order: int | None = None) -> tuple[Jet, Jet]:
    """(jet of y = tanh z, jet of p = 1 − y²); p carries orders 0 … ``derivative_order`` (default K − 1, what y's
    recurrence needs; the tangents ``tangent.tanh_jet_dual`` need order K: p_K = −Σ_j y_j y_{K−j})."""
    y0 = torch.tanh(z[0])
    y: Jet = [y0]
    p: Jet = [1 - y0 * y0]
    K = len(z) - 1
    P = K - 1 if derivative_order is None else min(derivative_order, K)
    for k in range(1, K + 1):
        acc = None
        for j in range(1, k + 1):
            if z[j] is not None and p[k - j] is not None:
                t = z[j] * p[k - j]
                acc = _add(acc, t * j if j != 1 else t)
        y.append(None if acc is None else (acc / k if k != 1 else acc))
        if k <= P:
            acc = None
            for j in range(k + 1):
                acc = _add(acc, _mul(y[j], y[k - j]))
            p.append(None if acc is None else -acc)
    return y, p


@dataclass
class LowRank:
    """An additive term ``M Vᵀ`` on a weight matrix (shape (m, n)): V is (n, r), M is (m, r).

    ``xv``/``dv`` optionally hold the first layer's precomputed Vᵀx (N, r) and Vᵀv (S, r).
    """

    V: Tensor
    M: Tensor
    xv: Tensor | None = None
    dv: Tensor | None = None

    def apply(self, c: Tensor) -> Tensor:
        return (c @ self.V) @ self.M.t()


@dataclass
class FirstLayer:
    """The shared part of layer 1 for one step: W₁x + b₁ (N, h) and W₁v_s (S, h)."""

    z0: Tensor
    z1: Tensor

    @staticmethod
    def compute(W1: Tensor, b1: Tensor, x: Tensor, dirs) -> FirstLayer:
        return FirstLayer(torch.addmm(b1, x, W1.t()), dirs.project(W1))


def hidden_jet(
    first: FirstLayer,
    W: list[Tensor],
    b: list[Tensor],
    order: int,
    lowrank: list[LowRank | None] | None = None,
    dense: list[tuple[Tensor | None, Tensor | None]] | None = None,
) -> Jet:
    """Jet of the last hidden layer's output φ(x + t v), order ``order``.

    ``W``/``b`` are the hidden-to-hidden layers 2 … L−1 (the output layer is not included).
    ``lowrank[l]`` adds ``M Vᵀ`` to layer l (l = 0 is the first layer, using its precomputed xv, dv);
    ``dense[l]`` = (ΔW, Δb) adds dense terms (used by full-space perturbations of small layers).
    """
    N, S = first.z0.shape[0], first.z1.shape[0]
    z0, z1 = first.z0, first.z1
    lr0 = lowrank[0] if lowrank else None
    if dense and dense[0][1] is not None:
        z0 = z0 + dense[0][1]
    if lr0 is not None:
        z0 = z0 + lr0.xv @ lr0.M.t()
        z1 = z1 + lr0.dv @ lr0.M.t()
    z: Jet = [z0.unsqueeze(1), z1.unsqueeze(0).expand(N, S, z1.shape[-1])] + [None] * (order - 1)
    y = tanh_jet(z)
    for l in range(len(W)):
        li = l + 1
        lr = lowrank[li] if lowrank else None
        dW, db = dense[li] if dense else (None, None)
        Wl = W[l] if dW is None else W[l] + dW
        bl = b[l] if db is None else b[l] + db
        z = []
        for k, c in enumerate(y):
            if c is None:
                z.append(None)
                continue
            zk = c @ Wl.t() + bl if k == 0 else c @ Wl.t()
            if lr is not None:
                zk = zk + lr.apply(c)
            z.append(zk)
        y = tanh_jet(z)
    return y


def output_jet(phi: Jet, w: Tensor, b: Tensor) -> Jet:
    """Jet of N(x + t v) = w·φ + b; w (1, h) or (h,), result c0 (N, 1), c_k (N, S)."""
    wv = w.reshape(-1)
    out: Jet = []
    for k, c in enumerate(phi):
        if c is None:
            out.append(None)
        else:
            out.append(c @ wv + b.reshape(()) if k == 0 else c @ wv)
    return out


def boundary_jet(poly, x: Tensor, dirs, order: int) -> Jet:
    """Jet of B(x + t v) for B = b0 + b1 s + b2 s², s(t) = |x|² + 2t x·v + t²|v|². Shapes (N, 1), (N, S).

    ``poly`` is (b0, b1, b2) for radial factors, or an object with ``jet(x, dirs, order)`` for a non-radial B
    (the cube's factor, ``pde.domain.CubeFactor``).
    """
    if not isinstance(poly, tuple):
        return poly.jet(x, dirs, order)
    b0, b1, b2 = poly
    s0 = squared_row_norms(x).unsqueeze(1)  # no N×d temporary (4 GB at d = 10^7)
    xv = dirs.dot(x)
    vv = dirs.sqnorm(x.dtype, x.device)
    N, S = xv.shape
    s: Jet = [s0, 2 * xv, vv.unsqueeze(0).expand(N, S)] + [None] * max(0, order - 2)
    s = s[: order + 1]
    B = [b1 * c if c is not None else None for c in s]
    B[0] = B[0] + b0
    if b2 != 0.0:
        B = [_add(p, None if q is None else b2 * q) for p, q in zip(B, jet_mul(s, s), strict=True)]
    return B


def operator_from_jet(u: Jet, dirs) -> Tensor:
    """Operator estimate Σ_s weight · k! u_k[:, s] with k = dirs.order, shape (N,)."""
    k = dirs.order
    return u[k].sum(1) * (dirs.weight * math.factorial(k))
