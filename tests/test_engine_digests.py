"""Bit-identity of the engine across refactors: a recorded SHA-256 of every state tensor after a few steps.

Each case runs a tiny float64 job on CPU (d = 8, width 16, batch 8) for ``STEPS`` steps with one or two workers
(``evaluate`` on every worker, then ``apply`` of all reports), then hashes the model, the engine state (bases,
C, momenta, RMS, refresh counters), the schedule, every step's returned loss and the last step's reports.
``tests/data/engine_digests.json`` holds the digests recorded before the engine split (issue 10); this test
fails on any change of any bit. Regenerate (only for an intended numerical change, and say so in the commit):

    OMP_NUM_THREADS=1 python tests/test_engine_digests.py --record

Exact bits depend on the CPU's kernel choice; on a machine whose torch CPU capability or version differs from
the recording one, the test compares an order-sensitive float64 checksum instead (relative 1e-9).
"""

from __future__ import annotations

import hashlib
import json
import math
import pathlib
import sys

import pytest
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from core_helpers import tiny_spec  # noqa: E402

from sdze_core.solver import Solver  # noqa: E402

DATA = pathlib.Path(__file__).resolve().parent / "data" / "engine_digests.json"
STEPS = 6
SMALL = dict(model={"width": 16, "depth": 4}, batch_size=8, samples=4, dtype="float64", steps=STEPS)
SG = {"name": "sine_gordon_two_body", "dim": 8}
BIH = {"name": "biharmonic_three_body", "dim": 8}

# name -> (spec solver fields, workers)
CASES: dict[str, tuple[dict, int]] = {
    "sdze": (dict(method="sdze", gn_holdout="off"), 1),
    "sdze_2workers": (dict(method="sdze", gn_holdout="off"), 2),
    "sdze_biharmonic": (dict(method="sdze", gn_holdout="off", problem=BIH), 1),
    "sdze_w1_random": (dict(method="sdze", gn_holdout="off", w1_probes="random"), 1),
    "sdze_gn_two_point": (dict(method="sdze", gn_holdout="off", w1_probes="random", gradient="two_point"), 1),
    "sdze_gn_random_basis": (
        dict(method="sdze", gn_holdout="off", w1_probes="random", w1_basis="random", refresh_every=2),
        2,
    ),
    "sdze_gn_hidden_bias": (dict(method="sdze", gn_holdout="off", perturb_hidden_bias=True), 1),
    "sdze_gn_no_backtracks": (dict(method="sdze", gn_holdout="off", gn_backtracks=0, lr=5.0), 1),
    # the default at this d (< 5 × batch_size): every trial step judged on a held-out batch, each worker's λ kept
    "sdze_holdout": (dict(method="sdze"), 1),
    "sdze_holdout_2workers": (dict(method="sdze"), 2),
    "sdze_published": (dict(method="sdze_published"), 1),
    "sdze_published_2workers": (dict(method="sdze_published", refresh_every=2, refresh_growth=1.0), 2),
    "sdze_published_forward": (dict(method="sdze_published", gradient="forward"), 1),
    "sdze_published_data_basis": (dict(method="sdze_published", w1_basis="data"), 2),
    "sdze_published_hidden_bias": (dict(method="sdze_published", perturb_hidden_bias=True), 1),
    "sdze_optimizer_state_full": (dict(method="sdze_published", optimizer_state="full", refresh_every=2), 1),
    "sdze_optimizer_state_full_data": (dict(method="sdze_published", optimizer_state="full", w1_basis="data"), 2),
    "sdze_no_crns": (dict(method="sdze_no_crns"), 1),
    "zo_full": (dict(method="zo_full"), 2),
    "zo_full_no_crns": (dict(method="zo_full", crns=False), 1),
    "sdgd_adam": (dict(method="sdgd_adam"), 1),
    "hte_adam": (dict(method="hte_adam"), 1),
}


def _report_bytes(r) -> bytes:
    parts = [repr((r.worker, r.probes, r.loss)).encode()]
    for t in (getattr(r, "last", None), getattr(r, "w1", None)):
        parts.append(b"-" if t is None else t.detach().cpu().contiguous().numpy().tobytes())
    return b"|".join(parts)


def run_case(name: str) -> dict:
    fields, workers = CASES[name]
    fields = dict(fields)
    problem = fields.pop("problem", SG)
    cfg = tiny_spec(problem=problem, **SMALL, **fields).to_config()
    s = Solver(cfg, "cpu")
    h = hashlib.sha256()
    for t in range(STEPS):
        if s.zeroth_order:
            reports = [s.probe(t, w) for w in range(workers)]
            loss = s.apply_probes(t, reports)
            if t == STEPS - 1:
                for r in reports:
                    h.update(_report_bytes(r))
        else:
            loss = s.local_step(t)
        h.update(repr(loss).encode())
    for key, tensor in sorted(s.state_tensors().items()):
        h.update(key.encode())
        h.update(tensor.numpy().tobytes())
    h.update(json.dumps(s.schedule.state_dict(), sort_keys=True).encode())
    return {"sha256": h.hexdigest(), "checksum": s.checksum()}


def platform() -> dict:
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads(DATA.read_text())


@pytest.mark.parametrize("name", sorted(CASES))
def test_engine_state_is_bit_identical_to_the_recorded_digest(name, recorded):
    assert name in recorded["cases"], f"no recorded digest for {name}: run this file with --record"
    got, want = run_case(name), recorded["cases"][name]
    if platform() == recorded["platform"]:
        assert got["sha256"] == want["sha256"], f"{name}: engine state changed ({got} != {want})"
    else:  # another CPU kernel family: bits may differ legitimately, values may not
        assert math.isclose(got["checksum"], want["checksum"], rel_tol=1e-9), (got, want)


if __name__ == "__main__":
    if "--record" not in sys.argv:
        sys.exit("usage: python tests/test_engine_digests.py --record")
    torch.set_num_threads(1)
    out = {"platform": platform(), "steps": STEPS, "cases": {n: run_case(n) for n in sorted(CASES)}}
    DATA.parent.mkdir(parents=True, exist_ok=True)
    DATA.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
