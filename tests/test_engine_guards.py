"""Engine guards: reports are CPU-only on the wire, every applied coefficient is checked finite, backtracking's
rejected and zeroed steps are counted (and survive a checkpoint), the per-step fingerprint sees a corruption."""

from __future__ import annotations

import dataclasses
import math
import pickle

import pytest
import torch
from core_helpers import tiny_spec

import sdze_core.engine.probes_gauss_newton as gn_module
from sdze_core.engine import WorkerReport
from sdze_core.solver import Solver

SMALL = dict(model={"width": 16, "depth": 3}, batch_size=8, samples=4, dtype="float64", steps=10)


def solver(**fields) -> Solver:
    return Solver(tiny_spec(problem={"name": "sine_gordon_two_body", "dim": 8}, **SMALL, **fields).to_config(), "cpu")


def tensors_in(obj) -> list[torch.Tensor]:
    return [v for v in vars(obj).values() if isinstance(v, torch.Tensor)]


@pytest.mark.parametrize("method", ["sdze", "sdze_published", "zo_full"])
def test_reports_hold_only_cpu_tensors_and_plain_numbers(method):
    s = solver(method=method)
    r = s.probe(0, 1)
    assert all(t.device.type == "cpu" for t in tensors_in(r))
    assert all(isinstance(k, int) and isinstance(d, float) for k, d in r.probes) and isinstance(r.loss, float)
    if method == "sdze":  # the default carries its Gauss–Newton coefficients: h + 1 and p × m'
        assert r.last.shape == (17,) and r.w1.shape[0] == 2 and r.w1.shape[1] <= 8 + 4
    back = pickle.loads(pickle.dumps(r))
    assert all(t.device.type == "cpu" for t in tensors_in(back))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA to make device tensors")
def test_a_report_built_from_device_tensors_moves_them_to_the_cpu():
    last = torch.ones(5, device="cuda")
    r = WorkerReport(0, [(0, 1.0)], 0.5, last=last, w1=torch.ones(2, 3, device="cuda"))
    assert r.last.device.type == "cpu" and r.w1.device.type == "cpu" and torch.equal(r.last, last.cpu())


@pytest.mark.parametrize("part", ["last", "w1", "probes"])
def test_a_non_finite_gauss_newton_coefficient_is_refused_before_anything_moves(part):
    s = solver(method="sdze")
    r = s.probe(0, 0)
    before = s.state_tensors()
    bad = {
        "last": dict(last=r.last.clone().index_fill_(0, torch.tensor([3]), math.nan)),
        "w1": dict(w1=r.w1.clone().index_fill_(1, torch.tensor([0]), math.inf)),
        "probes": dict(probes=[(0, math.nan)] + r.probes[1:]),
    }[part]
    with pytest.raises(FloatingPointError, match="worker 0 at step 0"):
        s.apply_probes(0, [dataclasses.replace(r, **bad)])
    after = s.state_tensors()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_backtracking_rejections_and_zeroed_steps_are_counted_and_checkpointed(tmp_path, monkeypatch):
    """A trial loss that never improves: every step is zeroed after gn_backtracks + 1 rejected trials, the model
    does not move, and the counters say so — also after a checkpoint round trip."""
    monkeypatch.setattr(gn_module, "trial_loss", lambda *a, **k: math.inf)
    s = solver(method="sdze", gn_backtracks=2)
    w = [t.clone() for t in s.model.params()]
    for t in range(3):
        s.apply_probes(t, [s.probe(t, 0), s.probe(t, 1)])
    assert s.counters() == {"gn_worker_steps": 6, "gn_rejected_trials": 6 * 3, "gn_zeroed_steps": 6}
    s.engine.fold()
    assert all(torch.equal(a, b) for a, b in zip(w, s.model.params(), strict=True))
    s.save_checkpoint(tmp_path / "ck")
    fresh = solver(method="sdze", gn_backtracks=2)
    fresh.load_checkpoint(tmp_path / "ck")
    assert fresh.counters() == s.counters()


def test_unchallenged_steps_count_no_rejection_and_sgd_counts_clipped_probes():
    s = solver(method="sdze", gn_backtracks=0)
    s.local_step(0)
    assert s.counters() == {"gn_worker_steps": 1, "gn_rejected_trials": 0, "gn_zeroed_steps": 0}
    p = solver(method="sdze_published", clip=0.5)
    p.local_step(0)
    c = p.counters()
    assert c["sgd_probes"] == 8 and 0 < c["sgd_clipped_probes"] <= 8  # |δ/RMS| > 0.5 for some of 8 probes


@pytest.mark.parametrize("where", ["W1", "C", "output"])
def test_the_fingerprint_is_equal_for_replicas_and_sees_a_corruption(where):
    a, b = solver(method="sdze_published"), solver(method="sdze_published")
    for t in range(2):
        reports = [a.probe(t, 0)]
        a.apply_probes(t, reports)
        b.apply_probes(t, reports)
    assert a.fingerprint() == b.fingerprint()
    with torch.no_grad():
        {"W1": lambda: b.model.W[0].view(-1)[0], "C": lambda: b.engine.layers[1].C.view(-1)[0],
         "output": lambda: b.model.b[-1]}[where]().add_(1e-12)  # fmt: skip
    assert a.fingerprint() != b.fingerprint()


def test_the_fingerprint_samples_large_tensors_and_the_full_digest_covers_the_rest():
    """Above 65 536 elements (W₁ at d = 5 000, width 16) the fingerprint hashes an evenly strided sample: it sees a
    sampled entry change, not an unsampled one — which the full state digest (run every few steps) does see."""
    from worker.actor import state_digest

    spec = tiny_spec(problem={"name": "sine_gordon_two_body", "dim": 5000}, method="sdze_published", **SMALL)
    a, b = Solver(spec.to_config(), "cpu"), Solver(spec.to_config(), "cpu")
    assert a.model.W[0].numel() > 16 * 4096 and a.fingerprint() == b.fingerprint()
    stride = a.model.W[0].numel() // 4096
    with torch.no_grad():
        b.model.W[0].view(-1)[1].add_(1e-9)  # between two samples
    assert a.fingerprint() == b.fingerprint() and state_digest(a) != state_digest(b)
    with torch.no_grad():
        b.model.W[0].view(-1)[1].sub_(1e-9)
        b.model.W[0].view(-1)[stride].add_(1e-9)  # a sampled entry
    assert a.fingerprint() != b.fingerprint()


def test_fingerprint_check_names_the_odd_worker_deterministically():
    """A tie (two workers) is judged against the lowest rank; a majority names the minority, whatever set order."""
    from worker.executor import RayExecutor, ReplicaMismatch

    with pytest.raises(ReplicaMismatch, match=r"at step 5: worker\(s\) 1 hold"):
        RayExecutor.check_fingerprints(None, 5, ["aaaa", "bbbb"])
    with pytest.raises(ReplicaMismatch, match=r"at step 2: worker\(s\) 0 hold"):
        RayExecutor.check_fingerprints(None, 2, ["cccc", "dddd", "dddd"])
    RayExecutor.check_fingerprints(None, 3, ["eeee", "eeee"])  # agreeing replicas pass
