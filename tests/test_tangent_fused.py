"""The fused dual jets (issue 12: ẏ = p ⋆ ż, W_eff folded, compact channels) against the term-by-term code they
replaced, in float64 on random inputs, orders 2 and 4: the same numbers to rounding (relative 1e-12).

``_reference_tanh_jet_dual`` / ``_reference_hidden_jet_dual`` are the implementations before the change, verbatim
up to names: the recurrence ẏ_k = (1/k) Σ_j j (ż_j p_{k−j} + z_j ṗ_{k−j}), ṗ_k = −Σ_j (ẏ_j y_{k−j} + y_j ẏ_{k−j}),
the low-rank term applied separately, and every channel materialised at every layer (zeros where no source is).
"""

from __future__ import annotations

import pytest
import torch

from sdze_core.tangent import cauchy_term, hidden_jet_dual, tanh_jet_dual
from sdze_core.taylor import FirstLayer, Jet, LowRank, _add, tanh_jet

F64 = torch.float64


def _mul(a, b):
    return None if a is None or b is None else a * b


def _reference_tanh_jet_dual(z: Jet, zd: Jet) -> tuple[Jet, Jet]:
    y = tanh_jet(z)
    K = len(z) - 1
    p: Jet = [1 - y[0] * y[0]]
    for k in range(1, K):
        acc = None
        for j in range(k + 1):
            acc = _add(acc, _mul(y[j], y[k - j]))
        p.append(None if acc is None else -acc)
    yd: Jet = [_mul(p[0], zd[0])]
    pd: Jet = [None if yd[0] is None else -2 * y[0] * yd[0]]
    for k in range(1, K + 1):
        acc = None
        for j in range(1, k + 1):
            t = _add(_mul(zd[j], p[k - j]), _mul(z[j], pd[k - j]))
            if t is not None:
                acc = _add(acc, t * j if j != 1 else t)
        yd.append(None if acc is None else (acc / k if k != 1 else acc))
        if k < K:
            acc = None
            for j in range(k + 1):
                acc = _add(acc, _add(_mul(yd[j], y[k - j]), _mul(y[j], yd[k - j])))
            pd.append(None if acc is None else -acc)
    return y, yd


def _reference_hidden_jet_dual(first, W, b, order, lowrank, tangents, first_tangent=None):
    N, S = first.z0.shape[0], first.z1.shape[0]
    z0, z1 = first.z0, first.z1
    term0 = lowrank[0]
    if term0 is not None and term0.M is not None:
        z0 = z0 + term0.xv @ term0.M.t()
        z1 = z1 + term0.dv @ term0.M.t()
    z: Jet = [z0.unsqueeze(1), z1.unsqueeze(0).expand(N, S, z1.shape[-1])] + [None] * (order - 1)
    t0 = tangents[0]
    zd: Jet = [None] * (order + 1)
    if t0 is not None:
        MS = t0[1]
        zd[0] = torch.einsum("nr,qmr->qnm", term0.xv, MS).unsqueeze(2)
        zd[1] = torch.einsum("sr,qmr->qsm", term0.dv, MS).unsqueeze(1)
    elif first_tangent is not None:
        zd[0], zd[1] = first_tangent
    y, yd = _reference_tanh_jet_dual(z, zd)
    for l in range(len(W)):
        term = lowrank[l + 1]
        tl = tangents[l + 1]
        z, zd = [], []
        for k, (c, cd) in enumerate(zip(y, yd, strict=True)):
            if c is None:
                z.append(None)
                zd.append(None)
                continue
            zk = c @ W[l].t() + b[l] if k == 0 else c @ W[l].t()
            if term is not None:
                zk = zk + term.apply(c)
            z.append(zk)
            dk = None
            if cd is not None:
                dk = cd @ W[l].t()
                if term is not None:
                    dk = dk + term.apply(cd)
            if tl is not None:
                V, MS = tl
                extra = torch.einsum("nsr,qmr->qnsm", c @ V, MS)
                dk = extra if dk is None else dk + extra
            zd.append(dk)
        y, yd = _reference_tanh_jet_dual(z, zd)
    return y, yd


def _close(a, b, rtol=1e-12):
    """Relative agreement against the coefficient's own scale (entries near zero are compared absolutely)."""
    assert (a is None) == (b is None)
    if a is None:
        return
    a, b = torch.broadcast_tensors(a, b)
    scale = float(b.abs().max())
    assert scale > 0
    err = float((a - b).abs().max())
    assert err <= rtol * scale, (err, scale)


@pytest.mark.parametrize("order", [2, 4])
def test_tanh_jet_dual_equals_the_recurrence(order):
    g = torch.Generator().manual_seed(order)
    Q, N, S, h = 5, 6, 7, 8
    z = [torch.randn(N, 1, h, generator=g, dtype=F64)] + [
        torch.randn(N, S, h, generator=g, dtype=F64) / (k + 1) for k in range(order)
    ]
    z[2] = None  # a structurally zero coefficient, as at the first layer
    zd = [torch.randn(Q, N, 1, h, generator=g, dtype=F64), torch.randn(Q, 1, 1, h, generator=g, dtype=F64)] + [
        torch.randn(Q, N, S, h, generator=g, dtype=F64) for _ in range(order - 1)
    ]
    y, yd = tanh_jet_dual(z, zd)
    y_ref, yd_ref = _reference_tanh_jet_dual(z, zd)
    for a, b in zip(y, y_ref, strict=True):
        assert torch.equal(a, b)  # the primal jet is the very same computation
    for a, b in zip(yd, yd_ref, strict=True):
        _close(a, b)


def test_cauchy_term_broadcasts_and_skips_none():
    g = torch.Generator().manual_seed(0)
    a = [torch.randn(3, 1, 4, generator=g, dtype=F64), torch.randn(3, 5, 4, generator=g, dtype=F64), None]
    b = [torch.randn(2, 3, 1, 4, generator=g, dtype=F64), None, torch.randn(2, 1, 1, 4, generator=g, dtype=F64)]
    assert cauchy_term([None, None, a[0]], b, 1) is None  # every product has a None factor
    torch.testing.assert_close(cauchy_term(a, b, 1), a[1] * b[0], rtol=0, atol=0)  # a_0 b_1: b_1 is None
    got = cauchy_term(a, [b[0], b[0], None], 1)
    torch.testing.assert_close(got, a[1] * b[0] + a[0] * b[0], rtol=1e-15, atol=1e-15)
    got2 = cauchy_term(a, b, 2)  # a_2 b_0 (None) + a_1 b_1 (None) + a_0 b_2: (2, 3, 1, 4), no full-shape product
    torch.testing.assert_close(got2, a[0] * b[2], rtol=0, atol=0)


def _network(g, h, depth, r):
    W = [torch.randn(h, h, generator=g, dtype=F64) / h**0.5 for _ in range(depth)]
    b = [torch.randn(h, generator=g, dtype=F64) * 0.1 for _ in range(depth)]
    lowrank = [None] + [
        LowRank(torch.linalg.qr(torch.randn(h, r, generator=g, dtype=F64))[0], 0.1 * torch.randn(h, r, generator=g))
        for _ in range(depth)
    ]
    for t in lowrank[1:]:
        t.M = t.M.to(F64)
    return W, b, lowrank


@pytest.mark.parametrize(("order", "gap"), [(2, 0), (4, 0), (2, 3)])
def test_hidden_jet_dual_w1_channels_and_trailing_probes_equal_the_padded_reference(order, gap):
    """The exact-W₁ layout: 2p leading W₁ channels (first_tangent), q trailing probe channels (hidden MS only),
    and ``gap`` channels no source reaches between them. The reference materialises all 2p + gap + q channels at
    every layer, zero-padded; the fused code does not."""
    g = torch.Generator().manual_seed(10 + order + gap)
    N, S, h, r, p, q = 7, 5, 12, 3, 2, 4
    Q = 2 * p + gap + q
    W, b, lowrank = _network(g, h, 2, r)
    first = FirstLayer(torch.randn(N, h, generator=g, dtype=F64), torch.randn(S, h, generator=g, dtype=F64))
    U = torch.linalg.qr(torch.randn(h, p, generator=g, dtype=F64))[0]
    z0d = torch.zeros(2 * p, 1, 1, h, dtype=F64)
    z1d = torch.zeros_like(z0d)
    z0d[:p, 0, 0] = U.t()
    z1d[p:, 0, 0] = U.t()
    MS = [torch.randn(q, h, r, generator=g, dtype=F64) for _ in range(2)]
    tangents = [None] + [(lr.V, ms) for lr, ms in zip(lowrank[1:], MS, strict=True)]
    y, yd = hidden_jet_dual(first, W, b, order, [None, *lowrank[1:]], tangents, (z0d, z1d), Q)
    pad0 = torch.cat([z0d, torch.zeros(Q - 2 * p, 1, 1, h, dtype=F64)])
    pad1 = torch.cat([z1d, torch.zeros(Q - 2 * p, 1, 1, h, dtype=F64)])
    padded = [None] + [
        (lr.V, torch.cat([torch.zeros(Q - q, h, r, dtype=F64), ms])) for lr, ms in zip(lowrank[1:], MS, strict=True)
    ]
    y_ref, yd_ref = _reference_hidden_jet_dual(first, W, b, order, [None, *lowrank[1:]], padded, (pad0, pad1))
    for a, b_ in zip(y, y_ref, strict=True):
        assert torch.equal(a, b_)
    for a, b_ in zip(yd, yd_ref, strict=True):
        assert a.shape == b_.shape
        _close(a, b_)
    if gap:
        assert float(yd[2][2 * p : 2 * p + gap].abs().max()) == 0.0  # no source reaches them


@pytest.mark.parametrize("order", [2, 4])
def test_hidden_jet_dual_probe_channels_on_every_layer_equal_the_reference(order):
    """The forward-gradient layout: the same q channels perturb the first layer (through its basis products) and
    every hidden layer, so the hidden probe term accumulates into the propagated tangents."""
    g = torch.Generator().manual_seed(20 + order)
    N, S, h, r, q = 6, 4, 10, 3, 3
    W, b, lowrank = _network(g, h, 2, r)
    r0 = 5
    term0 = LowRank(None, torch.randn(h, r0, generator=g, dtype=F64) * 0.1)
    term0.xv = torch.randn(N, r0, generator=g, dtype=F64)
    term0.dv = torch.randn(S, r0, generator=g, dtype=F64)
    first = FirstLayer(torch.randn(N, h, generator=g, dtype=F64), torch.randn(S, h, generator=g, dtype=F64))
    MS = [torch.randn(q, h, r0 if l == 0 else r, generator=g, dtype=F64) for l in range(3)]
    tangents = [(None, MS[0])] + [(lr.V, ms) for lr, ms in zip(lowrank[1:], MS[1:], strict=True)]
    low = [term0, *lowrank[1:]]
    y, yd = hidden_jet_dual(first, W, b, order, low, tangents)
    y_ref, yd_ref = _reference_hidden_jet_dual(first, W, b, order, low, tangents)
    for a, b_ in zip(y, y_ref, strict=True):
        assert torch.equal(a, b_)
    for a, b_ in zip(yd, yd_ref, strict=True):
        _close(a, b_)


@pytest.mark.parametrize(("lead", "q", "Q"), [(5, 3, 6), (2, 3, 5), (2, 2, 6), (4, 4, 4), (3, 0, 7), (0, 3, 5)])
def test_layer_tangent_places_both_terms_on_their_channels(lead, q, Q):
    """ċ W_effᵀ on the leading ``lead`` channels, (cV)(MS)ᵀ on the trailing q, summed where they overlap, zero
    between them: every channel layout, against the sum written out."""
    from sdze_core.tangent import _layer_tangent

    g = torch.Generator().manual_seed(lead * 100 + q * 10 + Q)
    N, s, n, m, r = 3, 4, 6, 5, 2
    c = torch.randn(N, s, n, generator=g, dtype=F64)
    cd = torch.randn(lead, N, s, n, generator=g, dtype=F64) if lead else None
    Wt = torch.randn(n, m, generator=g, dtype=F64)
    V, MS = torch.randn(n, r, generator=g, dtype=F64), torch.randn(q, m, r, generator=g, dtype=F64)
    got = _layer_tangent(c, cd, Wt, (V, MS) if q else None, Q)
    rows = lead if q == 0 else Q
    want = torch.zeros(rows, N, s, m, dtype=F64)
    if lead:
        want[:lead] += cd @ Wt
    if q:
        want[rows - q :] += torch.einsum("nsr,qmr->qnsm", c @ V, MS)
    torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-13)


def test_reused_buffers_give_the_same_bits_call_after_call():
    """``TangentBuffers``: the same numbers bit for bit as fresh tensors, on every call (no stale content: the
    buffers are reused across calls with other inputs, the gap channels re-zeroed)."""
    from sdze_core.tangent import TangentBuffers

    buffers = TangentBuffers()
    N, S, h, r, p, q, gap = 5, 4, 8, 2, 2, 3, 1
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        W, b, lowrank = _network(g, h, 2, r)
        first = FirstLayer(torch.randn(N, h, generator=g, dtype=F64), torch.randn(S, h, generator=g, dtype=F64))
        zd0 = torch.randn(2 * p, 1, 1, h, generator=g, dtype=F64)
        zd1 = torch.randn(2 * p, 1, 1, h, generator=g, dtype=F64)
        tangents = [None] + [(lr.V, torch.randn(q, h, r, generator=g, dtype=F64)) for lr in lowrank[1:]]
        args = (first, W, b, 2, [None, *lowrank[1:]], tangents, (zd0, zd1), 2 * p + gap + q)
        _, fresh = hidden_jet_dual(*args)
        _, reused = hidden_jet_dual(*args, buffers=buffers)
        for a, b_ in zip(fresh, reused, strict=True):
            assert torch.equal(a, b_)
