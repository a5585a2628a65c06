"""Named subexpressions (``problem.let``, sdze_core/pde/expr.py ``parse_lets``): a let stands for its expression
written out (same values to the bit), in any key order, and every misuse is refused naming the field."""

from __future__ import annotations

import json
import pathlib

import pytest
import torch
from core_helpers import assert_refused

from sdze_core.parabolic.sampling import sample_points
from sdze_core.pde.expr import MAX_LETS, PdeError
from sdze_core.pde.problem import problem_from_spec
from sdze_core.seeds import generator
from sdze_core.spec import JobSpec

F64 = torch.float64
ROOT = pathlib.Path(__file__).resolve().parents[1]
BALL = {"dim": 6, "domain": {"kind": "ball"}, "pde": {"operator": {"laplacian": 1.0}, "reaction": "u^3"}}


def test_a_let_is_its_expression_written_out_to_the_bit():
    written = {**BALL, "exact": "(1 - norm2(x)) * sin(sum(x[i], i) / d) + (1 - norm2(x))^2"}
    let = {**BALL, "let": {"b": "1 - norm2(x)", "s": "sum(x[i], i) / d"}, "exact": "b * sin(s) + b^2"}
    p, q = problem_from_spec(written), problem_from_spec(let)
    x = torch.randn(9, 6, generator=generator(1), dtype=F64) / 3
    assert torch.equal(p.u_exact(x), q.u_exact(x)) and torch.equal(p.source(x), q.source(x))


def test_shipped_reaction_diffusion_reads_its_solution_through_a_let():
    """The DeepBSDE reaction (u − u*)² clipped at 1 names u* once instead of three times."""
    raw = json.loads((ROOT / "examples" / "parabolic" / "reaction_diffusion.json").read_text())["problem"]
    assert set(raw["let"]) == {"w", "e2"} and raw["exact"] == "w"
    written = dict(raw)
    w = "(" + raw["let"]["w"] + ")"
    e2 = raw["let"]["e2"].replace("w", w)
    written.pop("let")
    written["exact"] = raw["let"]["w"]
    written["pde"] = {**raw["pde"], "reaction": raw["pde"]["reaction"].replace("e2", "(" + e2 + ")")}
    p, q = problem_from_spec(raw), problem_from_spec(written)
    xt = sample_points(p, 7, generator(2), F64)
    x, t = xt[:, :-1], xt[:, -1]
    u = torch.randn(7, generator=generator(3), dtype=F64)
    assert torch.equal(p.u_exact(x, t), q.u_exact(x, t))
    assert torch.equal(p.reaction_value(u, p.reaction_aux(x, t)), q.reaction_value(u, q.reaction_aux(x, t)))


def test_key_order_does_not_matter_and_the_canonical_spec_compiles_in_the_worker():
    spec = {**BALL, "let": {"z": "y * 2", "y": "b + 1", "b": "1 - norm2(x)"}, "exact": "z * b"}
    job = JobSpec.model_validate({"problem": spec, "solver": {"method": "sdze", "steps": 1}})
    canonical = json.loads(job.to_config().problem.pde)
    assert list(canonical["let"]) == ["b", "y", "z"]  # sorted: y before z although z is listed first
    x = torch.randn(4, 6, generator=generator(4), dtype=F64) / 3
    b = 1 - (x * x).sum(1)
    torch.testing.assert_close(problem_from_spec(canonical).u_exact(x), (2 * (b + 1)) * b, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("patch", "field", "words"),
    [
        ({"let": {"a": "b + 1", "b": "a * 2"}, "exact": "a"}, "problem.let.a", "cycle"),
        ({"let": {"sin": "1"}, "exact": "0"}, "problem.let.sin", "reserved"),
        ({"let": {"a": "q + 1"}, "exact": "a"}, "problem.let.a", "unknown name 'q'"),
        ({"let": {"a": "t"}, "exact": "a"}, "problem.let.a", "t (time)"),  # a stationary problem has no t
        ({"let": {"a": "u + 1"}, "exact": "a"}, "problem.exact", "reads u"),
        ({"let": {"a": "x[0]"}, "pde": {"reaction": "a * u"}, "exact": "0"}, "problem.pde.reaction", "reads x"),
        ({"let": {"a": "sum(x[i], i)"}, "exact": "sum(a * x[i], i)"}, "problem.exact", "inside another"),
        ({"let": {f"a{k}": "1" for k in range(MAX_LETS + 1)}, "exact": "0"}, "problem.let", f"at most {MAX_LETS}"),
        (
            {"let": {"a0": "x[0]", **{f"a{k}": f"a{k - 1} * a{k - 1}" for k in range(1, 12)}}, "exact": "a11"},
            "problem.let.a10",  # 2¹⁰ leaves (a9 twice) is where the bound of 2 000 nodes bites
            "more than 2000 nodes",
        ),
    ],
)
def test_misused_lets_are_refused_naming_the_field(patch, field, words):
    assert_refused({**BALL, **patch}, field, words)


def test_a_let_with_u_serves_the_reaction_of_a_time_dependent_problem_only_there():
    spec = {
        "dim": 4,
        "let": {"g": "norm2(x) / d", "du": "u - g"},
        "pde": {"operator": {"laplacian": 1.0}, "reaction": "du^2"},
        "time": {"horizon": 1.0, "terminal": "g"},
    }
    p = problem_from_spec(spec)
    x = torch.randn(3, 4, generator=generator(5), dtype=F64)
    u = torch.randn(3, generator=generator(6), dtype=F64)
    aux = p.reaction_aux(x, torch.zeros(3, dtype=F64))
    torch.testing.assert_close(p.reaction_value(u, aux), (u - (x * x).sum(1) / 4) ** 2, rtol=1e-14, atol=1e-15)
    with pytest.raises(PdeError, match="reads u") as e:
        problem_from_spec({**spec, "time": {"horizon": 1.0, "terminal": "du"}})
    assert e.value.field == "problem.time.terminal"
