"""The engine-facing parabolic hooks against float64 forward-mode autograd (torch.func), and the batch source."""

import pytest
import torch
from torch.func import jacfwd, jvp

from sdze_core.config import SolverConfig
from sdze_core.model import MLP
from sdze_core.parabolic import hooks
from sdze_core.parabolic.problems import make_parabolic_problem
from sdze_core.taylor import FirstLayer, hidden_jet

F64 = torch.float64


def _setup(name, est, d=6, seed=0):
    p = make_parabolic_problem(name, d)
    src = hooks.ParabolicBatchSource(p, SolverConfig(batch_size=5, estimator=est, samples=3), 11, F64)
    m = MLP.init(d + 1, 8, 4, seed=seed, dtype=F64)
    return p, src.get(3, 0), m


def _phi(b, Ws, bs):
    first = FirstLayer.compute(Ws[0], bs[0], b.x, b.dirs)
    return tuple(hidden_jet(first, list(Ws[1:-1]), list(bs[1:-1]), 2))


@pytest.mark.parametrize("name,est", [("hjb_cole_hopf", "hte"), ("bsb", "sdgd"), ("allen_cahn_time", "sdgd")])
def test_residual_tangents_match_jvp(name, est):
    p, b, m = _setup(name, est)
    gen = torch.Generator().manual_seed(3)
    dW = [torch.randn(w.shape, generator=gen, dtype=F64) for w in m.W]

    def res(*Ws):
        phi = list(_phi(b, Ws, m.b))
        return hooks.residual(p, b, hooks.u_jet(b, phi, Ws[-1], m.b[-1]))

    # hidden layers only (the output layer has its own exact Jacobian)
    dW_hidden = [*dW[:-1], torch.zeros_like(dW[-1])]
    _, Rdot = jvp(res, tuple(m.W), tuple(dW_hidden))
    phi, phid = jvp(lambda *Ws: _phi(b, Ws, m.b), tuple(m.W), tuple(dW_hidden))
    phid = [None if c is None else c.unsqueeze(0) for c in phid]
    u = hooks.u_jet(b, list(phi), m.W[-1], m.b[-1])
    got = hooks.residual_tangents(p, b, list(phi), phid, m.W[-1], u)
    torch.testing.assert_close(got[0], Rdot, rtol=1e-10, atol=1e-10)
    op, val = hooks.residual_tangents(p, b, list(phi), phid, m.W[-1], u, split=True)
    assert op.shape == (1, b.x.shape[0], 4)
    torch.testing.assert_close(op.sum(-1) + val, got)


@pytest.mark.parametrize("name,est", [("hjb_lin", "sdgd"), ("reaction_diffusion", "hte"), ("semilinear_heat", "sdgd")])
def test_last_layer_jacobian_matches_autograd(name, est):
    p, b, m = _setup(name, est)
    phi = list(_phi(b, m.W, m.b))

    def res(wb):
        return hooks.residual(p, b, hooks.u_jet(b, phi, wb[:-1].unsqueeze(0), wb[-1:]))

    wb = torch.cat([m.W[-1][0], m.b[-1]])
    J = jacfwd(res)(wb)
    u = hooks.u_jet(b, phi, m.W[-1], m.b[-1])
    torch.testing.assert_close(hooks.last_layer_jacobian(p, b, phi, u), J, rtol=1e-10, atol=1e-10)


def test_batch_source_is_seeded_and_checks_the_estimator():
    p = make_parabolic_problem("semilinear_heat", 20)
    s = SolverConfig(batch_size=7, estimator="sdgd", samples=4)
    a = hooks.ParabolicBatchSource(p, s, 5, F64).get(2, 1)
    b = hooks.ParabolicBatchSource(p, s, 5, F64).get(2, 1)
    torch.testing.assert_close(a.x, b.x)
    assert a.x.shape == (7 + 1, 21) and a.dirs.count == 5 and int(a.dirs.idx[-1]) == 20  # + 1 terminal row; S + e_t
    c = hooks.ParabolicBatchSource(p, s, 5, F64).get(3, 1)
    assert not torch.equal(a.x, c.x)
    with pytest.raises(ValueError, match="coordinate directions"):
        hooks.ParabolicBatchSource(make_parabolic_problem("bsb", 4), SolverConfig(estimator="hte"), 0)


def test_soft_ansatz_rows():
    """Soft ansatz (point-reference problems): u = N; the last rows are w_T·(u − g) at t = T."""
    p, b, m = _setup("semilinear_heat", "sdgd")
    assert p.terminal_rule == "soft" and b.x.shape[0] == 5 + 1 and bool(b.term_mask[-1]) and not bool(b.term_mask[0])
    assert float(b.x[-1, -1]) == p.T
    phi = list(_phi(b, m.W, m.b))
    u = hooks.u_jet(b, phi, m.W[-1], m.b[-1])
    R = hooks.residual(p, b, u)
    n_last = m.forward(b.x[-1:])[0]
    g_last = p.terminal.value(b.x[-1:, :-1])[0]
    torch.testing.assert_close(R[-1], (p.terminal_weight * 5 / 1) ** 0.5 * (n_last - g_last))
