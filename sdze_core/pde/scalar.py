"""A compiled expression as a function of one scalar per point, with exact first and second derivatives.

Time-dependent problems need two such views of a compiled program (``compile.Program``):

- the reaction F(u; x, t) as a function of u, the other inputs frozen: F, ∂F/∂u (the residual's linearization);
- a terminal condition g(x) = ψ(y(x)) that reads x only through one *feature* y (|x|², Σ_i x_i or max_i x_i)
  as a function of y: ψ, ψ', ψ'' (the closed-form jets of ``parabolic.terminal``).

The program's outer instructions that depend on the variable are re-evaluated on (value, first, second)
triples by forward-mode rules (no autograd):

    f(a):  y' = f'(a)a',           y'' = f''(a)a'² + f'(a)a''
    a·b:   (ab)' = a'b + ab',      (ab)'' = a''b + 2a'b' + ab''
    1/b:   r' = −b'/b²,            r'' = 2b'²/b³ − b''/b²
    a^p:   p a^{p−1}a',            p(p−1)a^{p−2}a'² + p a^{p−1}a''

Every instruction they read that does not depend on the variable (except numbers) is a *leaf*: its value per
point is computed once (``leaf_values``, float64, O(d·k) per point) and held as a column of an (N, m) tensor,
so evaluating F at a new u costs O(m) per point, not O(d).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .compile import FUNC_TABLE, Program


class ScalarView:
    """``prog`` as a function of the value of instruction ``var`` (e.g. the "u" instruction), the leaves fixed."""

    def __init__(self, prog: Program, var: int | None):
        self.p = prog
        ins = prog.instrs
        dep = [False] * len(ins)
        for i, a in enumerate(ins):
            dep[i] = i == var or any(dep[j] for j in a.args)
        self.ids = [i for i in range(len(ins)) if dep[i] and i != var and not ins[i].local]
        leaves = {j for i in self.ids for j in ins[i].args if not dep[j] and ins[j].op != "num"}
        if var is None or not dep[prog.root]:  # the value does not depend on the variable at all
            self.ids, leaves = [], ({prog.root} if ins[prog.root].op != "num" else set())
        self.var = var
        self.leaves = sorted(leaves)
        self.column = {j: k for k, j in enumerate(self.leaves)}

    @property
    def constant(self) -> float | None:
        """The value when the whole program is a number (else None)."""
        root = self.p.instrs[self.p.root]
        return float(root.const) if root.op == "num" else None

    def leaf_values(self, x: Tensor | None = None, t: Tensor | None = None) -> Tensor | None:
        """The leaves' values (N, m) at points x (N, d) and times t (N,) (None when there are no leaves)."""
        if not self.leaves:
            return None
        vals = self.p.values(x=x, t=t, only=self.leaves)
        n = (x if x is not None else t).shape[0]
        return torch.stack([vals[j].expand(n) for j in self.leaves], 1)

    def __call__(self, v: Tensor, leaves: Tensor | None = None, order: int = 0) -> tuple[Tensor, ...]:
        """(value,) / (value, d/dv) / (value, d/dv, d²/dv²) at the variable's values ``v`` (any shape; leaves
        (N, m) broadcast against v's leading axis)."""
        ins = self.p.instrs
        root = self.p.root
        zero = torch.zeros((), dtype=v.dtype, device=v.device)
        if root == self.var:
            one = torch.ones_like(v)
            return (v, one, torch.zeros_like(v))[: order + 1]
        c = self.constant
        if c is not None:
            y = torch.full_like(v, c)
            return (y, torch.zeros_like(v), torch.zeros_like(v))[: order + 1]
        if not self.ids:  # does not depend on the variable: the root is the one leaf
            y = leaves[:, self.column[root]].to(v.dtype)
            y = y.reshape(y.shape + (1,) * (v.dim() - 1)).expand(v.shape)
            return (y, torch.zeros_like(v), torch.zeros_like(v))[: order + 1]
        if order == 0:
            return (self._value(v, leaves),)
        J: dict[int, tuple] = {self.var: (v, 1.0, 0.0)}

        def get(j: int) -> tuple:
            if j in J:
                return J[j]
            a = ins[j]
            if a.op == "num":
                return (torch.tensor(a.const, dtype=v.dtype, device=v.device), zero, zero)
            col = leaves[:, self.column[j]].to(v.dtype)
            return (col.reshape(col.shape + (1,) * (v.dim() - 1)), zero, zero)

        for i in self.ids:
            a = ins[i]
            op = a.op
            if op in FUNC_TABLE:
                x0, x1, x2 = get(a.args[0])
                f, f1, f2 = FUNC_TABLE[op]
                y = f(x0)
                d1 = f1(x0, y)
                J[i] = (y, d1 * x1, (f2(x0, y) * x1 * x1 + d1 * x2) if order > 1 else zero)
            elif op == "pow":
                x0, x1, x2 = get(a.args[0])
                p = a.const
                ip = int(p) if p == int(p) else p
                y = x0 * x0 if p == 2.0 else x0**ip
                d1 = 2 * x0 if p == 2.0 else p * x0 ** (ip - 1)
                if order > 1:
                    dd = 2.0 if p == 2.0 else (0.0 if p == 1.0 else p * (p - 1) * x0 ** (ip - 2))
                    J[i] = (y, d1 * x1, dd * x1 * x1 + d1 * x2)
                else:
                    J[i] = (y, d1 * x1, zero)
            else:
                (a0, a1, a2), (b0, b1, b2) = get(a.args[0]), get(a.args[1])
                if op == "+":
                    J[i] = (a0 + b0, a1 + b1, a2 + b2)
                elif op == "-":
                    J[i] = (a0 - b0, a1 - b1, a2 - b2)
                elif op == "*":
                    J[i] = (a0 * b0, a1 * b0 + a0 * b1, a2 * b0 + 2 * a1 * b1 + a0 * b2)
                elif op == "/":
                    r = 1 / b0
                    r1 = -b1 * r * r
                    r2 = 2 * b1 * b1 * r * r * r - b2 * r * r
                    J[i] = (a0 * r, a1 * r + a0 * r1, a2 * r + 2 * a1 * r1 + a0 * r2)
                else:
                    raise ValueError(f"cannot differentiate {op!r}")
        out = J[root]
        return tuple(torch.as_tensor(q, dtype=v.dtype, device=v.device).expand(v.shape) for q in out[: order + 1])

    def _value_of(self, j: int, vals: dict, v: Tensor, leaves: Tensor | None) -> Tensor:
        if j in vals:
            return vals[j]
        a = self.p.instrs[j]
        if a.op == "num":
            return torch.tensor(a.const, dtype=v.dtype, device=v.device)
        col = leaves[:, self.column[j]].to(v.dtype)
        return col.reshape(col.shape + (1,) * (v.dim() - 1))

    def _value(self, v: Tensor, leaves: Tensor | None) -> Tensor:
        """The value alone (no derivative arithmetic: what the quadrature of ``cole_hopf`` evaluates most)."""
        ins = self.p.instrs
        vals: dict[int, Tensor] = {self.var: v}
        for i in self.ids:
            a = ins[i]
            args = [self._value_of(j, vals, v, leaves) for j in a.args]
            if a.op in FUNC_TABLE:
                vals[i] = FUNC_TABLE[a.op][0](args[0])
            elif a.op == "pow":
                p = a.const
                vals[i] = args[0] * args[0] if p == 2.0 else args[0] ** (int(p) if p == int(p) else p)
            elif a.op == "+":
                vals[i] = args[0] + args[1]
            elif a.op == "-":
                vals[i] = args[0] - args[1]
            elif a.op == "*":
                vals[i] = args[0] * args[1]
            else:
                vals[i] = args[0] / args[1]
        return vals[self.p.root].expand(v.shape)


def find_op(prog: Program, op: str) -> int | None:
    """The id of the (interned, hence unique) outer instruction with opcode ``op`` (e.g. "u"), or None."""
    for i, a in enumerate(prog.instrs):
        if a.op == op and not a.local:
            return i
    return None
