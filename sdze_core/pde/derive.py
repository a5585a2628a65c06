"""Exact Laplacians of compiled expressions at O(d·k) per point: forward-Laplacian propagation.

Every value v carries (v, ∇v, Δv). Inside a window the gradient lives on the window's k local coordinates
(one tensor per offset, shape (rows, W)); the rules are exact, not finite differences:

    f(a):   ∇ = f'(a)∇a,             Δ = f'(a)Δa + f''(a)|∇a|²
    a·b:    ∇ = a∇b + b∇a,           Δ = aΔb + bΔa + 2∇a·∇b
    1/b:    ∇ = −∇b/b²,              Δ = −Δb/b² + 2|∇b|²/b³

Outside the windows an expression is a function of a few *features*: each windowed sum S, |x|² and each
fixed coordinate x[k]. A value's gradient is kept as coefficients α over the features (∇v = Σ_a α_a ∇y_a),
so the same rules only need the features' Gram entries ∇y_a·∇y_b, computed once per point:
∇|x|²·∇|x|² = 4|x|², ∇|x|²·∇x_k = 2x_k, ∇|x|²·∇S = Σ_i Σ_k 2 x_{i+k} ∂_k t_i (per block, no scatter), and
∇S·∇S', ∇S·∇x_k from the window gradients scattered into a d-vector per point (rows chunked so that the
scatter buffers hold at most 2^22 numbers). ``max``/``min`` are not differentiated here (give the source).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..norms import squared_row_norms
from .compile import FUNC_TABLE, Program
from .expr import PdeError

Feat = tuple  # ('s',) | ('xc', k) | ('red', instr id)


class LocalJet:
    __slots__ = ("v", "g", "lap")

    def __init__(self, v, g: dict[int, Tensor | float], lap):
        self.v, self.g, self.lap = v, g, lap


def _gg(a: dict, b: dict):
    acc = None
    for k, ga in a.items():
        gb = b.get(k)
        if gb is not None:
            t = ga * gb
            acc = t if acc is None else acc + t
    return acc


def _addv(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _scale(g: dict, s) -> dict:
    return {k: v * s for k, v in g.items()}


def _combine(ga: dict, sa, gb: dict, sb) -> dict:
    out = {k: v * sa for k, v in ga.items()}
    for k, v in gb.items():
        t = v * sb
        out[k] = out[k] + t if k in out else t
    return out


def jet_unary(op: str, a, ga: dict, lapa, gram) -> tuple:
    """(f(a), ∇, Δ) from a's (value, gradient dict, Laplacian); ``gram(ga, ga)`` gives |∇a|²."""
    f, f1, f2 = FUNC_TABLE[op]
    y = f(a)
    if not ga and lapa is None:
        return y, {}, None
    d1 = f1(a, y)
    n2 = gram(ga, ga)
    lap = _addv(None if lapa is None else d1 * lapa, None if n2 is None else f2(a, y) * n2)
    return y, _scale(ga, d1), lap


def jet_pow(p: float, a, ga: dict, lapa, gram) -> tuple:
    ip = int(p) if p == int(p) else p
    y = a * a if p == 2.0 else a**ip
    if not ga and lapa is None:
        return y, {}, None
    d1 = 2 * a if p == 2.0 else p * a ** (ip - 1)
    n2 = gram(ga, ga)
    d2 = None if n2 is None or p == 1.0 else (2.0 if p == 2.0 else p * (p - 1) * a ** (ip - 2)) * n2
    return y, _scale(ga, d1), _addv(None if lapa is None else d1 * lapa, d2)


def jet_bin(op: str, A: tuple, B: tuple, gram) -> tuple:
    (a, ga, la), (b, gb, lb) = A, B
    if op == "+":
        return a + b, _combine(ga, 1.0, gb, 1.0), _addv(la, lb)
    if op == "-":
        return a - b, _combine(ga, 1.0, gb, -1.0), _addv(la, None if lb is None else -lb)
    if op == "/":
        r = 1 / b
        n2 = gram(gb, gb)
        lr = _addv(None if lb is None else -lb * r * r, None if n2 is None else 2 * n2 * r * r * r)
        B = (r, _scale(gb, -r * r), lr)
        return jet_bin("*", A, B, gram)
    # product
    cross = gram(ga, gb)
    lap = _addv(
        _addv(None if lb is None else a * lb, None if la is None else b * la), None if cross is None else 2 * cross
    )
    return a * b, _combine(gb, a, ga, b), lap


class Laplacian:
    """(value, Δvalue) of a compiled program at points x (N, d), exactly, O(d·k) per point."""

    def __init__(self, prog: Program):
        self.p = prog
        for ins in prog.instrs:
            if ins.op == "red":
                g, slot = ins.const
                kind, body, dot, other = prog.groups[g].outs[slot]
                if kind != "sum":
                    raise PdeError(prog.fld, f"{kind}(…, i) cannot be differentiated exactly: give pde.source")
            if ins.local:
                for j in ins.args:
                    a = prog.instrs[j]
                    if not a.local and a.op not in ("num", "coefc", "x", "coef"):
                        raise PdeError(
                            prog.fld,
                            "a window term uses a per-point quantity (norm2(x), x[k] or a sum): "
                            "the exact source cannot be derived; give pde.source",
                        )
            if ins.op in ("u", "t"):
                raise PdeError(prog.fld, f"{ins.op} cannot appear here")
        self.pairs = self._pairs()
        self.scatter = {a for a, b in self.pairs if a[0] == "red" and b[0] != "s"}

    def _pairs(self) -> set[tuple[Feat, Feat]]:
        """Feature pairs whose Gram entry the outer rules will read (static: from the program's shape)."""
        p = self.p
        deps: dict[int, frozenset] = {}
        pairs: set = set()

        def add(A, B):
            for a in A:
                for b in B:
                    pairs.add((a, b))
                    pairs.add((b, a))

        for i, ins in enumerate(p.instrs):
            if ins.local:
                continue
            op = ins.op
            if op == "norm2":
                deps[i] = frozenset([("s",)])
            elif op == "xc":
                deps[i] = frozenset([("xc", ins.const)])
            elif op == "red":
                deps[i] = frozenset([("red", i)])
            elif op in ("num", "coefc"):
                deps[i] = frozenset()
            else:
                ds = [deps[j] for j in ins.args]
                deps[i] = frozenset().union(*ds)
                if op == "*":
                    add(ds[0], ds[1])
                elif op == "/":
                    add(ds[0], ds[1])
                    add(ds[1], ds[1])
                elif op in FUNC_TABLE or op == "pow":
                    add(ds[0], ds[0])
        return pairs

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.scatter:
            rows = max(1, (1 << 22) // (self.p.d * len(self.scatter)))
            if x.shape[0] > rows:
                parts = [self(xs) for xs in x.split(rows)]
                return torch.cat([a for a, _ in parts]), torch.cat([b for _, b in parts])
        return self._eval(x)

    def _group(self, g: int, x: Tensor, want: list[int]) -> dict:
        """Per reduction slot: value (rows,), Δ (rows,), Σ 2x·∇ (rows,), scattered ∇ (rows, d) if needed."""
        p = self.p
        grp = p.groups[g]
        w = grp.window
        rows = x.shape[0]
        res = {s: [None, None, None, None] for s in range(len(grp.outs))}
        for s in range(len(grp.outs)):
            if ("red", want[s]) in self.scatter:
                res[s][3] = torch.zeros_like(x)
        block = p.block_size(rows)
        for i0 in range(w.lo, w.hi, block):
            i1 = min(w.hi, i0 + block)
            W = i1 - i0
            slab = x[:, i0 + w.kmin : i1 + w.kmax]
            jets: dict[int, tuple] = {}

            def val(j, i0=i0, i1=i1, W=W, slab=slab, jets=jets):
                if j in jets:
                    return jets[j]
                ins = p.instrs[j]
                if ins.op == "x":
                    k = ins.const - w.kmin
                    return (slab[:, k : k + W], {ins.const: 1.0}, None)
                if ins.op == "coef":
                    name, k = ins.const
                    return (p.coef(name, x.dtype, x.device)[i0 + k : i1 + k], {}, None)
                return (p._outer_in_block(j, x), {}, None)

            fslab: dict[str, tuple] = {}
            for j in grp.all_ids:
                ins = p.instrs[j]
                if not ins.local or ins.op in ("x", "coef"):
                    continue
                a0 = p.instrs[ins.args[0]] if ins.args else None
                if ins.op in FUNC_TABLE and a0.op == "x":  # f(x[i+k]): f, f', f'' once per slab, sliced
                    if ins.op not in fslab:
                        f, f1, f2 = FUNC_TABLE[ins.op]
                        y = f(slab)
                        fslab[ins.op] = (y, f1(slab, y), f2(slab, y))
                    k = a0.const - w.kmin
                    y, y1, y2 = (q[:, k : k + W] for q in fslab[ins.op])
                    jets[j] = (y, {a0.const: y1}, y2)
                    continue
                args = [val(a) for a in ins.args]
                if ins.op in FUNC_TABLE:
                    jets[j] = jet_unary(ins.op, *args[0], _gg)
                elif ins.op == "pow":
                    jets[j] = jet_pow(ins.const, *args[0], _gg)
                else:
                    jets[j] = jet_bin(ins.op, args[0], args[1], _gg)
            for s, out in enumerate(grp.outs):
                scattered = res[s][3] is not None
                if out[2] is not None and not scattered:  # sum(c[i+k]·T, i): T's jets times c by mat-vec
                    c = val(out[2])[0]
                    v, gr, lap = val(out[3])

                    def red(q, c=c, W=W):
                        q = torch.as_tensor(q, dtype=x.dtype, device=x.device)
                        return q.expand(rows, W) @ c if q.dim() < 2 or q.shape[0] != rows else q @ c

                else:
                    v, gr, lap = val(out[1])

                    def red(q, W=W):
                        q = torch.as_tensor(q, dtype=x.dtype, device=x.device)
                        return q.expand(rows, W).sum(-1) if q.dim() < 2 or q.shape[0] != rows else q.sum(-1)

                r = res[s]
                r[0] = _addv(r[0], red(v))
                if lap is not None:
                    r[1] = _addv(r[1], red(lap))
                for k, gk in gr.items():
                    xk = slab[:, k - w.kmin : k - w.kmin + W]
                    r[2] = _addv(r[2], red(xk * gk))  # gk may be a number (∂x_{i+k}/∂x_{i+k} = 1)
                    if scattered:
                        r[3][:, i0 + k : i1 + k] += gk
        zero = torch.zeros(rows, dtype=x.dtype, device=x.device)
        for r in res.values():
            r[2] = None if r[2] is None else 2 * r[2]  # ∇|x|²·∇S = Σ 2 x_{i+k} ∂_k t_i
        return {s: [zero if t is None else t for t in r[:3]] + [r[3]] for s, r in res.items()}

    def _eval(self, x: Tensor) -> tuple[Tensor, Tensor]:
        p = self.p
        rows = x.shape[0]
        p._outer_vals = {}
        jets: dict[int, tuple] = {}
        feats: dict[Feat, list] = {}
        s_val = None
        groups: dict[int, dict] = {}
        want_by_group: dict[int, list[int]] = {}
        for i, ins in enumerate(p.instrs):
            if ins.op == "red":
                g, slot = ins.const
                want_by_group.setdefault(g, [0] * len(p.groups[g].outs))[slot] = i

        def gram_f(a: Feat, b: Feat):
            if a[0] == "s" and b[0] == "s":
                return 4 * s_val
            if a[0] == "s" or b[0] == "s":
                o = b if a[0] == "s" else a
                return 2 * x[:, o[1]] if o[0] == "xc" else feats[o][2]
            if a[0] == "xc" and b[0] == "xc":
                return 1.0 if a[1] == b[1] else None
            if a[0] == "xc" or b[0] == "xc":
                xc, o = (a, b) if a[0] == "xc" else (b, a)
                return feats[o][3][:, xc[1]]
            return (feats[a][3] * feats[b][3]).sum(-1)

        def gram(ga: dict, gb: dict):
            acc = None
            for fa, ca in ga.items():
                for fb, cb in gb.items():
                    gv = gram_f(fa, fb)
                    if gv is None:
                        continue
                    t = ca * cb * gv
                    acc = t if acc is None else acc + t
            return acc

        for i in p.order:
            ins = p.instrs[i]
            op = ins.op
            if op == "num":
                v = torch.tensor(ins.const, dtype=x.dtype, device=x.device)
                p._outer_vals[i] = v
                jets[i] = (v, {}, None)
            elif op == "coefc":
                name, k = ins.const
                v = p.coef(name, x.dtype, x.device)[k]
                p._outer_vals[i] = v
                jets[i] = (v, {}, None)
            elif op == "xc":
                v = x[:, ins.const]
                p._outer_vals[i] = v
                feats[("xc", ins.const)] = [v]
                jets[i] = (v, {("xc", ins.const): 1.0}, None)
            elif op == "norm2":
                s_val = squared_row_norms(x)
                p._outer_vals[i] = s_val
                jets[i] = (s_val, {("s",): 1.0}, torch.full_like(s_val, 2.0 * p.d))
            elif op == "red":
                g, slot = ins.const
                if g not in groups:
                    groups[g] = self._group(g, x, want_by_group[g])
                v, lap, xdot, buf = groups[g][slot]
                feats[("red", i)] = [v, lap, xdot, buf]
                p._outer_vals[i] = v
                jets[i] = (v, {("red", i): 1.0}, lap)
            elif op in FUNC_TABLE:
                jets[i] = jet_unary(op, *jets[ins.args[0]], gram)
            elif op == "pow":
                jets[i] = jet_pow(ins.const, *jets[ins.args[0]], gram)
            else:
                jets[i] = jet_bin(op, jets[ins.args[0]], jets[ins.args[1]], gram)
        v, _, lap = jets[p.root]
        p._outer_vals = {}
        shape = (rows,)
        v = v.expand(shape) if v.shape != shape else v
        lap = torch.as_tensor(0.0 if lap is None else lap, dtype=x.dtype, device=x.device).expand(shape)
        return v, lap
