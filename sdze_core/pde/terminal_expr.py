"""A terminal condition g(x) written as an expression, with the interface of ``parabolic.terminal.Terminal``.

``value`` (N,), ``jets`` (g, D_v g, D_v² g) along S shared directions, and ``sums`` (Σ_i ∂²_ii g, Σ_i x_i² ∂²_ii g,
x·∇g, |∇g|²) — the exact coordinate sums of the hard rule's control variate (``parabolic.residual``).

The compiled program is inspected once. When g reads x only through one *feature* y — |x|² (``norm2(x)``),
Σ_i x_i (``sum(x[i], i)``), max_i x_i or min_i x_i — and otherwise only numbers and elementary operations, it
is g = ψ(y) with ψ, ψ', ψ'' from ``scalar.ScalarView``, and the closed forms of ``parabolic.terminal`` apply
(O(Nd + NS) per batch, every sum exact):

- radial    y = |x|²:   D_v g = 2ψ'(x·v),  D_v² g = 4ψ''(x·v)² + 2ψ'|v|²;  sums 2dψ' + 4ψ''y, 2ψ'y + 4ψ''Σx_i⁴,
            2ψ'y, 4ψ'²y
- ridge     y = Σx_i:  D_v g = ψ'Σv,  D_v² g = ψ''(Σv)²;  sums dψ'', ψ''|x|², ψ'y, dψ'²
- extreme   y = x_{i*} (max or min, i* unique almost surely): D_v g = ψ'v_{i*}, D_v² g = ψ''v_{i*}²;
            sums ψ'', y²ψ'', yψ', ψ'²

Any other g ("general"): D_v g, D_v² g by nested forward-mode ``torch.func.jvp`` along each direction (S
evaluations of g per batch: O(S·N·d·k)), Σ∂²_ii g by the exact forward Laplacian (``derive``; None for max/min
windows), x·∇g by one jvp along x, |∇g|² from one gradient in x (g does not depend on the parameters, so this is
not a backward pass over θ). Σ_i x_i² ∂²_ii g has no O(d) route for a general expression: it is None, and the
residual then leaves that term's part of g sampled (unbiased, without the variance reduction).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..estimators import Directions
from .compile import FUNC_TABLE, Program
from .derive import Laplacian
from .expr import PdeError
from .scalar import ScalarView

_ELEMENTARY = frozenset(FUNC_TABLE) | {"num", "pow", "+", "-", "*", "/"}


def _vsum(dirs: Directions, like: Tensor) -> Tensor:
    if dirs.idx is not None:
        return torch.ones(dirs.count, dtype=like.dtype, device=like.device)
    return dirs.vecs.to(like.dtype).sum(1)


def _form(prog: Program) -> tuple[str, int | None]:
    """(form, feature instruction id): constant, radial, ridge, max, min or general."""
    outer = [(i, a) for i, a in enumerate(prog.instrs) if not a.local]
    if prog.instrs[prog.root].op == "num":
        return "constant", None
    feats = [(i, a) for i, a in outer if a.op not in _ELEMENTARY]
    if len(feats) != 1:
        return "general", None
    i, a = feats[0]
    if a.op == "norm2":
        return "radial", i
    if a.op == "red":
        g, slot = a.const
        grp = prog.groups[g]
        kind, body, dot, _ = grp.outs[slot]
        b = prog.instrs[body]
        if dot is None and b.op == "x" and b.const == 0 and grp.window.lo == 0 and grp.window.hi == prog.d:
            return {"sum": "ridge", "max": "max", "min": "min"}[kind], i
    return "general", None


class ExprTerminal:
    """g(x) from a compiled program (see the module docstring for the forms and their cost)."""

    def __init__(self, prog: Program):
        self.prog = prog
        self.form, feat = _form(prog)
        self.view = ScalarView(prog, feat) if feat is not None else None
        self._lap: Laplacian | None = None
        if self.form == "general":
            try:
                self._lap = Laplacian(prog)
            except PdeError:
                self._lap = None  # max/min windows: Σ∂²_ii g not derived; that part stays sampled

    @property
    def kind(self) -> str:
        return self.form

    def value(self, x: Tensor) -> Tensor:
        """g(x), shape (N,); differentiable by autograd."""
        return self.prog(x)

    def _psi(self, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.view(y, None, order=2)

    def _feature(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        if self.form == "radial":
            return torch.linalg.vector_norm(x, dim=-1).square(), None
        if self.form == "ridge":
            return x.sum(-1), None
        if self.form == "max":
            return x.max(-1)
        return x.min(-1)

    def sums(self, x: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
        """(Σ_i ∂²_ii g, Σ_i x_i² ∂²_ii g, x·∇g, |∇g|²), each (N,) or None where no exact O(d) route exists."""
        d = x.shape[-1]
        if self.form == "constant":
            z = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
            return z, z, z, z
        if self.form == "general":
            lap = self._lap(x)[1] if self._lap is not None else None
            xgrad = torch.func.jvp(self.prog, (x,), (x,))[1]
            gr = torch.func.grad(lambda y: self.prog(y).sum())(x)
            return lap, None, xgrad, gr.square().sum(-1)
        y, _ = self._feature(x)
        _, p1, p2 = self._psi(y)
        if self.form == "radial":
            x4 = x.square().square().sum(-1)
            return 2 * d * p1 + 4 * p2 * y, 2 * p1 * y + 4 * p2 * x4, 2 * p1 * y, 4 * p1 * p1 * y
        if self.form == "ridge":
            return d * p2, p2 * (x * x).sum(-1), p1 * y, d * p1 * p1
        return p2, y * y * p2, y * p1, p1 * p1

    def jets(self, x: Tensor, dirs: Directions) -> tuple[Tensor, Tensor, Tensor]:
        """(g (N,), D_v g (N, S), D_v² g (N, S)) along the spatial directions ``dirs``."""
        n, S = x.shape[0], dirs.count
        if self.form == "constant":
            z = torch.zeros(n, S, dtype=x.dtype, device=x.device)
            return self.prog(x), z, z
        if self.form == "general":
            return self._general_jets(x, dirs)
        y, arg = self._feature(x)
        p0, p1, p2 = self._psi(y)
        p1, p2 = p1.unsqueeze(1), p2.unsqueeze(1)
        if self.form == "radial":
            xv = dirs.dot(x)
            vv = dirs.sqnorm(x.dtype, x.device)
            return p0, 2 * p1 * xv, 4 * p2 * xv * xv + 2 * p1 * vv
        if self.form == "ridge":
            sv = _vsum(dirs, x).unsqueeze(0)
            return p0, p1 * sv, p2 * sv * sv
        if dirs.idx is not None:
            vi = (dirs.idx.unsqueeze(0) == arg.unsqueeze(1)).to(x.dtype)
        else:
            vi = dirs.vecs.to(x.dtype).index_select(1, arg).t()
        return p0, p1 * vi, p2 * vi * vi

    def _general_jets(self, x: Tensor, dirs: Directions) -> tuple[Tensor, Tensor, Tensor]:
        return (self.prog(x), *directional_jets(self.prog, x, dirs))


def directional_jets(f, x: Tensor, dirs: Directions) -> tuple[Tensor, Tensor]:
    """(D_v f (N, S), D_v² f (N, S)) of a pointwise function f: (N, d) → (N,) along each of the S directions, by
    nested forward-mode jvp (S evaluations of f and its first two derivatives; f is θ-free data, no backward)."""
    g1, g2 = [], []
    for s in range(dirs.count):
        if dirs.idx is not None:
            v = torch.zeros_like(x)
            v[:, int(dirs.idx[s])] = 1.0
        else:
            v = dirs.vecs[s].to(x.dtype).expand_as(x)

        def first(y, v=v):
            return torch.func.jvp(f, (y,), (v,))[1]

        a, b = torch.func.jvp(first, (x,), (v,))
        g1.append(a)
        g2.append(b)
    return torch.stack(g1, 1), torch.stack(g2, 1)
