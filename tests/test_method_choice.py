"""``method: "auto"`` (sdze_core/method_choice.py): resolved to a concrete method with its reason, by the rules in
order (workers, zeroth-order knobs, the measured crossover, memory), and the crossover table agrees with every
committed side-by-side run pair (docs/*.json): wherever one method was clearly ahead, auto picks it."""

from __future__ import annotations

import json
import math
import pathlib

import sdze_core.method_choice as mc
from sdze_core.spec import JobSpec

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
TIE = 0.10  # within 10 % the two are even at this budget: auto may pick either (it picks sdze)

# (problem, d, figure, sdze run, sdgd_adam run: docs/bench_RUN.json): the same spec and budget side by side
# (docs/benchmarks.md "method: auto", docs/time-dependent.md); ``figure`` is the metrics.json key both are judged by
PAIRS = [
    ("bsb", 100, "rel_l2", "acc14_bsb_d100_5min_sdze_s5", "acc14_bsb_d100_5min_sdgd_adam_s5"),
    ("reaction_diffusion", 100, "rel_l2", "acc14_rd_d100_5min_sdze_s5", "acc14_rd_d100_5min_sdgd_adam_s5"),
    ("bsb", 1000, "rel_l2", "acc14_bsb_d1000_5min_sdze_s9", "acc14_bsb_d1000_5min_sdgd_adam_s9"),
    ("reaction_diffusion", 1000, "rel_l2", "acc14_rd_d1000_5min_sdze_s9", "acc14_rd_d1000_5min_sdgd_adam_s9"),
    ("bsb", 10_000, "rel_l2", "acc14_bsb_d1e4_5min_sdze_s5", "acc14_bsb_d1e4_5min_sdgd_adam_s5"),
    ("user", 100, "rel_l2", "acc14_heat_ball_d100_5min_sdze_s9", "acc14_heat_ball_d100_5min_sdgd_adam_s9"),
    ("user", 1000, "rel_l2", "acc14_heat_ball_d1000_10min_sdze_s9", "acc14_heat_ball_d1000_10min_sdgd_adam_s9"),
    ("semilinear_heat", 1000, "ref_rel_error", "acc14_heat_d1000_10min_sdze_s8", "acc14_heat_d1000_10min_sdgd_adam_s8"),
    ("semilinear_heat", 10_000, "ref_rel_error", "acc14_heat_d1e4_10min_sdze_s8", "acc14_heat_d1e4_10min_sdgd_adam_s8"),
    (
        "allen_cahn_time",
        1000,
        "ref_rel_error",
        "acc14_allen_cahn_d1000_10min_sdze_s8",
        "acc14_allen_cahn_d1000_10min_sdgd_adam_s8",
    ),
    ("sine_gordon_two_body", 100, "rel_l2", "acc12_d100_5min_sdze_s7", "acc12_d100_5min_sdgd_adam_s9"),
    ("sine_gordon_two_body", 1000, "rel_l2", "acc12_d1000_10min_sdze_s7b", "acc12_d1000_10min_sdgd_adam_s9"),
    ("sine_gordon_two_body", 100_000, "rel_l2", "acc12_d1e5_30min_sdze_s6", "acc12_d1e5_30min_sdgd_adam"),
]


def _auto(problem: dict, **solver) -> tuple[str, str]:
    s = JobSpec.model_validate({"problem": problem, "solver": solver}).to_config().solver
    return s.method, s.method_choice


def test_auto_is_the_default_and_resolves_to_a_concrete_method_with_its_reason():
    method, why = _auto({"name": "sine_gordon_two_body", "dim": 100})
    assert method == "sdze" and why.startswith("auto: stationary")
    method, why = _auto({"name": "bsb", "dim": 100})
    assert method == "sdgd_adam" and "time_hard" in why and "1.28e-3" in why
    assert _auto({"name": "bsb", "dim": 10_000})[0] == "sdze"
    assert _auto({"name": "semilinear_heat", "dim": 100})[0] == "sdze"  # soft rule: sdze at every measured d
    assert _auto({"name": "biharmonic_three_body", "dim": 100})[0] == "sdze"
    # a named method is kept as it is, with no reason
    assert _auto({"name": "bsb", "dim": 100}, method="sdze") == ("sdze", "")
    # a written-out time-dependent PDE follows its rule (hard by default)
    pde = {"dim": 50, "pde": {"operator": {"laplacian": 1.0}}, "time": {"horizon": 1.0, "terminal": "norm2(x)"}}
    assert _auto(pde)[0] == "sdgd_adam"
    assert _auto({**pde, "time": {**pde["time"], "rule": "soft"}})[0] == "sdze"


def test_workers_and_zeroth_order_knobs_choose_sdze():
    spec = {"problem": {"name": "bsb", "dim": 100}, "resources": {"workers": 2}}
    s = JobSpec.model_validate(spec).to_config().solver
    assert s.method == "sdze" and "2 workers" in s.method_choice
    method, why = _auto({"name": "bsb", "dim": 100}, q=4, gn_mean_row=0.0)
    assert method == "sdze" and "gn_mean_row, q" in why
    assert _auto({"name": "bsb", "dim": 100}, lr=3e-3)[0] == "sdgd_adam"  # lr is every method's knob


def test_memory_rule_keeps_sdze_where_the_first_order_state_would_not_fit(monkeypatch):
    monkeypatch.setattr(mc, "machine_memory_bytes", lambda: 64 << 20)  # a 64 MiB machine
    method, why = _auto({"name": "bsb", "dim": 100})
    assert method == "sdze" and "exceeds half of this machine's memory" in why


def _pair(problem: str, d: int, figure: str, zo_run: str, fo_run: str) -> tuple[tuple[str, int], str, float, float]:
    """((family, d), what auto picks for this spec, sdze's figure, sdgd_adam's figure) of one committed pair."""
    zo = json.loads((DOCS / f"bench_{zo_run}.json").read_text())
    fo = json.loads((DOCS / f"bench_{fo_run}.json").read_text())
    assert zo["spec"]["solver"]["method"] == "sdze" and fo["spec"]["solver"]["method"] == "sdgd_adam"
    assert zo["spec"]["problem"] == fo["spec"]["problem"] and zo["spec"]["problem"].get("name", "user") == problem
    assert zo["spec"]["problem"]["dim"] == d
    assert zo["spec"]["solver"]["time_limit_s"] == fo["spec"]["solver"]["time_limit_s"]
    solver = {k: v for k, v in zo["spec"]["solver"].items() if k != "method"}
    cfg = JobSpec.model_validate({**zo["spec"], "solver": solver}).to_config()  # the same spec, method left out
    return (
        (mc.family(cfg.problem.name, cfg.problem.pde), d),
        cfg.solver.method,
        zo["metrics"][figure],
        fo["metrics"][figure],
    )


def test_the_crossover_table_picks_the_measured_winner():
    """Per (family, d): the method with the lower geometric mean of its figures over that group's pairs (problems
    of one family can disagree at one d: bsb and reaction_diffusion at d = 1000) is what auto picks there."""
    groups: dict[tuple[str, int], list] = {}
    for row in PAIRS:
        key, method, a, b = _pair(*row)
        groups.setdefault(key, []).append((method, a, b))
    for key, rows in groups.items():
        assert len({m for m, _, _ in rows}) == 1, (key, rows)  # one family and d: one choice
        ratio = math.prod(a / b for _, a, b in rows) ** (1 / len(rows))  # geometric mean of sdze / sdgd_adam
        want = "sdze" if ratio <= 1 + TIE else "sdgd_adam"
        assert rows[0][0] == want, (key, ratio, rows)
    assert ("time_hard", 1000) in groups and len(groups[("time_hard", 1000)]) == 3
