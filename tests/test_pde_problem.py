"""User PDEs (SPEC §3.1): the catalogue written in the language, derived sources, domains, the g-shifted
residual — against the hand-written closed forms, tests/data/problems.json, and float64 autograd."""

import json
import math
import pathlib

import pytest
import torch

from sdze_core.estimators import sample_directions
from sdze_core.model import MLP
from sdze_core.pde.catalogue import SPECS, catalogue_spec
from sdze_core.pde.domain import CubeFactor, Domain
from sdze_core.pde.expr import PdeError
from sdze_core.pde.problem import problem_from_spec
from sdze_core.problems import make_problem
from sdze_core.residual import make_batch, residual, u_jet
from sdze_core.sampling import sample_points
from sdze_core.seeds import generator
from sdze_core.taylor import FirstLayer, boundary_jet, hidden_jet

F64 = torch.float64
REF = json.loads((pathlib.Path(__file__).resolve().parent / "data/problems.json").read_text())


def _rel(a, b):
    return float(((a - b).abs() / b.abs().clamp_min(1e-300)).max())


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("d", [5, 40, 1000])
def test_catalogue_in_the_language_equals_closed_forms(name, d):
    hand = make_problem(name, d, seed=3)
    spec = problem_from_spec(catalogue_spec(name, d, seed=3))
    assert torch.equal(spec.c, hand.c)  # same seeded coefficients
    x = sample_points(hand, 5, torch.Generator().manual_seed(d), F64)
    torch.testing.assert_close(spec.u_exact(x), hand.u_exact(x), rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(spec.f(x), hand.source(x), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(spec.source(x), hand.source(x), rtol=1e-10, atol=1e-12)  # g = 0, a = 1
    if name == "biharmonic_three_body":
        torch.testing.assert_close(spec.f(x), hand.bilaplacian_exact(x), rtol=1e-10, atol=1e-12)
    else:
        derived = problem_from_spec(catalogue_spec(name, d, seed=3, with_source=False))
        torch.testing.assert_close(derived.f(x), hand.source(x), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(derived.laplacian_exact(x), hand.laplacian_exact(x), rtol=1e-10, atol=1e-12)


CASES = [
    pytest.param(p["name"], cs["d"], cs["c"], cs["points"], id=f"{p['name']}-d{cs['d']}")
    for p in REF["problems"]
    for cs in p["cases"]
]


@pytest.mark.parametrize("name,d,c,pts", CASES)
def test_catalogue_in_the_language_matches_reference(name, d, c, pts):
    spec = problem_from_spec(catalogue_spec(name, d, c=c))
    derived = (
        None if name == "biharmonic_three_body" else problem_from_spec(catalogue_spec(name, d, c=c, with_source=False))
    )
    x = torch.tensor([pt["x"] for pt in pts], dtype=F64)
    u, f = spec.u_exact(x), spec.f(x)
    for k, pt in enumerate(pts):
        assert math.isclose(float(u[k]), pt["u"], rel_tol=1e-10, abs_tol=1e-13)
        assert math.isclose(float(f[k]), pt["f"], rel_tol=1e-10, abs_tol=1e-12)
        if "bilap_u" in pt:
            assert math.isclose(float(f[k]), pt["bilap_u"], rel_tol=1e-10)
    if derived is not None:
        fd, lap = derived.f(x), derived.laplacian_exact(x)
        for k, pt in enumerate(pts):
            assert math.isclose(float(fd[k]), pt["f"], rel_tol=1e-10, abs_tol=1e-12)
            assert math.isclose(float(lap[k]), pt["lap_u"], rel_tol=1e-10, abs_tol=1e-12)


def _autograd_lap(fn, x):
    return torch.stack([torch.autograd.functional.hessian(fn, xi).diagonal().sum() for xi in x])


EXPRS = [
    "sin(sum(c[i]*x[i]*x[i+1], i)) + x[0]*sum(c[i]*x[i]^2, i) + 1/(2 + norm2(x))",
    "exp(-norm2(x)) * sum(tanh(x[i-1] - x[i+1]) * c[i], i) + sqrt(3 + x[d-1]^2)",
    "arctan(sum(x[i]*x[i+2], i)) * sum(cosh(x[i]/3) - sinh(x[i]/5), i) / (4 + sum(log(2 + x[i]), i))",
    "(1 - norm2(x)/d)^3 * sum(c[i]*abs(x[i] + 2)*cos(x[i+1]), i) - tan(x[1]/4) + d",
]


@pytest.mark.parametrize("text", EXPRS)
def test_derived_laplacian_matches_autograd(text):
    d = 6
    c = torch.randn(d, generator=torch.Generator().manual_seed(1), dtype=F64)
    spec = {
        "dim": d,
        "domain": {"kind": "ball", "radius": 1.0},
        "pde": {"operator": {"laplacian": 2.0}, "reaction": "u^3 - exp(u)/4"},
        "exact": text,
        "boundary": "x[0]",
        "coefficients": {"c": {"values": c.tolist()}},
    }
    p = problem_from_spec(spec)
    x = p.domain_obj.sample(4, torch.Generator().manual_seed(2), F64)

    def u_ref(z):
        # the same expression written directly in torch (independent of the compiler)
        s = (z * z).sum()
        S = lambda body, lo, hi: sum(body(i) for i in range(lo, hi))  # noqa: E731
        if text == EXPRS[0]:
            return (
                torch.sin(S(lambda i: c[i] * z[i] * z[i + 1], 0, d - 1))
                + z[0] * S(lambda i: c[i] * z[i] ** 2, 0, d)
                + 1 / (2 + s)
            )
        if text == EXPRS[1]:
            return torch.exp(-s) * S(lambda i: torch.tanh(z[i - 1] - z[i + 1]) * c[i], 1, d - 1) + torch.sqrt(
                3 + z[d - 1] ** 2
            )
        if text == EXPRS[2]:
            return (
                torch.atan(S(lambda i: z[i] * z[i + 2], 0, d - 2))
                * S(lambda i: torch.cosh(z[i] / 3) - torch.sinh(z[i] / 5), 0, d)
                / (4 + S(lambda i: torch.log(2 + z[i]), 0, d))
            )
        return (
            (1 - s / d) ** 3 * S(lambda i: c[i] * torch.abs(z[i] + 2) * torch.cos(z[i + 1]), 0, d - 1)
            - torch.tan(z[1] / 4)
            + d
        )

    torch.testing.assert_close(p.u_exact(x), torch.stack([u_ref(z) for z in x]), rtol=1e-12, atol=1e-12)
    lap = _autograd_lap(u_ref, x)
    torch.testing.assert_close(p.laplacian_exact(x), lap, rtol=1e-10, atol=1e-10)
    u = p.u_exact(x)
    f = 2.0 * lap + u**3 - torch.exp(u) / 4
    torch.testing.assert_close(p.f(x), f, rtol=1e-10, atol=1e-10)
    # effective source: f/a − Δg with g = x[0] (Δg = 0), F̃ = F/a, F̃' by dual numbers
    torch.testing.assert_close(p.source(x), f / 2.0, rtol=1e-10, atol=1e-10)
    uu = torch.linspace(-1, 1, 7, dtype=F64, requires_grad=True)
    (gF,) = torch.autograd.grad((uu**3 - torch.exp(uu) / 4).sum(), uu)
    torch.testing.assert_close(p.nonlinearity_derivative(uu.detach()), gF / 2.0)


@pytest.mark.parametrize("kind", ["sdgd", "gauss4"])
def test_cube_boundary_jet_matches_autograd(kind):
    d = 7
    fac = CubeFactor(d, -0.5, 2.0)
    dom = Domain("cube", d, low=-0.5, high=2.0)
    x = dom.sample(3, torch.Generator().manual_seed(0), F64)
    order = 4 if kind == "gauss4" else 2
    dirs = sample_directions("gauss" if kind == "gauss4" else "sdgd", d, 3, order, generator(1), F64)
    jet = boundary_jet(fac, x, dirs, order)
    vecs = dirs.vecs if dirs.vecs is not None else torch.eye(d, dtype=F64)[dirs.idx]
    for n in range(3):
        for s in range(3):

            def b(t, n=n, s=s):
                return fac.value((x[n] + t * vecs[s])[None])[0]

            t0 = torch.zeros((), dtype=F64)
            assert math.isclose(float(jet[0][n, 0]), float(b(t0)), rel_tol=1e-12)
            fn = b
            for k in range(1, order + 1):
                fn = (lambda g: lambda t: torch.func.grad(g)(t))(fn)
                assert math.isclose(float(jet[k][n, s]), float(fn(t0)) / math.factorial(k), rel_tol=1e-9, abs_tol=1e-12)
    # zero on the faces, one at the centre, no underflow at high d
    xb = dom.sample_boundary(10, torch.Generator().manual_seed(3), F64)
    assert float(fac.value(xb).abs().max()) == 0.0
    assert math.isclose(float(fac.value(torch.full((1, d), 0.75, dtype=F64))[0]), 1.0)
    big = Domain("cube", 100_000)
    vals = big.boundary(big.sample(4, torch.Generator().manual_seed(4), F64))
    assert float(vals.min()) > 1e-3


@pytest.mark.parametrize(
    "domain", [{"kind": "cube", "low": -1, "high": 1}, {"kind": "annulus", "inner": 0.5, "outer": 1.5}]
)
def test_residual_with_boundary_values_equals_the_pde_residual(domain):
    """u = g + B·N through the engine's path (make_batch, u_jet, residual) = a Δu + F(u) − f by autograd."""
    d = 5
    spec = {
        "dim": d,
        "domain": domain,
        "pde": {"operator": {"laplacian": 0.5}, "reaction": "sin(u) + u^2", "source": "sum(x[i]*x[i+1], i) + 1"},
        "boundary": "exp(x[0]) * cos(x[1]) + norm2(x)",
    }
    p = problem_from_spec(spec)
    m = MLP.init(d, 10, 3, seed=1, dtype=F64)
    b = make_batch(p, 4, "exact", d, generator(5), F64)
    assert b.g is not None
    first = FirstLayer.compute(m.W[0], m.b[0], b.x, b.dirs)
    u = u_jet(b, hidden_jet(first, m.W[1:-1], m.b[1:-1], 2), m.W[-1], m.b[-1])
    R = residual(p, b, u)

    def u_fn(z):
        h = z[None]
        for l in range(m.depth - 1):
            h = torch.tanh(h @ m.W[l].T + m.b[l])
        n = (h @ m.W[-1].T + m.b[-1])[0, 0]
        return p.boundary_value(z[None])[0] + p.boundary(z[None])[0] * n

    uv = torch.stack([u_fn(z) for z in b.x])
    lap = _autograd_lap(u_fn, b.x)
    f = (b.x[:, :-1] * b.x[:, 1:]).sum(1) + 1
    truth = (0.5 * lap + torch.sin(uv) + uv**2 - f) / 0.5
    torch.testing.assert_close(R, truth, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(u[0][:, 0], uv, rtol=1e-12, atol=1e-12)


def test_points_follow_the_domain_laws():
    d = 30
    ball = problem_from_spec(
        {"dim": d, "domain": {"kind": "ball", "radius": 3}, "pde": {"source": "1"}, "boundary": "0"}
    )
    r = sample_points(ball, 4000, torch.Generator().manual_seed(0), F64).norm(dim=1)
    assert float(r.max()) <= 3.0 and abs(float(r.mean()) - 1.5) < 0.05  # uniform in radius
    cube = problem_from_spec(
        {"dim": d, "domain": {"kind": "cube", "low": 0, "high": 2}, "pde": {"source": "1"}, "boundary": "0"}
    )
    x = sample_points(cube, 4000, torch.Generator().manual_seed(0), F64)
    assert float(x.min()) >= 0 and float(x.max()) <= 2 and abs(float(x.mean()) - 1.0) < 0.01


def test_problem_level_errors_name_the_field():
    base = catalogue_spec("sine_gordon_two_body", 10)
    with pytest.raises(PdeError, match=r"problem\.boundary: exact does not vanish"):
        problem_from_spec({**base, "exact": "1 + x[0]"})
    with pytest.raises(PdeError, match=r"problem\.pde\.source: is required for the biharmonic"):
        problem_from_spec({**base, "pde": {"operator": {"biharmonic": 1}}})
    with pytest.raises(PdeError, match=r"problem\.exact: max"):
        problem_from_spec({**base, "pde": {"operator": {"laplacian": 1}}, "exact": "(1-norm2(x))*max(x[i], i)"})
    with pytest.raises(PdeError, match=r"problem\.pde\.operator: exactly one"):
        problem_from_spec({**base, "pde": {"operator": {"laplacian": 1, "biharmonic": 1}}})
    with pytest.raises(PdeError, match=r"problem\.domain\.kind"):
        problem_from_spec({**base, "domain": {"kind": "torus"}})
    with pytest.raises(PdeError, match=r"problem\.coefficients\.c\.values"):
        problem_from_spec({**base, "coefficients": {"c": {"values": [1.0, 2.0]}}})
    with pytest.raises(PdeError, match=r"problem\.exact at position \d+: x\[12\] is outside"):
        problem_from_spec({**base, "exact": "(1 - norm2(x)) * x[12]"})
    with pytest.raises(PdeError, match=r"window of this reduction is empty"):
        problem_from_spec({**catalogue_spec("sine_gordon_two_body", 3), "exact": "(1-norm2(x))*sum(x[i-2]*x[i+1], i)"})


def test_residual_metrics_without_exact_solution():
    """Held-out residual (exact directions at small d) = the autograd PDE residual; boundary error ≈ 0."""
    from sdze_core.pde.metrics import residual_metrics
    from sdze_core.sampling import TestSet
    from sdze_core.seeds import derive

    d = 5
    spec = {
        "dim": d,
        "domain": {"kind": "cube", "low": -1, "high": 1},
        "pde": {"operator": {"laplacian": 1.0}, "reaction": "u^3", "source": "cos(x[0]) + sum(x[i]*x[i+1], i)"},
        "boundary": "1 + x[1]^2",
    }
    p = problem_from_spec(spec)
    m = MLP.init(d, 8, 3, seed=2, dtype=F64)
    got = residual_metrics(p, m, test_points=6, seed=9, dtype=F64, chunk=6)
    x = next(TestSet(p, 6, derive(9, "residual-test"), 6).chunks(F64))

    def u_fn(z):  # MLP.forward runs without autograd: the network written out
        h = z[None]
        for l in range(m.depth - 1):
            h = torch.tanh(h @ m.W[l].T + m.b[l])
        return p.ansatz(z[None], (h @ m.W[-1].T + m.b[-1])[:, 0])[0]

    lap = _autograd_lap(u_fn, x)
    u = torch.stack([u_fn(z) for z in x])
    f = torch.cos(x[:, 0]) + (x[:, :-1] * x[:, 1:]).sum(1)
    R = lap + u**3 - f
    assert math.isclose(got["residual_rms"], float(R.square().mean().sqrt()), rel_tol=1e-9)
    assert math.isclose(got["residual_rel"], float(R.norm() / (f - 2.0).norm()), rel_tol=1e-9)  # f̃ = f − Δg
    assert got["boundary_rms"] < 1e-12 and got["boundary_rel"] < 1e-12


def test_build_problem_from_canonical_json_and_schema_errors():
    import pydantic

    from sdze_core.pde.schema import UserProblemSpec
    from sdze_core.problems import build_problem

    s = UserProblemSpec.model_validate(catalogue_spec("sine_gordon_two_body", 12, seed=4))
    p = build_problem("user", 12, pde=s.canonical_json())
    hand = make_problem("sine_gordon_two_body", 12, seed=4)
    x = sample_points(hand, 3, torch.Generator().manual_seed(0), F64)
    torch.testing.assert_close(p.source(x), hand.source(x), rtol=1e-12, atol=1e-12)
    cases = [
        ({"exact": "x.__class__"}, ("exact",), "position 1"),
        ({"exact": "(1-norm2(x))*x[40]"}, (), "problem.exact at position 13"),
        ({"pde": {"reaction": "sin(u", "source": "1"}}, ("pde", "reaction"), "position 5"),
        ({"pde": {"source": "sum(q[i], i)"}}, (), "problem.pde.source at position 4: unknown name 'q'"),
        ({"domain": {"kind": "annulus", "inner": 2, "outer": 1}}, (), "problem.domain: annulus needs"),
        ({"boundary": "1" * 20_000}, ("boundary",), "at most 10000"),
    ]
    for patch, loc, msg in cases:
        with pytest.raises(pydantic.ValidationError) as e:
            UserProblemSpec.model_validate({**catalogue_spec("sine_gordon_two_body", 12), **patch})
        err = e.value.errors()[0]
        assert tuple(err["loc"]) == loc and msg in err["msg"], err
