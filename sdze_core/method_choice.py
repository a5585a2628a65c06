"""``method: "auto"`` (the default): the method that measured best at equal wall time for this kind of problem and d.

Resolved once, when a spec becomes a ``RunConfig`` (``build.run_config``), so the job runs, records and reports a
concrete method; ``SolverConfig.method_choice`` says why (metrics.json ``method_choice``). The rules, in order:

1. more than one worker → ``sdze`` (the first-order baselines run on one worker);
2. a zeroth-order knob set in the spec (``q``, ``update``, …) → ``sdze`` (the spec asks for what only it reads);
3. the measured crossover (``CROSSOVERS``): first-order ``sdgd_adam`` where it beat ``sdze`` at equal time, i.e.
   below the family's ``first_order_below`` dimension, else ``sdze``;
4. memory: where (3) says ``sdgd_adam`` but its estimated peak (``memory.estimate``: weights, gradient and two Adam
   moments, 4P numbers against sdze's P) exceeds half of this machine's physical memory → ``sdze``.

The crossover dimensions come from committed side-by-side runs (docs/benchmarks.md "method: auto"): at each
measured d the winner of a family is the method with the lower geometric mean of its errors over that family's
problems (they can disagree: at d = 1000 first-order wins reaction–diffusion by 55× and loses Black–Scholes–Barenblatt
by 1.6×); a family's threshold lies between the largest d where first-order won and the smallest where ``sdze`` won
(their geometric mean); a family where ``sdze`` won or tied at every measured d has threshold 0. Re-measure and edit
the table, not the code, when the engines change (``tests/test_method_choice.py`` checks it against the runs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .memory import machine_memory_bytes

AUTO = "auto"
FIRST_ORDER_CHOICE = "sdgd_adam"
ZO_CHOICE = "sdze"
MEMORY_SHARE = 0.5  # of this machine's physical memory: the first-order estimate must fit in it


@dataclass(frozen=True)
class Crossover:
    """Below ``first_order_below`` (d) a first-order method won at equal wall time; ``evidence`` says where."""

    first_order_below: int
    evidence: str


CROSSOVERS: dict[str, Crossover] = {
    "stationary": Crossover(
        0,
        "sine_gordon_two_body, rel L2, sdze vs sdgd_adam: d = 100, 5 min: 9.62e-3 vs 9.68e-3 (tie); d = 1000, "
        "10 min: 4.93e-4 vs 6.22e-4; d = 10⁵, 30 min: 9.5e-4 vs 0.536",
    ),
    "biharmonic": Crossover(0, "biharmonic_three_body, d = 100, 90 s: sdze 3.63 vs sdgd_adam 4.09 aniso"),
    "time_soft": Crossover(
        0,
        "semilinear heat, 10 min: sdze 5.28e-3 vs 5.94e-3 (d = 10³), 3.90e-3 vs 0.371 (d = 10⁴); allen_cahn_time "
        "d = 10³: 6.6e-4 vs 1.19e-3",
    ),
    "time_hard": Crossover(
        3162,
        "5 min, rel L2, sdze vs sdgd_adam: d = 100: bsb 2.36e-3 vs 1.28e-3, reaction_diffusion 1.81e-2 vs 3.41e-4, "
        "heat on a ball 3.18e-2 vs 1.42e-2; d = 1000: reaction_diffusion 6.29e-2 vs 1.15e-3, heat on a ball "
        "(10 min) 2.98e-2 vs 1.38e-2, but bsb 4.65e-3 vs 7.37e-3 (geometric mean: sdgd_adam); d = 10⁴: bsb 4.43e-3 "
        "vs 9.95e-2",
    ),
}


def family(problem_name: str, pde: str | None) -> str:
    """The problem's row of ``CROSSOVERS``: stationary, biharmonic, time_soft or time_hard."""
    from .build import is_biharmonic  # build imports this module
    from .parabolic.problems import PARABOLIC_CATALOGUE, make_parabolic_problem

    if problem_name in PARABOLIC_CATALOGUE:
        return "time_" + make_parabolic_problem(problem_name, 3).terminal_rule
    if pde is not None:
        time = json.loads(pde).get("time")
        if time is not None:
            return "time_" + time.get("rule", "hard")
    return "biharmonic" if is_biharmonic(problem_name, pde) else "stationary"


def choose(
    problem_name: str, pde: str | None, dim: int, workers: int, zo_knobs_given: list[str], first_order_bytes: int
) -> tuple[str, str]:
    """(method, why) for ``method: "auto"`` by the rules of the module docstring; ``first_order_bytes`` is
    ``memory.estimate`` of the same run with ``sdgd_adam``."""
    if workers > 1:
        return ZO_CHOICE, f"auto: {workers} workers (the first-order baselines run on one)"
    if zo_knobs_given:
        return ZO_CHOICE, f"auto: zeroth-order knobs given ({', '.join(sorted(zo_knobs_given))})"
    fam = family(problem_name, pde)
    row = CROSSOVERS[fam]
    if dim >= row.first_order_below:
        where = f"d ≥ {row.first_order_below}" if row.first_order_below else "every measured d"
        return ZO_CHOICE, f"auto: {fam} problems, sdze measured ahead at {where} ({row.evidence})"
    limit = MEMORY_SHARE * machine_memory_bytes()
    if limit and first_order_bytes > limit:
        return ZO_CHOICE, (
            f"auto: {fam} problems at d < {row.first_order_below} favour sdgd_adam, but its estimated "
            f"{first_order_bytes / 2**30:.2f} GiB exceeds half of this machine's memory"
        )
    why = f"auto: {fam} problems, sdgd_adam measured ahead below d = {row.first_order_below} ({row.evidence})"
    return FIRST_ORDER_CHOICE, why
