"""Small builders shared by the core tests."""

import torch

from sdze_core.spec import JobSpec


def tiny_spec(**solver) -> JobSpec:
    problem = solver.pop("problem", {"name": "sine_gordon_two_body", "dim": 20})
    model = solver.pop("model", {"width": 16, "depth": 4})
    ev = solver.pop("eval", {"test_points": 500, "every": 50})
    extra = {k: solver.pop(k) for k in ("dtype", "checkpoint_every", "seed") if k in solver}
    solver.setdefault("steps", 40)
    return JobSpec.model_validate({"problem": problem, "model": model, "solver": solver, "eval": ev, **extra})


def params_equal(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.model.params(), b.model.params(), strict=True))
