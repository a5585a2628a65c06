"""Time-dependent PDEs in the declarative language (``problem.time``; sdze_core/pde/parabolic.py, docs/pde.md).

The shipped specs (examples/parabolic/*.json) compile to problems whose terminal condition, exact solution,
reference, reaction and residual equal the Python catalogue's in float64 at d = 5; a written-out problem with a
general g, a reaction in (u, x, t), κ, β, μ and ρ has the residual of float64 autograd; bad fields are refused
naming the field; a user spec runs end to end through the CLI.
"""

import itertools
import json
import math
import pathlib
import subprocess
import sys

import pytest
import torch
from pydantic import ValidationError
from torch.func import grad, hessian, vmap

from sdze_core.estimators import Directions
from sdze_core.model import MLP
from sdze_core.parabolic.problems import ALLEN_CAHN_REFERENCE, HEAT_REFERENCE, make_parabolic_problem
from sdze_core.parabolic.residual import batch_from_points, linearization, net_jet, residual, u_jet
from sdze_core.parabolic.sampling import sample_points, terminal_points
from sdze_core.pde.expr import PdeError
from sdze_core.pde.problem import problem_from_spec
from sdze_core.seeds import generator
from sdze_core.spec import JobSpec

F64 = torch.float64
ROOT = pathlib.Path(__file__).resolve().parents[1]
SHIPPED = {p.stem: p for p in sorted((ROOT / "examples" / "parabolic").glob("*.json"))}
NAMES = ("semilinear_heat", "allen_cahn_time", "hjb_cole_hopf", "hjb_lin", "bsb", "reaction_diffusion")


def _spec(name: str, d: int) -> dict:
    s = json.loads(SHIPPED[name].read_text())["problem"]
    s["dim"] = d
    s["time"].pop("reference", None)  # the reference is u(0, x₀) at the file's d only
    return s


def _close(a, b, rtol=1e-10, atol=1e-12):
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


def _dirs(kind: str, d: int, S: int, seed: int) -> Directions:
    g = generator(seed)
    if kind == "exact":
        return Directions(order=2, weight=1.0, idx=torch.arange(d))
    if kind == "sdgd":
        return Directions(order=2, weight=d / S, idx=torch.randperm(d, generator=g)[:S])
    v = (torch.randint(0, 2, (S, d), generator=g) * 2 - 1).to(F64)
    return Directions(order=2, weight=1.0 / S, vecs=v)


def test_every_catalogue_problem_is_shipped_as_a_spec():
    assert set(NAMES) <= set(SHIPPED)


@pytest.mark.parametrize("name", NAMES)
def test_shipped_spec_equals_the_catalogue(name):
    d = 5
    p, c = problem_from_spec(_spec(name, d)), make_parabolic_problem(name, d)
    for f in ("T", "nu", "kappa", "beta", "grad_sq", "grad_pow", "const", "law", "train_law", "terminal_rule"):
        a, b = getattr(p, f), getattr(c, f)
        assert a == b or (isinstance(a, float) and math.isclose(a, b, rel_tol=1e-14)), (f, a, b)
    assert p.terminal_weight == c.terminal_weight and p.has_exact == c.has_exact and p.input_dim == d + 1
    if c.grad_pow:
        assert p.power == c.power
    _close(p.origin(), c.origin(), 0, 0)
    xt = torch.cat([sample_points(c, 40, generator(7), F64), terminal_points(c, 10, generator(8), F64)])
    x, t = xt[:, :d], xt[:, d]
    _close(p.terminal.value(x), c.terminal.value(x))
    for a, b in zip(p.terminal.sums(x), c.terminal.sums(x), strict=True):
        _close(a, b)
    for kind in ("sdgd", "hte"):
        dirs = _dirs(kind, d, 3, 11)
        for a, b in zip(p.terminal.jets(x, dirs), c.terminal.jets(x, dirs), strict=True):
            _close(a, b)
    if c.has_exact:
        _close(p.u_exact(x, t), c.u_exact(x, t), rtol=1e-9 if name == "hjb_cole_hopf" else 1e-10)
    u = torch.randn(x.shape[0], dtype=F64, generator=generator(9))
    pa, ca = p.reaction_aux(x, t), c.reaction_aux(x, t)
    _close(p.reaction_value(u, pa), c.reaction_value(u, ca))
    _close(p.reaction_derivative(u, pa), c.reaction_derivative(u, ca))
    # the residual and its exact linearization, under both terminal rules, from the same network and directions
    net = MLP.init(d + 1, 16, 3, 5, F64)
    for rule in ("hard", "soft"):
        pr = type(p)(**{**p.__dict__, "terminal_rule": rule})
        cr = type(c)(**{**c.__dict__, "terminal_rule": rule})
        for kind in ("exact", "sdgd") + (() if c.kappa or c.grad_pow else ("hte",)):
            dirs = _dirs(kind, d, 2, 13)
            rows = 10 if rule == "soft" else 0
            bp, bc = batch_from_points(pr, xt, dirs, rows), batch_from_points(cr, xt, dirs, rows)
            up = u_jet(bp, net_jet(bp, net.W, net.b)[1])
            uc = u_jet(bc, net_jet(bc, net.W, net.b)[1])
            _close(residual(pr, bp, up), residual(cr, bc, uc), rtol=1e-9)
            for a, b in zip(linearization(pr, bp, up), linearization(cr, bc, uc), strict=True):
                _close(a, b, rtol=1e-9)


@pytest.mark.parametrize(
    ("name", "table"), [("semilinear_heat", HEAT_REFERENCE), ("allen_cahn_time", ALLEN_CAHN_REFERENCE)]
)
def test_shipped_reference_is_the_catalogue_value_at_the_files_dimension(name, table):
    raw = json.loads(SHIPPED[name].read_text())
    p = problem_from_spec(raw["problem"])
    x, t, value = p.reference_point()
    c = make_parabolic_problem(name, raw["problem"]["dim"])
    assert value == c.reference_point()[2] == table[raw["problem"]["dim"]]
    _close(x, c.reference_point()[0], 0, 0)


@pytest.mark.parametrize("path", sorted(SHIPPED.values()), ids=lambda p: p.stem)
def test_shipped_files_are_valid_jobs(path):
    spec = JobSpec.model_validate(json.loads(path.read_text()))
    assert spec.problem.is_time_dependent and spec.to_config().problem.pde is not None


# -- a written-out problem that is not in the catalogue --------------------------------------------------------
USER = {
    "dim": 5,
    "pde": {
        "operator": {"laplacian": 0.7, "diffusion": 0.2, "drift": -0.3},
        "reaction": "sin(u) * exp(-t) + u * x[0] + t * sum(x[i] * x[i+1], i)",
        "gradient_square": -0.4,
        "gradient_power": 0.05,
        "power": 1.5,
        "constant": 0.25,
    },
    "time": {"horizon": 0.8, "terminal": "sum(x[i] * x[i+1], i) + cos(x[0]) + max(x[i], i)"},
}


def _autograd_residual(p, N, xi, ti):
    """u_t + νΔu + κΣx_i²∂²_ii u + βx·∇u + F(u; x, t) + μ|∇u|² + ρΣ|∂_i u|^p + c₀ for u = g + (T − t)N, by autograd."""

    def u_fn(x, t):
        n = N(torch.cat([x, t.reshape(1)]).unsqueeze(0))[0]
        return p.terminal.value(x.unsqueeze(0))[0] + (p.T - t) * n

    u = u_fn(xi, ti)
    ux, ut = grad(u_fn, 0)(xi, ti), grad(u_fn, 1)(xi, ti)
    H = torch.diagonal(hessian(u_fn, 0)(xi, ti))
    aux = p.reaction_aux(xi.unsqueeze(0), ti.reshape(1))
    R = ut + p.nu * H.sum() + p.kappa * (xi * xi * H).sum() + p.beta * (xi * ux).sum()
    R = R + p.reaction_value(u.reshape(1), aux)[0] + p.grad_sq * (ux * ux).sum()
    return R + p.grad_pow * ux.abs().pow(p.power).sum() + p.const


def test_written_out_problem_has_the_autograd_residual_and_is_unbiased():
    p = problem_from_spec(USER)
    d = p.dim
    assert p.terminal.form == "general" and p.terminal.sums(torch.zeros(1, d, dtype=F64))[1] is None
    net = MLP.init(d + 1, 16, 3, 2, F64)

    def N(z):  # the plain network, written with functorch-friendly ops
        h = z
        for l in range(net.depth - 1):
            h = torch.tanh(h @ net.W[l].T + net.b[l])
        return (h @ net.W[-1].T + net.b[-1])[:, 0]

    xt = sample_points(p, 6, generator(3), F64)
    ref = torch.stack([_autograd_residual(p, N, xt[i, :d], xt[i, d]) for i in range(xt.shape[0])])
    b = batch_from_points(p, xt, _dirs("exact", d, d, 0))
    _close(residual(p, b, u_jet(b, net_jet(b, net.W, net.b)[1])), ref, rtol=1e-9)
    # SDGD over every 2-subset of the 5 coordinates, equally weighted: the mean is the exact residual (unbiased,
    # with the control variate applied to the terms that have an exact sum and g's κ part left sampled)
    Rs = []
    for pair in itertools.combinations(range(d), 2):
        dirs = Directions(order=2, weight=d / 2, idx=torch.tensor(pair))
        b = batch_from_points(p, xt, dirs)
        Rs.append(residual(p, b, u_jet(b, net_jet(b, net.W, net.b)[1])))
    _close(torch.stack(Rs).mean(0), ref, rtol=1e-9)


@pytest.mark.parametrize("terminal", [USER["time"]["terminal"], "sum(x[i] * x[i+1], i) + cos(x[0]) * tanh(norm2(x))"])
def test_reaction_derivative_and_terminal_jets_are_exact(terminal):
    p = problem_from_spec({**USER, "time": {**USER["time"], "terminal": terminal}})
    d = p.dim
    xt = sample_points(p, 7, generator(4), F64)
    x, t = xt[:, :d], xt[:, d]
    aux = p.reaction_aux(x, t)
    u = torch.randn(7, dtype=F64, generator=generator(1))
    du = vmap(grad(lambda ui, ai: p.reaction_value(ui.reshape(1), ai.unsqueeze(0))[0]))(u, aux)
    _close(p.reaction_derivative(u, aux), du)
    G = vmap(grad(lambda y: p.terminal.value(y.unsqueeze(0))[0]))(x)
    Hs = vmap(hessian(lambda y: p.terminal.value(y.unsqueeze(0))[0]))(x)
    for kind in ("hte", "sdgd"):
        dirs = _dirs(kind, d, 3, 2)
        v = dirs.vecs if dirs.vecs is not None else torch.eye(d, dtype=F64)[dirs.idx]
        g0, g1, g2 = p.terminal.jets(x, dirs)
        _close(g0, p.terminal.value(x))
        _close(g1, G @ v.t())
        _close(g2, torch.einsum("sd,nde,se->ns", v, Hs, v))
    lap, xxlap, xg, g2n = p.terminal.sums(x)
    assert xxlap is None and (lap is None) == ("max" in terminal)  # no exact O(d) route: left sampled
    if lap is not None:
        _close(lap, torch.diagonal(Hs, dim1=1, dim2=2).sum(1))
    _close(xg, (x * G).sum(1))
    _close(g2n, G.square().sum(1))


@pytest.mark.parametrize(
    ("patch", "field", "words"),
    [
        ({"time": {"horizon": 1.0, "terminal": "u + 1"}}, "problem.time.terminal", "u is only allowed"),
        ({"time": {"horizon": 1.0, "terminal": "t + x[0]"}}, "problem.time.terminal", "t (time)"),
        ({"time": {"horizon": -1.0, "terminal": "0"}}, "problem.time.horizon", "(0,"),
        ({"time": {"horizon": 1.0, "terminal": "0", "law": "gbm"}}, "problem.time.law", "diffusion > 0"),
        (
            {"pde": {"operator": {"laplacian": 1.0}, "gradient_power": 1.0, "power": 0.5}},
            "problem.pde.power",
            "[1, 8]",
        ),
        ({"pde": {"operator": {"laplacian": 1.0}, "gradient_power": 1.0}}, "problem.pde.power", "required"),
        ({"pde": {"operator": {"laplacian": -1.0}}}, "problem.pde.operator.laplacian", "ill-posed"),
        ({"pde": {"operator": {"laplacian": 1.0}, "source": "1"}}, "problem.pde.source", "no source"),
        ({"pde": {"reaction": "sum(u * x[i], i)"}}, "problem.pde.reaction", "u inside"),
        ({"exact": "norm2(x) + t"}, "problem.exact", "terminal value"),
        (
            {"time": {"horizon": 1.0, "terminal": "norm2(x)", "solution": "cole_hopf"}},
            "problem.time.solution",
            "μ ≠ 0",
        ),
        (
            {"time": {"horizon": 1.0, "terminal": "0", "train_law": "paths", "law": "gbm", "origin": [1]}},
            "problem.time.law",
            "diffusion",
        ),
        ({"boundary": "t"}, "problem.boundary", "only with a domain"),
        ({"time": {"horizon": 1.0, "terminal": "0", "terminal_weight": 3.0}}, "problem.time.terminal_weight", "soft"),
    ],
)
def test_bad_time_dependent_fields_are_refused_naming_the_field(patch, field, words):
    raw = {"dim": 4, "pde": {"operator": {"laplacian": 1.0}}, "time": {"horizon": 1.0, "terminal": "norm2(x)"}}
    raw.update(patch)
    with pytest.raises(PdeError) as e:
        problem_from_spec(raw)
    assert e.value.field == field and words in e.value.msg, (e.value.field, e.value.msg)
    with pytest.raises(ValidationError) as e:  # the job spec refuses it too (the service's 422)
        JobSpec.model_validate({"problem": raw, "solver": {"method": "sdze", "steps": 1}})
    assert field in str(e.value) or field.split(".")[-1] in str(e.value)


def test_job_spec_refuses_a_bad_pairing_or_field_at_its_path():
    bsb = json.loads(SHIPPED["bsb"].read_text())
    with pytest.raises(ValidationError) as e:
        JobSpec.model_validate({**bsb, "solver": {"method": "hte_adam", "steps": 2}})
    assert "coordinate directions" in str(e.value) and ("estimator",) in [
        tuple(x["loc"][-1:]) for x in e.value.errors()
    ]
    with pytest.raises(ValidationError) as e:
        JobSpec.model_validate({"problem": {**bsb["problem"], "time": {**bsb["problem"]["time"], "rule": "firm"}}})
    assert any(x["loc"][:3] == ("problem", "time", "rule") for x in e.value.errors())
    with pytest.raises(ValidationError) as e:
        JobSpec.model_validate({"problem": {"name": "bsb", "dim": 10, "time": {"horizon": 1, "terminal": "0"}}})
    assert "only with a written-out PDE" in str(e.value)
    # the stationary rules are unchanged: no x or t in a stationary reaction, no time terms without time
    with pytest.raises(PdeError, match="x is not allowed"):
        problem_from_spec({"dim": 4, "domain": {"kind": "ball"}, "pde": {"reaction": "u*x[0]", "source": "1"}})
    with pytest.raises(PdeError, match="t \\(time\\)"):
        problem_from_spec({"dim": 4, "domain": {"kind": "ball"}, "pde": {"source": "1"}, "exact": "t"})


def test_no_point_reference_where_the_exact_solution_vanishes_there():
    p = problem_from_spec(
        {
            "dim": 3,
            "time": {"horizon": 1.0, "terminal": "sin(1) + sum(x[i], i)"},
            "pde": {"reaction": "-cos(t)"},
            "exact": "sin(t) + sum(x[i], i)",
        }
    )
    assert p.has_exact and p.reference_point() is None


def test_written_out_problem_solves_through_the_cli(tmp_path):
    spec = {
        "problem": {
            "dim": 6,
            "pde": {"operator": {"laplacian": 1.0}, "reaction": "sin(t) - 2 + u - cos(t) - norm2(x) / d"},
            "time": {"horizon": 0.5, "terminal": "cos(0.5) + norm2(x) / d"},
            "exact": "cos(t) + norm2(x) / d",
        },
        "model": {"width": 16, "depth": 3},
        "solver": {"method": "sdze", "steps": 4, "batch_size": 16, "samples": 3},
        "eval": {"test_points": 64, "every": 2, "sample_points": 16},
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "-m", "service.cli", "solve", str(path), "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["status"] == "succeeded" and m["steps_done"] == 4
    for k in ("rel_l2", "null_rel_l2", "null_terminal_rel_l2", "ref_rel_error", "val_residual"):
        assert m[k] is not None and math.isfinite(m[k]), k
    assert (out / "samples.npz").exists() and (out / "model.safetensors").exists()


@pytest.mark.parametrize("method", ["sdze", "sdze_published", "sdgd_adam", "hte_adam"])
def test_every_method_steps_a_written_out_problem(method):
    from sdze_core.parabolic.solving import evaluate_solver
    from sdze_core.solver import Solver

    problem = {**USER, "dim": 6, "time": {**USER["time"], "rule": "soft"}}
    if method == "hte_adam":  # Rademacher probes: no diagonal diffusion, no Σ|∂_i u|^p
        problem["pde"] = {k: v for k, v in USER["pde"].items() if k not in ("gradient_power", "power")}
        problem["pde"]["operator"] = {"laplacian": 0.7, "drift": -0.3}
    spec = {
        "problem": problem,
        "model": {"width": 16, "depth": 3},
        "solver": {"method": method, "steps": 3, "batch_size": 16, "samples": 3},
        "eval": {"test_points": 32, "every": 3},
        "dtype": "float64",
    }
    s = Solver(JobSpec.model_validate(spec).to_config(), device="cpu")
    losses = [s.local_step(t) for t in range(3)]
    assert all(math.isfinite(v) for v in losses), losses
    ev = evaluate_solver(s)
    assert math.isfinite(ev["val_residual"]) and ev["rel_l2"] is None  # no exact: test-set metrics are null
