"""``seeds`` (pure, stable, order-sensitive derivation) and ``schedule`` (linear decay, horizon, checkpoint)."""

import pytest
import torch

from sdze_core.schedule import LinearDecay
from sdze_core.seeds import derive, generator


def test_derive_is_a_stable_63_bit_function_of_its_parts():
    assert derive(7, "pert", 3, 1, 0) == derive(7, "pert", 3, 1, 0)
    assert derive(0) == 3938860082335825607  # pinned: every seed of every run depends on this function
    seen = {derive(7, "pert", t, w, k) for t in range(20) for w in range(3) for k in range(8)}
    assert len(seen) == 20 * 3 * 8 and all(0 <= s < 2**63 for s in seen)
    assert derive(1, 2) != derive(2, 1)  # order matters
    assert derive("12") != derive(12) and derive("ab", "c") != derive("a", "bc")  # types and boundaries matter


def test_generator_reproduces_the_same_draws():
    a = torch.randn(5, generator=generator(derive(1, "x")))
    b = torch.randn(5, generator=generator(derive(1, "x")))
    c = torch.randn(5, generator=generator(derive(1, "y")))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_linear_decay_reaches_the_final_fraction_at_the_horizon_and_stays():
    s = LinearDecay(0.5, 100, 0.1)
    assert s(0) == 0.5
    assert s(50) == pytest.approx(0.5 * (1 - 0.9 * 0.5))
    assert s(100) == pytest.approx(0.05) and s(10**6) == s(100)
    assert LinearDecay(1.0, 0, 0.0)(0) == 1.0  # a zero horizon does not divide by zero
    flat = LinearDecay(1e-3, 100, 1.0)
    assert {flat(t) for t in (0, 50, 500)} == {1e-3}


def test_schedule_state_round_trips_exactly():
    s = LinearDecay(0.03, 777, 0.25)
    r = LinearDecay(1.0, 1, 0.0)
    r.load_state_dict(s.state_dict())
    assert all(r(t) == s(t) for t in (0, 1, 388, 777, 10_000))
