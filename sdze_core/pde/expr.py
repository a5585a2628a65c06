"""The expression language of user PDEs (docs/pde.md): tokenizer, recursive-descent parser, syntax tree.

User text is *parsed*, never evaluated: a hand-written tokenizer accepts only ASCII digits, letters, ``_``,
``+ - * / ^ ( ) [ ] , .`` and spaces; a recursive-descent parser with an explicit depth counter builds
frozen nodes from a fixed allowlist of names. Nothing in this module (or the package) calls ``eval``,
``exec``, ``compile`` or a symbolic-algebra parser. Every error is a ``PdeError`` naming the field and the
0-based character position.

Grammar (EBNF; ``^`` binds tighter than unary minus and is right-associative, so ``-x^2 = -(x^2)``)::

    expr   := term (("+" | "-") term)*
    term   := unary (("*" | "/") unary)*
    unary  := ("+" | "-") unary | power
    power  := atom ("^" unary)?
    atom   := NUMBER | "d" | "u" | "t" | "pi" | "(" expr ")" | LET
            | "x" "[" index "]" | COEF "[" index "]"
            | FUNC "(" expr ")" | "norm2" "(" "x" ")"
            | ("sum" | "max" | "min") "(" expr "," "i" ")"
    index  := "i" (("+" | "-") INT)? | INT | "d" "-" INT

``LET`` is a name the problem's ``let`` object defines (``parse_lets``): it stands for its parsed expression, as if
written out in parentheses (so the compiler still shares it), and may use the names defined before it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

# -- bounds (each declared once; docs/pde.md lists them) ---------------------------------------------------
MAX_CHARS = 10_000  # characters per expression
MAX_NODES = 2_000  # syntax-tree nodes per expression
MAX_DEPTH = 64  # nesting depth (parentheses, calls, operators)
MAX_EXPONENT = 64.0  # |p| of a power x^p (p must be a constant)
MAX_OFFSET = 8  # |k| in x[i+k], c[i+k]
MAX_COEF_VECTORS = 8  # named coefficient vectors per problem
MAX_NUMBER = 1e12  # |literal|
MAX_LETS = 16  # named subexpressions per problem (``let``)

FUNCS = ("sin", "cos", "tan", "exp", "log", "sqrt", "tanh", "arctan", "abs", "sinh", "cosh")
REDUCERS = ("sum", "max", "min")
RESERVED = frozenset(("x", "d", "u", "t", "i", "pi", "norm2") + FUNCS + REDUCERS)
COEF_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,15}\Z")


class PdeError(ValueError):
    """A rejected expression or problem: ``field`` (dotted path), ``pos`` (0-based character or None)."""

    def __init__(self, field: str, msg: str, pos: int | None = None):
        self.field, self.msg, self.pos = field, msg, pos
        where = f" at position {pos}" if pos is not None else ""
        super().__init__(f"{field}{where}: {msg}")


# -- nodes (frozen, hashable: equal subtrees are shared by the compiler) ---------------------------------
@dataclass(frozen=True)
class Node:
    pos: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Num(Node):
    value: float = 0.0


@dataclass(frozen=True)
class Dim(Node):
    """The dimension d (folded to a number when the problem is built)."""


@dataclass(frozen=True)
class U(Node):
    """The unknown u (reaction terms only)."""


@dataclass(frozen=True)
class Time(Node):
    """The time t (time-dependent problems' reaction and exact solution only; one number per point)."""


@dataclass(frozen=True)
class X(Node):
    """x[i+offset] inside a window (``windowed``) or the fixed coordinate x[offset] (``from_end``: x[d-k])."""

    offset: int = 0
    windowed: bool = True
    from_end: bool = False


@dataclass(frozen=True)
class Coef(Node):
    name: str = ""
    offset: int = 0
    windowed: bool = True
    from_end: bool = False


@dataclass(frozen=True)
class Norm2(Node):
    """|x|² = Σ_i x_i²."""


@dataclass(frozen=True)
class Unary(Node):
    fn: str = ""
    arg: Node = None


@dataclass(frozen=True)
class Bin(Node):
    op: str = "+"
    a: Node = None
    b: Node = None


@dataclass(frozen=True)
class Pow(Node):
    base: Node = None
    p: float = 1.0


@dataclass(frozen=True)
class Reduce(Node):
    """sum / max / min of ``body`` over every window index i whose offsets stay in range."""

    kind: str = "sum"
    body: Node = None


def children(n: Node) -> tuple[Node, ...]:
    if isinstance(n, Unary):
        return (n.arg,)
    if isinstance(n, Bin):
        return (n.a, n.b)
    if isinstance(n, Pow):
        return (n.base,)
    if isinstance(n, Reduce):
        return (n.body,)
    return ()


def walk(n: Node):
    """Every node, parents before children (iterative: no recursion limit)."""
    stack = [n]
    while stack:
        m = stack.pop()
        yield m
        stack.extend(reversed(children(m)))


# -- tokenizer ---------------------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>[-+*/^()\[\],])|(?P<ws>[ \t\r\n]+)"
)


@dataclass(frozen=True)
class Tok:
    kind: str  # num, name, op, end
    text: str
    pos: int


_BAD_CHAR = re.compile(r"[^\t\n\r\x20-\x7e]")


def _check_text(text: str, fld: str) -> None:
    if not isinstance(text, str):
        raise PdeError(fld, "must be a string expression")
    if len(text) > MAX_CHARS:
        raise PdeError(fld, f"expression longer than {MAX_CHARS} characters ({len(text)})", MAX_CHARS)
    bad = _BAD_CHAR.search(text)
    if bad is not None:
        ch = bad.group()
        raise PdeError(fld, f"character {ch!r} (U+{ord(ch):04X}) is not allowed; use ASCII", bad.start())


def tokens(text: str, fld: str):
    """Tokens of ``text`` one at a time (lazy: a parser that stops early never scans the rest)."""
    _check_text(text, fld)
    k = 0
    while k < len(text):
        m = _TOKEN.match(text, k)
        if m is None:
            raise PdeError(fld, f"unexpected character {text[k]!r}", k)
        if m.lastgroup != "ws":
            yield Tok(m.lastgroup, m.group(), k)
        k = m.end()
    yield Tok("end", "", len(text))


def tokenize(text: str, fld: str) -> list[Tok]:
    return list(tokens(text, fld))


# -- parser ------------------------------------------------------------------------------------------------
class _Parser:
    def __init__(
        self,
        text: str,
        fld: str,
        coef_names: frozenset[str],
        allow_u: bool,
        allow_x: bool,
        allow_t: bool = False,
        lets: dict[str, Node] | None = None,
    ):
        self.fld, self.allow_u, self.allow_x, self.allow_t = fld, allow_u, allow_x, allow_t
        self.lets_any = lets is None and coef_names is None  # syntax-only check: any bare name may be a let
        self.lets = lets or {}
        self.coefs_any = coef_names is None  # syntax-only check: any name[...] may be a coefficient
        self.coefs = frozenset() if coef_names is None else coef_names
        self._gen = tokens(text, fld)
        self.toks: list[Tok] = []
        self.k = 0
        self.depth = 0
        self.nodes = 0
        self.window = False  # inside sum/max/min: i is bound

    # helpers
    def err(self, msg: str, pos: int | None = None):
        raise PdeError(self.fld, msg, self.peek().pos if pos is None else pos)

    def peek(self) -> Tok:
        while self.k >= len(self.toks):
            nxt = next(self._gen, None)
            if nxt is None:  # past the end token: keep answering "end"
                return self.toks[-1]
            self.toks.append(nxt)
        return self.toks[self.k]

    def take(self) -> Tok:
        t = self.peek()
        self.k += 1
        return t

    def expect(self, text: str) -> Tok:
        t = self.peek()
        if t.text != text or t.kind not in ("op", "name"):
            self.err(f"expected {text!r}, found {t.text or 'end of expression'!r}")
        return self.take()

    def node(self, n: Node) -> Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise PdeError(self.fld, f"more than {MAX_NODES} nodes", n.pos)
        return n

    def enter(self, pos: int):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise PdeError(self.fld, f"nesting deeper than {MAX_DEPTH}", pos)

    # grammar
    def parse(self) -> Node:
        n = self.expr()
        if self.peek().kind != "end":
            self.err(f"unexpected {self.peek().text!r}")
        return n

    def expr(self) -> Node:
        self.enter(self.peek().pos)
        n = self.term()
        while self.peek().kind == "op" and self.peek().text in "+-":
            t = self.take()
            n = self.node(Bin(t.pos, t.text, n, self.term()))
        self.depth -= 1
        return n

    def term(self) -> Node:
        n = self.unary()
        while self.peek().kind == "op" and self.peek().text in "*/":
            t = self.take()
            if self.peek().kind == "op" and self.peek().text == "*" and t.text == "*":
                self.err("'**' is not an operator; write a power as a^p")
            n = self.node(Bin(t.pos, t.text, n, self.unary()))
        return n

    def unary(self) -> Node:
        t = self.peek()
        if t.kind == "op" and t.text in "+-":
            self.take()
            self.enter(t.pos)
            arg = self.unary()
            self.depth -= 1
            if t.text == "+":
                return arg
            if isinstance(arg, Num):
                return Num(t.pos, -arg.value)
            return self.node(Bin(t.pos, "*", Num(t.pos, -1.0), arg))
        return self.power()

    def power(self) -> Node:
        base = self.atom()
        if self.peek().kind == "op" and self.peek().text == "^":
            t = self.take()
            self.enter(t.pos)
            expo = self.unary()
            self.depth -= 1
            p = const_value(expo)
            if p is None:
                self.err("the exponent of ^ must be a constant (numbers and d are resolved later: use a number)", t.pos)
            if not math.isfinite(p) or abs(p) > MAX_EXPONENT:
                self.err(f"exponent {p:g} outside [-{MAX_EXPONENT:g}, {MAX_EXPONENT:g}]", t.pos)
            return self.node(Pow(t.pos, base, float(p)))
        return base

    def atom(self) -> Node:
        t = self.take()
        if t.kind == "num":
            try:
                v = float(t.text)
            except ValueError:  # pragma: no cover - the regex only admits float syntax
                self.err(f"bad number {t.text!r}", t.pos)
            if not math.isfinite(v) or abs(v) > MAX_NUMBER:
                self.err(f"number {t.text!r} is not finite or exceeds {MAX_NUMBER:g} in magnitude", t.pos)
            return self.node(Num(t.pos, v))
        if t.kind == "op" and t.text == "(":
            n = self.expr()
            self.expect(")")
            return n
        if t.kind != "name":
            self.err(f"unexpected {t.text or 'end of expression'!r}", t.pos)
        name = t.text
        if name == "d":
            return self.node(Dim(t.pos))
        if name == "pi":
            return self.node(Num(t.pos, math.pi))
        if name == "u":
            if not self.allow_u:
                self.err("u is only allowed in pde.reaction", t.pos)
            if self.window:
                self.err("u inside sum/max/min is not allowed (u is one number per point: write it outside)", t.pos)
            return self.node(U(t.pos))
        if name == "t":
            if not self.allow_t:
                self.err(
                    "t (time) is only allowed in a time-dependent problem's pde.reaction, exact, boundary and let",
                    t.pos,
                )
            return self.node(Time(t.pos))
        if name == "x":
            if not self.allow_x:
                self.err("x is not allowed here (pde.reaction is F(u): a function of u only)", t.pos)
            off, win, end = self.index()
            return self.node(X(t.pos, off, win, end))
        if name in self.coefs or (self.coefs_any and self.peek().text == "[" and COEF_NAME.match(name)):
            if not self.allow_x:
                self.err("coefficient vectors are not allowed in pde.reaction", t.pos)
            off, win, end = self.index()
            return self.node(Coef(t.pos, name, off, win, end))
        if name == "i":
            self.err("i may only appear as an index, x[i+k] or c[i+k]", t.pos)
        if name in FUNCS or name in REDUCERS or name == "norm2":
            return self.call(t)
        if name in self.lets:
            return self.let(name, t.pos)
        if self.lets_any and COEF_NAME.match(name):  # resolved with the whole problem (its let object)
            return self.node(Num(t.pos, 0.0))
        names = FUNCS + REDUCERS + ("norm2", "x", "d", "u", "t", "pi") + tuple(sorted(self.coefs | set(self.lets)))
        self.err(f"unknown name {name!r} (known: {', '.join(names)})", t.pos)

    def let(self, name: str, pos: int) -> Node:
        """A let name: its tree, if it may stand here (what it reads is allowed in this field; no reduction
        inside another); it counts its nodes against this expression's bound."""
        body = self.lets[name]
        inner = list(walk(body))
        if any(isinstance(m, U) for m in inner) and (not self.allow_u or self.window):
            where = "inside sum/max/min" if self.allow_u else "outside pde.reaction"
            self.err(f"{name} (a let) reads u, which is not allowed {where}", pos)
        if not self.allow_t and any(isinstance(m, Time) for m in inner):
            self.err(f"{name} (a let) reads t, which is not allowed here", pos)
        if not self.allow_x and any(isinstance(m, (X, Coef, Norm2)) for m in inner):
            self.err(f"{name} (a let) reads x, which is not allowed here", pos)
        if self.window and any(isinstance(m, Reduce) for m in inner):
            self.err(f"{name} (a let) holds a sum/max/min: not allowed inside another sum/max/min", pos)
        self.nodes += len(inner)
        if self.nodes > MAX_NODES:
            raise PdeError(self.fld, f"more than {MAX_NODES} nodes (with {name} written out)", pos)
        return body

    def call(self, t: Tok) -> Node:
        name = t.text
        if self.peek().text != "(":
            self.err(f"{name} is a function: write {name}(...)")
        self.take()
        self.enter(t.pos)
        if name == "norm2":
            a = self.take()
            if a.text != "x":
                self.err("norm2 takes exactly the argument x: norm2(x)", a.pos)
            if not self.allow_x:
                self.err("x is not allowed here", a.pos)
            self.expect(")")
            self.depth -= 1
            return self.node(Norm2(t.pos))
        if name in REDUCERS:
            if self.window:
                self.err(f"{name} inside another sum/max/min is not allowed (keeps the cost O(d·k))", t.pos)
            self.window = True
            body = self.expr()
            self.window = False
            if self.peek().text != ",":
                self.err(f"{name} takes two arguments: {name}(term, i)")
            self.take()
            iv = self.take()
            if iv.text != "i":
                self.err(f"the second argument of {name} must be the index i", iv.pos)
            self.expect(")")
            self.depth -= 1
            if not any(isinstance(m, (X, Coef)) and m.windowed for m in walk(body)):
                self.err(f"{name}(term, i): term does not use x[i+k] or a coefficient c[i+k]", t.pos)
            return self.node(Reduce(t.pos, name, body))
        arg = self.expr()
        if self.peek().text == ",":
            self.err(f"{name} takes one argument")
        self.expect(")")
        self.depth -= 1
        return self.node(Unary(t.pos, name, arg))

    def index(self) -> tuple[int, bool, bool]:
        """'[' i(±K)? | K | d-K ']' -> (offset, windowed, from_end)."""
        self.expect("[")
        t = self.take()
        if t.text == "i":
            if not self.window:
                self.err("x[i+k] / c[i+k] need an enclosing sum(…, i), max(…, i) or min(…, i)", t.pos)
            off = 0
            if self.peek().text in ("+", "-"):
                sign = -1 if self.take().text == "-" else 1
                off = sign * self.small_int()
            self.expect("]")
            return off, True, False
        if t.text == "d":
            self.expect("-")
            k = self.small_int(lo=1)
            self.expect("]")
            return k, False, True
        if t.kind == "num":
            self.k -= 1
            k = self.small_int(limit=None)
            self.expect("]")
            return k, False, False
        self.err("an index is i, i+k, i-k, a non-negative integer, or d-k", t.pos)

    def small_int(self, lo: int = 0, limit: int | None = MAX_OFFSET) -> int:
        t = self.take()
        if t.kind != "num" or not t.text.isdigit():
            self.err("expected a non-negative integer", t.pos)
        v = int(t.text[:12])
        if len(t.text) > 12 or (limit is not None and v > limit) or v < lo:
            rng = f"{lo}..{limit}" if limit is not None else f">= {lo}"
            self.err(f"index offset {t.text} outside {rng}", t.pos)
        return v


def const_value(n: Node) -> float | None:
    """The value of a constant subtree of numbers (no d: d is unknown at parse time), else None."""
    if isinstance(n, Num):
        return n.value
    if isinstance(n, Bin):
        a, b = const_value(n.a), const_value(n.b)
        if a is None or b is None:
            return None
        if n.op == "+":
            return a + b
        if n.op == "-":
            return a - b
        if n.op == "*":
            return a * b
        return a / b if b != 0 else None
    if isinstance(n, Pow):
        a = const_value(n.base)
        if a is None or abs(a) > 1e6 or (a < 0 and n.p != int(n.p)) or (a == 0 and n.p < 0):
            return None
        return a**n.p
    return None


def parse(
    text: str,
    fld: str,
    coef_names: frozenset[str] | set[str] | None = frozenset(),
    allow_u: bool = False,
    allow_t: bool = False,
    allow_x: bool | None = None,
    lets: dict[str, Node] | None = None,
) -> Node:
    """Parse ``text`` (field ``fld``) into a tree; ``allow_u`` for the reaction F(u) (then x is refused unless
    ``allow_x``: a time-dependent problem's reaction F(u; x, t)); ``allow_t`` admits the time t; ``lets`` are the
    problem's named subexpressions (``parse_lets``).

    ``coef_names=None`` accepts any unreserved ``name[...]`` as a coefficient and any other unreserved name as a let
    (a syntax-only check)."""
    names = None if coef_names is None else frozenset(coef_names)
    ax = (not allow_u) if allow_x is None else allow_x
    return _Parser(text, fld, names, allow_u, allow_x=ax, allow_t=allow_t, lets=lets).parse()


def parse_lets(spec: object, fld: str, coef_names: frozenset[str], allow_t: bool) -> dict[str, Node]:
    """The problem's ``let`` object {name: expression} → {name: tree}. A name is 1–16 letters, digits or ``_``
    (a letter first), neither reserved nor a coefficient's; an expression reads x, t (time-dependent problems), u,
    coefficients, d and the other lets, never itself through another (a cycle is refused). Where a let is used, what
    it reads must be allowed there (u only in pde.reaction, outside sum/max/min; x not in a stationary reaction).
    The object's key order does not matter (canonical JSON sorts it): each is parsed after the lets it names."""
    if spec is None:
        return {}
    if not isinstance(spec, dict) or len(spec) > MAX_LETS:
        raise PdeError(fld, f"must be an object of at most {MAX_LETS} name: expression pairs")
    deps: dict[str, set[str]] = {}
    for name, text in spec.items():
        if not isinstance(name, str) or not COEF_NAME.match(name) or name in RESERVED or name in coef_names:
            raise PdeError(
                f"{fld}.{name}",
                "a let name is 1-16 letters, digits or _ (a letter first), not a reserved word or a coefficient's name",
            )
        if not isinstance(text, str):
            raise PdeError(f"{fld}.{name}", "must be a string expression")
        deps[name] = {tok.text for tok in tokens(text, f"{fld}.{name}") if tok.kind == "name" and tok.text in spec}
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(deps):  # Kahn's order; what is left when nothing is ready is a cycle
        ready = sorted(n for n in deps if n not in done and deps[n] <= done)
        if not ready:
            cyc = sorted(n for n in deps if n not in done)
            raise PdeError(f"{fld}.{cyc[0]}", f"lets refer to each other in a cycle ({', '.join(cyc)})")
        order += ready
        done |= set(ready)
    lets: dict[str, Node] = {}
    for name in order:
        lets[name] = parse(
            spec[name], f"{fld}.{name}", coef_names, allow_u=True, allow_t=allow_t, allow_x=True, lets=dict(lets)
        )
    return lets


def to_text(n: Node) -> str:
    """Canonical text of a tree (fully parenthesised; parses back to an equal tree)."""

    def idx(off: int, win: bool, end: bool) -> str:
        if end:
            return f"d-{off}"
        if not win:
            return str(off)
        return "i" if off == 0 else (f"i+{off}" if off > 0 else f"i-{-off}")

    if isinstance(n, Num):
        return repr(n.value) if n.value >= 0 else f"(-{-n.value!r})"
    if isinstance(n, Dim):
        return "d"
    if isinstance(n, U):
        return "u"
    if isinstance(n, Time):
        return "t"
    if isinstance(n, X):
        return f"x[{idx(n.offset, n.windowed, n.from_end)}]"
    if isinstance(n, Coef):
        return f"{n.name}[{idx(n.offset, n.windowed, n.from_end)}]"
    if isinstance(n, Norm2):
        return "norm2(x)"
    if isinstance(n, Unary):
        return f"{n.fn}({to_text(n.arg)})"
    if isinstance(n, Bin):
        return f"({to_text(n.a)} {n.op} {to_text(n.b)})"
    if isinstance(n, Pow):
        return f"({to_text(n.base)})^({n.p!r})"
    if isinstance(n, Reduce):
        return f"{n.kind}({to_text(n.body)}, i)"
    raise TypeError(n)
