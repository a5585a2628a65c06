"""The compiled two-body sums (sdze_core/fused_terms.py) against the float64 closed form and the eager path."""

from __future__ import annotations

import pytest
import torch

from sdze_core import fused_terms
from sdze_core.problems import make_problem
from sdze_core.residual import source_chunked


def _points(d: int, n: int, dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(d)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    r = torch.rand(n, 1, generator=g, dtype=torch.float64)
    return (x * r / x.norm(dim=1, keepdim=True)).to(dtype)


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a - ref).abs().max() / ref.pow(2).mean().sqrt())


@pytest.mark.parametrize("d", [1 + 3 * fused_terms.BLOCK, 2 + 5 * fused_terms.BLOCK + 77])
def test_block_sums_match_the_float64_closed_form(d):
    p = make_problem("sine_gordon_two_body", d, seed=3)
    x32 = _points(d, 5, torch.float32)
    with torch.no_grad():
        ref = p._core(x32.double(), block=10**9)  # eager float64, one block
        fused = fused_terms.two_body_sums(x32, p.c.float())
        eager32 = p._core(x32)
        n = fused_terms.covered(d)
        assert n == (d - 1) // fused_terms.BLOCK * fused_terms.BLOCK  # terms past n: the eager remainder
        rest = p._core_block(x32[:, n:], p.c.float()[n:])
        for k in ("g", "Eg", "lap"):
            got = fused[k] + rest[k].double()
            # float32 terms, float64 block sums: the eager float32 path's accuracy, far below the sums' size
            assert _rel(got, ref[k]) < 5 * max(_rel(eager32[k], ref[k]), 1e-7)
            assert _rel(got, ref[k]) < 1e-5
        fused64 = fused_terms.two_body_sums(x32.double(), p.c)
        rest64 = p._core_block(x32.double()[:, n:], p.c[n:])
        for k in ("g", "Eg", "lap"):
            assert _rel(fused64[k] + rest64[k], ref[k]) < 1e-13


def test_source_at_high_d_uses_the_kernel_and_agrees_with_eager(monkeypatch):
    d = fused_terms.MIN_DIM + 10
    p = make_problem("sine_gordon_two_body", d, seed=1)
    x = _points(d, 3, torch.float32)
    calls = []
    original = fused_terms.two_body_sums
    monkeypatch.setattr(fused_terms, "two_body_sums", lambda *a: calls.append(1) or original(*a))
    with torch.no_grad():
        f_fused = source_chunked(p, x)
        assert calls, "the compiled kernel served d ≥ MIN_DIM"
        monkeypatch.setenv("SDZE_EAGER_SOURCE", "1")
        assert not fused_terms.enabled(x)
        f_eager = source_chunked(p, x)
        f64 = p.source(x.double())
    assert _rel(f_fused, f64) < 2e-5 and _rel(f_eager, f64) < 2e-5
    assert _rel(f_fused, f_eager) < 2e-5


def test_not_used_under_autograd_or_below_min_dim():
    x = torch.zeros(2, fused_terms.MIN_DIM)
    assert not fused_terms.enabled(torch.zeros(2, fused_terms.MIN_DIM - 1))
    with torch.no_grad():
        assert fused_terms.enabled(x)
    assert not fused_terms.enabled(x)  # grad mode on: the closed-form autograd tests keep the plain formulas


def test_a_compiler_failure_falls_back_to_eager(monkeypatch):
    def broken(*_):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setitem(fused_terms._state, "kernel", broken)
    monkeypatch.setitem(fused_terms._state, "failed", False)
    d = fused_terms.MIN_DIM + 1
    p = make_problem("sine_gordon_two_body", d, seed=2)
    x = _points(d, 2, torch.float32)
    with torch.no_grad():
        f = source_chunked(p, x)
        assert fused_terms._state["failed"] and not fused_terms.enabled(x)
        assert _rel(f, p.source(x.double())) < 2e-5
