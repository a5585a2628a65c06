"""Binding and compiling an expression tree to vectorised torch code (values only; derivatives: ``derive``).

Binding fixes d and the coefficient vectors: ``d`` becomes a number, ``x[d-k]`` a fixed coordinate, constant
subtrees are folded, every fixed index is checked against its vector, and every window gets its range
``i ∈ [lo, hi)``: all i in 0..d−1 for which each x[i+k] stays in 0..d−1 and each c[i+k] in 0..len(c)−1.

Compiling interns the bound tree into a straight-line program of instructions (equal subtrees once: common
subexpressions are shared, e.g. the same windowed sum in u* and in sin(u*)). Windowed sums with the same
range form one *group*, evaluated in one pass over blocks of windows whose temporaries stay cache-sized
(≈ 2^15 numbers per temporary, as the hand-written catalogue does); inside a block an elementary function
of a bare coordinate, f(x[i+k]), is computed once for the block's slab of coordinates and sliced per
offset, and ``sum(c[i+k] * term, i)`` is a matrix-vector product. Cost: O(d·k) per point, no N×d×k
temporary, no autograd.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..norms import squared_row_norms
from .expr import Bin, Coef, Dim, Node, Norm2, Num, PdeError, Pow, Reduce, Time, U, Unary, X, walk

# f, f', f'' (f' and f'' as functions of the argument a and the value y = f(a))
FUNC_TABLE: dict[str, tuple[Callable, Callable, Callable]] = {
    "sin": (torch.sin, lambda a, y: torch.cos(a), lambda a, y: -y),
    "cos": (torch.cos, lambda a, y: -torch.sin(a), lambda a, y: -y),
    "tan": (torch.tan, lambda a, y: 1 + y * y, lambda a, y: 2 * y * (1 + y * y)),
    "exp": (torch.exp, lambda a, y: y, lambda a, y: y),
    "log": (torch.log, lambda a, y: 1 / a, lambda a, y: -1 / (a * a)),
    "sqrt": (torch.sqrt, lambda a, y: 0.5 / y, lambda a, y: -0.25 / (y * y * y)),
    "tanh": (torch.tanh, lambda a, y: 1 - y * y, lambda a, y: -2 * y * (1 - y * y)),
    "arctan": (torch.atan, lambda a, y: 1 / (1 + a * a), lambda a, y: -2 * a / (1 + a * a) ** 2),
    "abs": (torch.abs, lambda a, y: torch.sign(a), lambda a, y: torch.zeros_like(a)),
    "sinh": (torch.sinh, lambda a, y: torch.cosh(a), lambda a, y: y),
    "cosh": (torch.cosh, lambda a, y: torch.sinh(a), lambda a, y: y),
}
MAX_CONST = 1e300


@dataclass(frozen=True)
class Window:
    """Index range i ∈ [lo, hi) of a windowed reduction and the span of its x offsets [kmin, kmax]."""

    lo: int
    hi: int
    kmin: int
    kmax: int


def _window(body: Node, d: int, lengths: dict[str, int], fld: str, pos: int) -> Window:
    lo, hi = 0, d
    xs = []
    for m in walk(body):
        if isinstance(m, X) and m.windowed:
            lo, hi = max(lo, -m.offset), min(hi, d - m.offset)
            xs.append(m.offset)
        elif isinstance(m, Coef) and m.windowed:
            lo, hi = max(lo, -m.offset), min(hi, lengths[m.name] - m.offset)
    if hi <= lo:
        raise PdeError(fld, f"the window of this reduction is empty at d={d} (offsets leave no valid i)", pos)
    return Window(lo, hi, min(xs, default=0), max(xs, default=0))


def bind(n: Node, d: int, lengths: dict[str, int], fld: str) -> Node:
    """Resolve d, fixed indices and constants (iterative post-order: no recursion limit)."""
    out: dict[int, Node] = {}
    stack: list[tuple[Node, bool]] = [(n, False)]
    while stack:
        m, done = stack.pop()
        if not done:
            stack.append((m, True))
            for c in (m.arg,) if isinstance(m, Unary) else (m.a, m.b) if isinstance(m, Bin) else ():
                stack.append((c, False))
            if isinstance(m, Pow):
                stack.append((m.base, False))
            if isinstance(m, Reduce):
                stack.append((m.body, False))
            continue
        out[id(m)] = _bind_one(m, out, d, lengths, fld)
    return out[id(n)]


def _num(pos: int, v: float, fld: str) -> Num:
    if not math.isfinite(v) or abs(v) > MAX_CONST:
        raise PdeError(fld, "a constant subexpression is not finite", pos)
    return Num(pos, float(v))


def _bind_one(m: Node, out: dict, d: int, lengths: dict[str, int], fld: str) -> Node:
    if isinstance(m, Dim):
        return Num(m.pos, float(d))
    if isinstance(m, X) and not m.windowed:
        k = d - m.offset if m.from_end else m.offset
        if not 0 <= k < d:
            raise PdeError(fld, f"x[{k}] is outside 0..{d - 1}", m.pos)
        return X(m.pos, k, False, False)
    if isinstance(m, Coef) and not m.windowed:
        n = lengths[m.name]
        k = n - m.offset if m.from_end else m.offset  # c[d-k] counts from the end of c
        if not 0 <= k < n:
            raise PdeError(fld, f"{m.name}[{k}] is outside 0..{n - 1}", m.pos)
        return Coef(m.pos, m.name, k, False, False)
    if isinstance(m, Unary):
        a = out[id(m.arg)]
        if isinstance(a, Num):
            with torch.no_grad():
                v = float(FUNC_TABLE[m.fn][0](torch.tensor(a.value, dtype=torch.float64)))
            return _num(m.pos, v, fld)
        return Unary(m.pos, m.fn, a)
    if isinstance(m, Bin):
        a, b = out[id(m.a)], out[id(m.b)]
        if isinstance(b, Num) and m.op == "/" and b.value == 0:
            raise PdeError(fld, "division by the constant 0", m.pos)
        if isinstance(a, Num) and isinstance(b, Num):
            x, y = a.value, b.value
            return _num(m.pos, {"+": x + y, "-": x - y, "*": x * y, "/": x / y if y else 0.0}[m.op], fld)
        return Bin(m.pos, m.op, a, b)
    if isinstance(m, Pow):
        base = out[id(m.base)]
        if isinstance(base, Num):
            x = base.value
            if (x < 0 and m.p != int(m.p)) or (x == 0 and m.p < 0):
                raise PdeError(fld, "constant power is undefined", m.pos)
            try:
                v = x**m.p
            except OverflowError:
                v = math.inf
            return _num(m.pos, v, fld)
        return Pow(m.pos, base, m.p)
    if isinstance(m, Reduce):
        body = out[id(m.body)]
        _window(body, d, lengths, fld, m.pos)  # validates a non-empty window
        return Reduce(m.pos, m.kind, body)
    return m


# -- straight-line program ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Instr:
    """op ∈ num, x (windowed: local), xc (fixed coordinate), coef, coefc, norm2, u, fn names, + - * /, pow,
    red (a reduction: ``arg`` is the group index, ``const`` its slot); ``local`` marks window-level values."""

    op: str
    args: tuple[int, ...] = ()
    const: object = None
    local: bool = False


@dataclass
class Group:
    window: Window
    body_ids: list[int]  # local instructions to evaluate per block, in order
    outs: list[tuple[str, int, int | None, int | None]]  # (kind, body id, dot: coef id, other id)
    all_ids: list[int] | None = None  # body_ids plus the bodies of matrix-vector sums (for derivatives)


class Program:
    """A compiled expression: ``instrs`` in topological order, windows grouped by range."""

    def __init__(self, tree: Node, d: int, coefs: dict[str, Tensor], fld: str):
        self.d, self.fld = d, fld
        self.coefs = {k: v.to(torch.float64) for k, v in coefs.items()}
        self.instrs: list[Instr] = []
        self._ids: dict[Instr, int] = {}
        self.groups: list[Group] = []
        self._group_of: dict[Window, int] = {}
        self.root = self._intern(tree, False)
        self._cache: dict = {}

    # interning (iterative post-order)
    def _add(self, ins: Instr) -> int:
        k = self._ids.get(ins)
        if k is None:
            k = len(self.instrs)
            self.instrs.append(ins)
            self._ids[ins] = k
        return k

    def _intern(self, tree: Node, local: bool) -> int:
        ids: dict[int, int] = {}
        stack: list[tuple[Node, bool, bool]] = [(tree, local, False)]
        while stack:
            m, loc, done = stack.pop()
            if isinstance(m, Reduce):
                ids[id(m)] = self._reduce(m)
                continue
            kids = (m.arg,) if isinstance(m, Unary) else (m.a, m.b) if isinstance(m, Bin) else ()
            kids = (m.base,) if isinstance(m, Pow) else kids
            if not done and kids:
                stack.append((m, loc, True))
                stack.extend((c, loc, False) for c in kids)
                continue
            ids[id(m)] = self._add(self._instr(m, [ids[id(c)] for c in kids], loc))
        return ids[id(tree)]

    def _instr(self, m: Node, a: list[int], local: bool) -> Instr:
        isl = local and any(self.instrs[i].local for i in a)  # window-level only if a child is
        if isinstance(m, Num):
            return Instr("num", (), m.value, False)
        if isinstance(m, X):
            return Instr("x", (), m.offset, True) if m.windowed else Instr("xc", (), m.offset, False)
        if isinstance(m, Coef):
            return Instr("coef", (), (m.name, m.offset), True) if m.windowed else Instr("coefc", (), (m.name, m.offset))
        if isinstance(m, Norm2):
            return Instr("norm2")
        if isinstance(m, U):
            return Instr("u")
        if isinstance(m, Time):
            return Instr("t")
        if isinstance(m, Unary):
            return Instr(m.fn, tuple(a), None, isl)
        if isinstance(m, Bin):
            return Instr(m.op, tuple(a), None, isl)
        if isinstance(m, Pow):
            return Instr("pow", tuple(a), m.p, isl)
        raise PdeError(self.fld, f"cannot compile {type(m).__name__}", m.pos)

    def _reduce(self, m: Reduce) -> int:
        w = _window(m.body, self.d, {k: v.shape[0] for k, v in self.coefs.items()}, self.fld, m.pos)
        body = self._intern(m.body, True)
        g = self._group_of.get(w)
        if g is None:
            g = len(self.groups)
            self.groups.append(Group(w, [], []))
            self._group_of[w] = g
        grp = self.groups[g]
        dot = other = None
        b = self.instrs[body]
        if m.kind == "sum" and b.op == "*":
            i, j = b.args
            if self.instrs[i].op == "coef" and self.instrs[j].local:
                dot, other = i, j
            elif self.instrs[j].op == "coef" and self.instrs[i].local:
                dot, other = j, i
        key = (m.kind, body, dot, other)
        if key not in grp.outs:
            grp.outs.append(key)
        slot = grp.outs.index(key)
        return self._add(Instr("red", (), (g, slot), False))

    def finalize(self) -> Program:
        """Per group, the local instructions its outputs need (in program order); the outer order: values
        free of reductions first (window bodies may read them), then the rest."""
        dep: list[bool] = []
        for ins in self.instrs:
            dep.append(ins.op == "red" or any(dep[j] for j in ins.args))
        outer = [i for i, ins in enumerate(self.instrs) if not ins.local]
        self.order = [i for i in outer if not dep[i]] + [i for i in outer if dep[i]]
        for grp in self.groups:
            need: set[int] = set()
            stack = [o[1] if o[2] is None else o[3] for o in grp.outs] + [o[2] for o in grp.outs if o[2] is not None]
            while stack:
                i = stack.pop()
                if i in need:
                    continue
                need.add(i)
                stack.extend(self.instrs[i].args)
            grp.body_ids = sorted(need)
            full = set(need)
            stack = [o[1] for o in grp.outs]
            while stack:
                i = stack.pop()
                if i in full:
                    continue
                full.add(i)
                stack.extend(self.instrs[i].args)
            grp.all_ids = sorted(full)
        return self

    def coef(self, name: str, dtype, device) -> Tensor:
        key = (name, dtype, device)
        if key not in self._cache:
            self._cache[key] = self.coefs[name].to(dtype=dtype, device=device)
        return self._cache[key]

    # -- evaluation -------------------------------------------------------------------------------------
    def uses(self, op: str) -> bool:
        return any(ins.op == op for ins in self.instrs)

    def block_size(self, rows: int) -> int:
        return max(512, (1 << 15) // max(1, rows))

    def eval_group(self, g: int, x: Tensor) -> list[Tensor]:
        """The group's reductions at points x (rows, d): one tensor (rows,) per output slot."""
        grp = self.groups[g]
        w = grp.window
        rows = x.shape[0]
        acc: list[Tensor | None] = [None] * len(grp.outs)
        block = self.block_size(rows)
        for i0 in range(w.lo, w.hi, block):
            i1 = min(w.hi, i0 + block)
            vals = self._eval_block(grp, x, i0, i1)
            for s, (kind, body, dot, other) in enumerate(grp.outs):
                if dot is not None:
                    v = vals[other]
                    c = vals[dot]
                    r = v @ c if v.dim() == 2 else (v * c).sum().expand(rows)
                else:
                    v = vals[body]
                    v = v.expand(rows, i1 - i0) if v.dim() < 2 else v
                    r = v.sum(-1) if kind == "sum" else (v.amax(-1) if kind == "max" else v.amin(-1))
                a = acc[s]
                if a is None:
                    acc[s] = r
                else:
                    acc[s] = a + r if kind == "sum" else (torch.maximum(a, r) if kind == "max" else torch.minimum(a, r))
        return acc

    def _eval_block(self, grp: Group, x: Tensor, i0: int, i1: int) -> dict[int, Tensor]:
        w = grp.window
        W = i1 - i0
        slab = x[:, i0 + w.kmin : i1 + w.kmax]
        fslab: dict[str, Tensor] = {}
        vals: dict[int, Tensor] = {}
        for i in grp.body_ids:
            ins = self.instrs[i]
            op = ins.op
            if op == "x":
                k = ins.const - w.kmin
                vals[i] = slab[:, k : k + W]
            elif op == "coef":
                name, k = ins.const
                vals[i] = self.coef(name, x.dtype, x.device)[i0 + k : i1 + k]
            elif not ins.local:
                continue  # outer values are broadcast where a local op meets them (below)
            elif op in FUNC_TABLE:
                a = self.instrs[ins.args[0]]
                if a.op == "x":  # f(x[i+k]): once per slab, sliced per offset
                    f = fslab.get(op)
                    if f is None:
                        f = fslab[op] = FUNC_TABLE[op][0](slab)
                    k = a.const - w.kmin
                    vals[i] = f[:, k : k + W]
                else:
                    vals[i] = FUNC_TABLE[op][0](vals[ins.args[0]])
            else:
                args = [vals[j] if j in vals else self._outer_in_block(j, x) for j in ins.args]
                vals[i] = _apply(op, args, ins.const)
        return vals

    def _outer_in_block(self, j: int, x: Tensor) -> Tensor:
        """An outer value met inside a window (a number or a per-point scalar), shaped to broadcast."""
        v = self._outer_vals[j]
        return v.unsqueeze(-1) if isinstance(v, Tensor) and v.dim() == 1 else v

    def __call__(self, x: Tensor | None = None, u: Tensor | None = None, t: Tensor | None = None) -> Tensor:
        """Value at points x (N, d) (or at u for a reaction; t (N,) where the expression reads the time),
        shape (N,) (or u's shape)."""
        ref = x if x is not None else (u if u is not None else t)
        vals = self.values(x, u, t)
        out = vals[self.root]
        shape = ref.shape[:1] if x is not None else ref.shape
        return out.expand(shape) if out.shape != shape else out

    def ancestors(self, ids) -> set[int]:
        """The outer instructions that ``ids`` need (themselves included)."""
        need: set[int] = set()
        stack = list(ids)
        while stack:
            i = stack.pop()
            if i in need:
                continue
            need.add(i)
            stack.extend(j for j in self.instrs[i].args if not self.instrs[j].local)
        return need

    def values(
        self, x: Tensor | None = None, u: Tensor | None = None, t: Tensor | None = None, only=None
    ) -> dict[int, Tensor]:
        """The outer instructions' values (all, or those that the ids in ``only`` need): {id: tensor}."""
        self._outer_vals = {}
        groups: dict[int, list[Tensor]] = {}
        vals = self._outer_vals
        ref = x if x is not None else (u if u is not None else t)
        need = None if only is None else self.ancestors(only)
        for i in self.order:
            if need is not None and i not in need:
                continue
            ins = self.instrs[i]
            op = ins.op
            if op == "num":
                vals[i] = torch.tensor(ins.const, dtype=ref.dtype, device=ref.device)
            elif op == "u":
                vals[i] = u
            elif op == "t":
                vals[i] = t
            elif op == "xc":
                vals[i] = x[:, ins.const]
            elif op == "coefc":
                name, k = ins.const
                vals[i] = self.coef(name, ref.dtype, ref.device)[k]
            elif op == "norm2":
                vals[i] = squared_row_norms(x)
            elif op == "red":
                g, slot = ins.const
                if g not in groups:
                    groups[g] = self.eval_group(g, x)
                vals[i] = groups[g][slot]
            elif op in FUNC_TABLE:
                vals[i] = FUNC_TABLE[op][0](vals[ins.args[0]])
            else:
                vals[i] = _apply(op, [vals[j] for j in ins.args], ins.const)
        self._outer_vals = {}
        return vals


def _apply(op: str, a: list[Tensor], const) -> Tensor:
    if op == "+":
        return a[0] + a[1]
    if op == "-":
        return a[0] - a[1]
    if op == "*":
        return a[0] * a[1]
    if op == "/":
        return a[0] / a[1]
    if op == "pow":
        p = const
        if p == 2.0:
            return a[0] * a[0]
        return a[0] ** (int(p) if p == int(p) else p)
    raise ValueError(op)


def compile_tree(tree: Node, d: int, coefs: dict[str, Tensor], fld: str) -> Program:
    """Bind ``tree`` at dimension d with coefficient vectors ``coefs`` and compile it."""
    lengths = {k: int(v.shape[0]) for k, v in coefs.items()}
    return Program(bind(tree, d, lengths, fld), d, coefs, fld).finalize()
