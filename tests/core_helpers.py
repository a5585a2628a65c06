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


def assert_refused(problem: dict, field: str, words: str) -> None:
    """A written-out problem is refused naming ``field`` with ``words`` in the message, by the compiler and by the
    job spec (the service's 422)."""
    import pytest
    from pydantic import ValidationError

    from sdze_core.pde.expr import PdeError
    from sdze_core.pde.problem import problem_from_spec

    with pytest.raises(PdeError) as e:
        problem_from_spec(problem)
    assert e.value.field == field and words in e.value.msg, (e.value.field, e.value.msg)
    with pytest.raises(ValidationError) as v:
        JobSpec.model_validate({"problem": problem, "solver": {"method": "sdze", "steps": 1}})
    assert words in str(v.value)
