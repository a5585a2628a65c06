"""The PDE language is parsed, never evaluated: a hostile corpus, property-based fuzzing, and a scan of the
source tree for eval/exec/compile/sympify."""

import ast
import builtins
import math
import pathlib
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdze_core.pde.expr import MAX_CHARS, PdeError, parse, to_text
from sdze_core.pde.problem import problem_from_spec

ROOT = pathlib.Path(__file__).resolve().parents[1]

DANGEROUS = [
    "os",
    "sys",
    "open",
    "eval",
    "exec",
    "compile",
    "globals",
    "locals",
    "vars",
    "dir",
    "getattr",
    "setattr",
    "delattr",
    "input",
    "print",
    "type",
    "object",
    "breakpoint",
    "help",
    "memoryview",
    "bytes",
    "bytearray",
    "super",
    "classmethod",
    "property",
    "range",
    "map",
    "filter",
    "zip",
    "iter",
    "next",
    "hash",
    "id",
    "chr",
    "ord",
    "format",
    "repr",
    "torch",
    "numpy",
    "np",
    "math",
    "subprocess",
    "pickle",
    "importlib",
    "builtins",
    "sympify",
    "parse_expr",
    "lambdify",
]
TEMPLATES = ("{n}", "{n}(1)", "{n}.x", "x[0] + {n}(x[0])", "sum({n}(x[i]), i)")

HAND = [
    # attribute access, dunders
    "x.__class__",
    "sin.__globals__",
    "(1).real",
    "x[0].item()",
    "x.__class__.__bases__[0].__subclasses__()",
    "__import__('os').system('touch /tmp/sdze_pwned')",
    "__builtins__",
    "x[__len__]",
    "__class__",
    "_",
    "sin(x[0])._",
    # lambdas, comprehensions, statements, other syntax
    "lambda: 1",
    "(lambda x: x)(1)",
    "[i for i in range(9)]",
    "{i: i for i in x}",
    "sum(i for i in x)",
    "sum([x[i] for i in range(3)], i)",
    "a = 1",
    "x[0] = 1",
    "1; 2",
    "x[0] if 1 else 2",
    "not 1",
    "1 and 2",
    "1 or 2",
    "1 // 2",
    "1 % 2",
    "1 ** 2",
    "x[0] ** 2",
    "1 @ 2",
    "1 < 2",
    "1 == 1",
    "~1",
    "1 & 2",
    "1 | 2",
    "1 << 2",
    "'str'",
    '"s"',
    "#comment",
    "x[0]\nimport os",
    "import os",
    "\\x41",
    "$",
    "`ls`",
    "{1}",
    "1, 2",
    "...",
    "x[0:3]",
    "x[::-1]",
    "x[[0]]",
    "x[i+1.5]",
    "x[0.5]",
    "x[1e1]",
    "x[i*2]",
    "x[i+i]",
    "x[j]",
    "x[d]",
    "x[d+1]",
    "x[d-0]",
    "x()",
    "x",
    "c",
    "c[0]",
    "u",
    "i",
    "d[0]",
    "pi()",
    "norm2",
    "sin",
    # syntax errors
    "",
    "   ",
    "1 +",
    "(1",
    "1)",
    "x[",
    "x]",
    "**",
    "sin(",
    "sin)",
    "()",
    "1 2",
    "x[0] x[1]",
    "sum(x[i], )",
    "sum(, i)",
    # huge / deep
    "9^9^9",
    "2^100",
    "x[0]^x[1]",
    "x[0]^d",
    "x[0]^(1e9)",
    "x[0]^65",
    "x[0]^-65",
    "(9^9)^(9^9)",
    "1e308*1e308",
    "exp(1000)",
    "1/0",
    "x[0]/(1-1)",
    "(-1)^0.5",
    "0^-1",
    "log(0)",
    "(" * 100_000 + "1" + ")" * 100_000,
    "(" * 4000 + "1" + ")" * 4000,
    "-" * 9000 + "1",
    "sin(" * 2000 + "1" + ")" * 2000,
    "+".join(["1"] * 2100),
    "x[0]" + "^1" * 3000,
    "1+" * 500_000 + "1",
    "x" * 1_000_000,
    "1" * (MAX_CHARS + 1),
    " " * (MAX_CHARS + 1),
    # NaN / inf literals
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1e999",
    "-1e999",
    "1e400*0",
    "1e13",
    # out-of-range offsets and windows
    "sum(x[i+9], i)",
    "sum(x[i+100000], i)",
    "sum(x[i-99], i)",
    "x[-1]",
    "x[99999999999999]",
    "x[10]",
    "x[d-11]",
    "sum(x[i-5]*x[i+5], i)",
    "sum(x[i+8]*x[i-8], i)",
    "max(x[i-8]*x[i+8], i)",
    "sum(sum(x[i], i), i)",
    "sum(max(x[i], i), i)",
    "sum(1, i)",
    "sum(norm2(x), i)",
    "sum(x[i], j)",
    "sum(x[i], 1)",
    "max(x[0], i)",
    # unicode look-alikes and invisible characters
    "\u0455in(x[0])",
    "x[0]\uff0b1",
    "x[0]\u22121",
    "sin(x[0])\u200b",
    "\u2179[0]",
    "\U0001d465[0]",
    "x[\u0660]",
    "x[0]\u00a0+1",
    "\ufeffx[0]",
    "x\u0430[0]",
    "\u0441os(x[0])",
    "x[0]\x00",
    "x[0]\x1b[31m",
    # wrong arity
    "sin()",
    "sin(x[0], x[1])",
    "sum(x[i])",
    "sum(x[i], i, i)",
    "norm2()",
    "norm2(y)",
    "norm2(x, x)",
    "norm2(x[0])",
    "max(x[i])",
    "min()",
    "exp(1, 2)",
    "log()",
    "abs(x[0],)",
    "arctan(x[0], x[1])",
    "tanh",
    "sqrt x[0]",
]
CORPUS = HAND + [t.format(n=n) for n in DANGEROUS for t in TEMPLATES]


def _spec(text: str) -> dict:
    return {"dim": 10, "domain": {"kind": "ball", "radius": 1.0}, "pde": {"source": text}, "boundary": "0"}


def test_corpus_is_large():
    assert len(CORPUS) >= 200 and len(set(CORPUS)) == len(CORPUS)


def _build_without_evaluators(text: str) -> PdeError:
    """Build the problem with eval/exec/compile replaced by tripwires (restored before pytest reports)."""

    def boom(*a, **k):
        raise AssertionError("user text reached an evaluator")

    saved = {n: getattr(builtins, n) for n in ("eval", "exec", "compile")}
    for n in saved:
        setattr(builtins, n, boom)
    try:
        problem_from_spec(_spec(text))
    except PdeError as e:
        return e
    finally:
        for n, f in saved.items():
            setattr(builtins, n, f)
    raise AssertionError(f"accepted: {text[:80]!r}")


@pytest.mark.parametrize("text", CORPUS, ids=lambda t: repr(t[:40]) + (f"…{len(t)}" if len(t) > 40 else ""))
def test_hostile_expression_is_rejected_quickly_with_a_position(text):
    # CPU time of this process (other jobs on a shared machine do not count), best of three
    elapsed = math.inf
    for _ in range(3):
        t0 = time.process_time()
        err = _build_without_evaluators(text)
        elapsed = min(elapsed, time.process_time() - t0)
    assert err.field == "problem.pde.source"
    assert err.pos is not None and 0 <= err.pos <= max(len(text), MAX_CHARS)
    assert f"at position {err.pos}" in str(err)
    assert elapsed < 0.05, f"{elapsed * 1e3:.1f} ms"
    assert not pathlib.Path("/tmp/sdze_pwned").exists()


def test_reaction_and_exact_fields_have_their_own_rules():
    with pytest.raises(PdeError, match=r"problem\.pde\.reaction at position 4: x is not allowed"):
        problem_from_spec({**_spec("1"), "pde": {"source": "1", "reaction": "u + x[0]"}})
    with pytest.raises(PdeError, match=r"problem\.exact at position 0: u is only allowed"):
        problem_from_spec({**_spec("1"), "exact": "u"})
    with pytest.raises(PdeError, match=r"problem\.coefficients"):
        problem_from_spec({**_spec("1"), "coefficients": {f"c{k}": {"law": "normal"} for k in range(9)}})
    with pytest.raises(PdeError, match=r"problem\.coefficients\.sin"):
        problem_from_spec({**_spec("1"), "coefficients": {"sin": {"law": "normal"}}})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_fuzz_arbitrary_text_never_escapes_as_another_error(text):
    t0 = time.process_time()
    try:
        parse(text, "f", {"c"})
    except PdeError as e:
        assert e.field == "f"
    assert time.process_time() - t0 < 0.05


_ATOMS = st.sampled_from(["x[i]", "x[i+1]", "x[i-1]", "c[i]", "x[0]", "d", "2.5", "norm2(x)", "x[d-1]", "pi"])
_OUTER_ATOMS = st.sampled_from(["x[0]", "x[3]", "d", "1.5", "norm2(x)", "x[d-2]", "c[2]"])


def _exprs(atoms):
    return st.recursive(
        atoms,
        lambda ch: st.one_of(
            st.tuples(ch, st.sampled_from(["+", "-", "*", "/"]), ch).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(st.sampled_from(["sin", "cos", "exp", "tanh", "arctan", "abs"]), ch).map(
                lambda t: f"{t[0]}({t[1]})"
            ),
            st.tuples(ch, st.integers(-3, 3)).map(lambda t: f"({t[0]})^{t[1]}"),
            ch.map(lambda t: f"-{t}"),
        ),
        max_leaves=12,
    )


@settings(max_examples=200, deadline=None)
@given(_exprs(_ATOMS), _exprs(_OUTER_ATOMS), st.sampled_from(["sum", "max", "min"]))
def test_fuzz_valid_expressions_round_trip_and_compile(inner, outer, red):
    text = f"{outer} * {red}({inner} + x[i], i)"
    tree = parse(text, "f", {"c"})
    assert parse(to_text(tree), "f", {"c"}) == tree
    import torch

    spec = {**_spec(text), "coefficients": {"c": {"law": "uniform", "seed": 1}}, "pde": {"source": text}}
    try:
        p = problem_from_spec(spec)
    except PdeError as e:  # a valid text may still fold to an undefined constant, e.g. (d - d)^-1
        assert "constant" in e.msg and e.pos is not None
        return
    x = p.domain_obj.sample(3, torch.Generator().manual_seed(0), torch.float64)
    assert p.f(x).shape == (3,)


FORBIDDEN_NAMES = {"eval", "exec", "compile", "__import__", "sympify", "parse_expr", "lambdify"}


def test_source_tree_has_no_evaluator_of_text():
    """No call of eval/exec/compile/__import__/sympify/parse_expr anywhere in the product (regex and
    torch compile methods are attribute calls on those modules and are not evaluators of user text)."""
    hits = []
    for folder in ("sdze_core", "service", "worker"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    f = node.func
                    if isinstance(f, ast.Name) and f.id in FORBIDDEN_NAMES:
                        hits.append(f"{path}:{node.lineno} {f.id}")
                    if isinstance(f, ast.Attribute) and f.attr in FORBIDDEN_NAMES - {"compile"}:
                        hits.append(f"{path}:{node.lineno} .{f.attr}")
                    if isinstance(f, ast.Attribute) and f.attr == "compile":
                        base = f.value.id if isinstance(f.value, ast.Name) else ""
                        if base not in ("re", "torch"):
                            hits.append(f"{path}:{node.lineno} {base}.compile")
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    mods = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                    if any(m and m.split(".")[0] == "sympy" for m in mods):
                        hits.append(f"{path}:{node.lineno} import sympy")
    assert hits == []
