"""Every knob declared once (``sdze_core.knobs``): spec fields, config dataclasses, presets and docs agree with it."""

import dataclasses
import pathlib

import pytest
from core_helpers import tiny_spec
from pydantic import ValidationError

from sdze_core.config import FIRST_ORDER_METHODS, METHODS, PRESETS, AdamConfig, ZOConfig
from sdze_core.knobs import ADAM_KNOBS, BY_NAME, KNOBS, markdown_table
from sdze_core.spec import JobSpec, SolverSpec

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "method.md"
PROBLEM = {"name": "poisson_two_body", "dim": 10}


def test_config_dataclasses_hold_exactly_the_preset_knobs_with_their_types_and_no_defaults():
    zo = {f.name: f for f in dataclasses.fields(ZOConfig)}
    assert set(zo) == {k.name for k in KNOBS if k.preset}
    for name, f in zo.items():
        assert f.type == BY_NAME[name].type.__name__, name
        assert f.default is dataclasses.MISSING, f"{name}: a default outside the presets"
    adam = {f.name for f in dataclasses.fields(AdamConfig)}
    assert adam == set(ADAM_KNOBS) and all(f.default is dataclasses.MISSING for f in dataclasses.fields(AdamConfig))


@pytest.mark.parametrize("method", METHODS)
def test_every_preset_is_complete_and_inside_every_knob_range(method):
    preset = PRESETS[method]
    assert isinstance(preset, AdamConfig if method in FIRST_ORDER_METHODS else ZOConfig)
    for f in dataclasses.fields(preset):
        value = getattr(preset, f.name)
        assert BY_NAME[f.name].check(value) is None, (method, f.name, value)


def test_solver_spec_fields_are_the_knobs_in_order():
    assert list(SolverSpec.model_fields) == [k.name for k in KNOBS]


@pytest.mark.parametrize("knob", KNOBS, ids=lambda k: k.name)
def test_spec_accepts_and_refuses_what_the_knob_declares(knob):
    """The boundary values of the registry pass the spec, values just outside fail: generated spec = registry."""
    inside, outside = [], []
    if knob.choices:
        inside, outside = list(knob.choices), ["nonsense"]
    elif knob.type is bool:
        inside, outside = [True, False], ["yes"]
    else:
        for bound, ok in ((knob.ge, True), (knob.le, True), (knob.gt, False), (knob.lt, False)):
            if bound is None:
                continue
            v = knob.type(bound)
            (inside if ok else outside).append(v)
            step = 1 if knob.type is int else abs(bound) * 1e-3 + 1e-3
            if bound in (knob.ge, knob.gt):
                outside.append(knob.type(bound - step)) if ok else inside.append(knob.type(bound + step))
            else:
                outside.append(knob.type(bound + step)) if ok else inside.append(knob.type(bound - step))
    for v in inside:
        assert knob.check(v) is None, (knob.name, v)
        SolverSpec.model_validate({knob.name: v})
    for v in outside:
        assert knob.check(v) is not None, (knob.name, v)
        with pytest.raises(ValidationError):
            SolverSpec.model_validate({knob.name: v})


@pytest.mark.parametrize("knob", [k for k in KNOBS if k.preset], ids=lambda k: k.name)
def test_every_preset_knob_is_reachable_from_a_spec(knob):
    """Setting a knob in a spec changes the built configuration (no knob only a preset can set)."""
    zo_method = "sdze_published"
    preset = getattr(PRESETS[zo_method], knob.name)
    if knob.choices:
        other = next(c for c in knob.choices if c != preset)
    elif knob.type is bool:
        other = not preset
    elif knob.type is int:  # one step inside the range (a preset may sit on its upper bound: "never")
        other = preset + 1 if knob.le is None or preset + 1 <= knob.le else preset - 1
    else:
        other = (preset + (knob.le or 1.0)) / 2
    extra = {}
    if (knob.name, other) == ("w1_probes", "jacobian"):
        extra = dict(update="gn", gradient="forward", w1_basis="data")
    if (knob.name, other) == ("perturbation", "full"):
        extra = dict(gradient="two_point")
    if (knob.name, other) == ("optimizer_state", "full"):
        extra = dict(update="sgd")
    if (knob.name, other) == ("gn_holdout", "on"):
        extra = dict(update="gn", gn_backtracks=3)
    cfg = tiny_spec(problem=PROBLEM, method=zo_method, **{knob.name: other}, **extra).to_config()
    assert getattr(cfg.solver.zo, knob.name) == other
    if knob.name in ADAM_KNOBS:
        assert getattr(tiny_spec(problem=PROBLEM, method="sdgd_adam", **{knob.name: other}).to_config().solver.adam,
                       knob.name) == other  # fmt: skip


def test_docs_knob_table_is_generated_from_the_registry():
    text = DOC.read_text()
    begin, end = "<!-- knobs:begin (generated: python -m sdze_core.knobs) -->", "<!-- knobs:end -->"
    assert begin in text and end in text
    table = text.split(begin, 1)[1].split(end, 1)[0].strip()
    assert table == markdown_table(), "docs/method.md's knob table drifted: run python -m sdze_core.knobs"


def test_a_spec_without_budget_or_with_a_first_order_method_and_zo_knobs_is_refused():
    with pytest.raises(ValidationError, match="steps"):
        JobSpec.model_validate({"problem": PROBLEM, "solver": {"steps": None}})
    with pytest.raises(ValidationError, match="first-order"):
        JobSpec.model_validate({"problem": PROBLEM, "solver": {"method": "sdgd_adam", "q": 4}})


@pytest.mark.parametrize("method", METHODS)
def test_a_dumped_spec_validates_again(method):
    """Stored specs (model_dump: every preset knob present as null) are read back unchanged."""
    spec = JobSpec.model_validate({"problem": PROBLEM, "solver": {"method": method}})
    again = JobSpec.model_validate(spec.model_dump(mode="json"))
    assert again.to_config() == spec.to_config()


def test_gn_holdout_auto_is_on_where_the_batch_spans_much_of_the_space():
    from sdze_core.config import SolverConfig, holdout_on

    auto = SolverConfig(batch_size=100)  # the sdze preset: gn_holdout "auto"
    assert PRESETS["sdze"].gn_holdout == "auto"
    assert holdout_on(auto, 100, False) and holdout_on(auto, 499, False)
    assert not holdout_on(auto, 500, False) and not holdout_on(auto, 1000, False)
    assert not holdout_on(auto, 100, True)  # time-dependent problems: not measured, off
    assert holdout_on(SolverConfig(batch_size=400), 1000, False)  # the rule reads d/N, not d
    sgd = dataclasses.replace(PRESETS["sdze"], update="sgd")
    assert not holdout_on(SolverConfig(zo=sgd), 100, False)  # auto needs a Gauss–Newton step to judge
    on = dataclasses.replace(PRESETS["sdze"], gn_holdout="on")
    assert holdout_on(SolverConfig(zo=on), 10**6, True)
    assert not holdout_on(SolverConfig(zo=PRESETS["sdze_published"]), 100, False)
