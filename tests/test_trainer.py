"""The training loop: artifacts, exact resume, divergence, budgets, stop flag, spec errors, CLI."""

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from core_helpers import tiny_spec
from pydantic import ValidationError
from safetensors.torch import load_file

from sdze_core.inference import load_solution
from sdze_core.spec import JobSpec
from sdze_core.trainer import Trainer

ARTIFACTS = {"model.safetensors", "metrics.json", "history.csv", "loss.png", "samples.npz"}
METRIC_KEYS = {
    "rel_l2",
    "best_rel_l2",
    "null_rel_l2",
    "aniso_ratio",
    "steps_done",
    "wall_s",
    "step_s_median",
    "peak_rss_bytes",
    "params",
    "method",
    "dim",
}


@pytest.mark.parametrize("method", ["sdze", "sdgd_adam"])
def test_run_writes_every_artifact_and_metric(tmp_path, method):
    cfg = tiny_spec(method=method, steps=25, eval={"test_points": 300, "every": 10, "sample_points": 50}).to_config()
    events = []
    m = Trainer(cfg, tmp_path, progress=events.append).run()
    assert {p.name for p in tmp_path.iterdir()} >= ARTIFACTS
    assert set(m) >= METRIC_KEYS and m["status"] == "succeeded" and m["steps_done"] == 25
    assert json.loads((tmp_path / "metrics.json").read_text())["rel_l2"] == m["rel_l2"]
    assert math.isclose(m["aniso_ratio"], m["rel_l2"] / m["null_rel_l2"], rel_tol=1e-12)
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(26))
    assert sum(1 for r in rows if r["rel_l2"]) == 4  # steps 0, 10, 20 and the final one
    s = np.load(tmp_path / "samples.npz")
    assert s["x"].shape == (50, 20) and s["u_pred"].shape == s["u_exact"].shape == (50,)
    sol = load_solution(tmp_path)  # the exported weights reproduce the samples' prediction
    torch.testing.assert_close(
        sol.predict(torch.from_numpy(s["x"])), torch.from_numpy(s["u_pred"]), rtol=1e-5, atol=1e-6
    )
    assert events[-1].event == "done" and any(e.event == "eval" for e in events)
    assert load_file(str(tmp_path / "model.safetensors"))["layers.0.weight"].shape == (16, 20)


def stop_after(steps: int):
    """A should_stop that asks to stop once ``steps`` steps have run (the trainer asks once before each step)."""
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > steps

    return stop


@pytest.mark.parametrize(
    "method,extra",
    [
        ("sdze", {}),
        ("sdze", {"w1_probes": "jacobian", "gn_backtracks": 3}),
        ("sdze", {"gn_holdout": "on"}),  # its per-worker damping is engine state
        ("sdze", {"point_lifetime": 7}),  # groups born before the checkpoint are redrawn from their seeds
        ("sdze_published", {}),
        ("sdze_published", {"optimizer_state": "full"}),
        ("sdgd_adam", {}),
    ],
)
def test_resumed_run_ends_bit_identical_to_uninterrupted(tmp_path, method, extra):
    spec = tiny_spec(method=method, steps=30, checkpoint_every=10, eval={"test_points": 100, "every": 10}, **extra)
    full = Trainer(spec.to_config(), tmp_path / "full").run()
    part = Trainer(spec.to_config(), tmp_path / "part", should_stop=stop_after(20)).run()
    assert part["status"] == "cancelled" and part["steps_done"] == 20
    resumed = Trainer(spec.to_config(), tmp_path / "part").run()
    assert resumed["steps_done"] == 30 and resumed["status"] == "succeeded"
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "part" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["rel_l2"] == full["rel_l2"]


def test_diverging_run_fails_with_a_reason(tmp_path):
    # Adam at lr 10 on a fourth-order problem: the jets' fourth derivatives overflow float32 within steps
    spec = tiny_spec(method="sdgd_adam", lr=10, steps=150, problem={"name": "biharmonic_three_body", "dim": 8})
    m = Trainer(spec.to_config(), tmp_path).run()
    assert m["status"] == "failed" and "diverged" in m["reason"] and m["steps_done"] < 150
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "failed"


def test_time_budget_bounds_training_time_and_fixes_the_schedule(tmp_path):
    spec = tiny_spec(method="sdze_published", steps=None, time_limit_s=3.0, eval={"test_points": 100, "every": 1000})
    m = Trainer(spec.to_config(), tmp_path).run()
    assert m["status"] == "succeeded" and 3.0 <= m["wall_s"] < 3.0 + 10 * m["step_s_median"] + 1.0
    state = (
        json.loads((tmp_path / "checkpoint" / "run_state.json").read_text())
        if (tmp_path / "checkpoint").exists()
        else None
    )
    assert state is None or state["horizon_fixed"]


@pytest.mark.parametrize("method", ["sdze", "sdgd_adam"])
def test_lr_decay_steps_fixes_the_horizon_even_under_a_time_budget(tmp_path, method):
    spec = tiny_spec(method=method, steps=None, time_limit_s=1.0, lr_decay_steps=777, eval={"test_points": 50})
    tr = Trainer(spec.to_config(), tmp_path)
    tr.run()
    engine = tr.ex.solver.engine
    assert engine.schedule.horizon == 777
    assert engine.schedule(777) == engine.schedule(10**6) < engine.schedule(0)


@pytest.mark.parametrize(
    "patch,field",
    [
        ({"problem": {"name": "heat_equation", "dim": 10}}, "problem.name"),
        ({"problem": {"name": "poisson_two_body", "dim": 0}}, "problem.dim"),
        ({"problem": {"name": "poisson_two_body", "dim": 10**8}}, "problem.dim"),
        ({"solver": {"method": "sgd"}}, "solver.method"),
        ({"solver": {"steps": "many"}}, "solver.steps"),
        ({"solver": {"lr": float("nan")}}, "solver.lr"),
        ({"solver": {"lr": float("inf")}}, "solver.lr"),
        ({"model": {"width": 128, "colour": "red"}}, "model.colour"),
        ({"solver": {"steps": None, "time_limit_s": None}}, "solver"),
    ],
)
def test_bad_spec_is_refused_naming_the_field(patch, field):
    raw = {"problem": {"name": "poisson_two_body", "dim": 10}}
    raw.update(patch)
    with pytest.raises(ValidationError) as e:
        JobSpec.model_validate(raw)
    locs = {".".join(str(p) for p in err["loc"]) for err in e.value.errors()}
    assert any(loc == field or loc.startswith(field) for loc in locs), locs


def test_cli_solve_runs_a_spec_and_reports_bad_specs(tmp_path):
    spec = tiny_spec(method="sdze", steps=15, eval={"test_points": 100, "every": 5})
    path = tmp_path / "spec.json"
    path.write_text(spec.model_dump_json())
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "-m", "service.cli", "solve", str(path), "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert '"status": "succeeded"' in r.stdout and {p.name for p in out.iterdir()} >= ARTIFACTS
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"problem": {"name": "poisson_two_body", "dim": -3}}))
    r = subprocess.run(
        [sys.executable, "-m", "service.cli", "solve", str(bad), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0 and "problem.dim" in r.stderr


def test_loss_rising_by_orders_of_magnitude_fails_and_exports_the_state_before_it(tmp_path):
    # the published recipe at a rate 100x its default blows up within a few steps, all losses finite at first
    spec = tiny_spec(method="sdze_published", lr=3.0, steps=60, eval={"test_points": 200, "every": 10})
    m = Trainer(spec.to_config(), tmp_path).run()
    assert m["status"] == "failed" and m["diverged"] and "rose" in m["reason"] and m["steps_done"] < 60
    assert m["exported_state"] == "best" and m["best_step"] == 0 and (tmp_path / "model.safetensors").exists()
    # the plain keys hold the diverged state's figures, not the last good evaluation's
    assert m["rel_l2"] is None or m["rel_l2"] > 10 * m["best_rel_l2"]
    assert json.loads((tmp_path / "metrics.json").read_text())["diverged"] is True


def test_exported_artifact_is_the_best_state_by_held_out_residual(tmp_path):
    from sdze_core.seeds import derive
    from sdze_core.validation import validation_residual

    # Adam at 500x its default rate swings: the best held-out residual (step 10 here) is not the final one
    # (lr 0.3 did until the float32-term source moved the trajectory's bits: its last state became its best)
    spec = tiny_spec(method="sdgd_adam", lr=0.5, steps=60, eval={"test_points": 200, "every": 10})
    cfg = spec.to_config()
    m = Trainer(cfg, tmp_path).run()
    assert m["status"] == "succeeded" and m["exported_state"] == "best" and m["best_step"] not in (0, 60)
    assert m["best_val_residual"] < m["val_residual"] and m["best_rel_l2"] != m["rel_l2"]
    sol = load_solution(tmp_path)
    seed = derive(cfg.seed, "validation", cfg.problem.seed)
    v = validation_residual(sol.problem, sol.model, None, seed)["val_residual"]
    assert math.isclose(v, m["best_val_residual"], rel_tol=1e-6)
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    vals = {int(r["step"]): float(r["val_residual"]) for r in rows if r["val_residual"]}
    assert min(vals, key=vals.get) == m["best_step"]
    # metrics.json is written last: every other artifact is in place before the result can be read
    t = (tmp_path / "metrics.json").stat().st_mtime_ns
    assert all((tmp_path / a).stat().st_mtime_ns <= t for a in ARTIFACTS)


def test_final_rel_l2_above_the_null_is_flagged(tmp_path):
    # one step from a random init: still worse than the constant (the output refit, off here, would fix that)
    spec = tiny_spec(method="sdze", steps=1, output_refit_points=0, eval={"test_points": 200, "every": 10})
    m = Trainer(spec.to_config(), tmp_path).run()
    assert m["status"] == "succeeded" and m["aniso_ratio"] > 1
    assert m["above_null"] is True and "above the constant null" in m["warning"]


def test_counters_are_the_runs_not_the_exported_best_states(tmp_path):
    # lr 5 makes the default swing, so the best held-out residual is an earlier state than the final one
    spec = tiny_spec(method="sdze", lr=5.0, steps=40, eval={"test_points": 200, "every": 5})
    m = Trainer(spec.to_config(), tmp_path).run()
    assert m["counters"]["gn_worker_steps"] == m["steps_done"] == 40
    assert json.loads((tmp_path / "metrics.json").read_text())["counters"] == m["counters"]


def test_kill_between_the_checkpoint_renames_resumes_from_the_previous_checkpoint(tmp_path):
    """A kill after checkpoint → checkpoint.old but before checkpoint.next → checkpoint leaves only the previous
    checkpoint, complete (state and run_state.json of one step): the resumed run continues from it and ends equal
    to an uninterrupted run."""
    spec = tiny_spec(method="sdgd_adam", steps=30, checkpoint_every=10, eval={"test_points": 100, "every": 10})
    full = Trainer(spec.to_config(), tmp_path / "full").run()
    Trainer(spec.to_config(), tmp_path / "part", should_stop=stop_after(20)).run()
    ckpt = tmp_path / "part" / "checkpoint"
    ckpt.rename(ckpt.with_name("checkpoint.old"))  # the state a kill between the two renames leaves
    events = []
    resumed = Trainer(spec.to_config(), tmp_path / "part", progress=events.append).run()
    assert resumed["steps_done"] == 30 and resumed["status"] == "succeeded"
    assert resumed["rel_l2"] == full["rel_l2"]
    steps = [e.step for e in events if e.event == "step"]
    assert steps and min(steps) > 20, "restarted from scratch instead of resuming from checkpoint.old"


def test_kill_between_the_best_state_renames_keeps_the_best_state(tmp_path):
    """The best state is swapped in like the checkpoint (``Trainer._write_swapped``): a kill between its renames
    leaves checkpoint_best.old complete (state and best.json of one step), and the resumed run exports what an
    uninterrupted run exports."""
    spec = tiny_spec(method="sdze", lr=5.0, steps=30, checkpoint_every=10, eval={"test_points": 100, "every": 5})
    full = Trainer(spec.to_config(), tmp_path / "full").run()
    Trainer(spec.to_config(), tmp_path / "part", should_stop=stop_after(20)).run()
    best = tmp_path / "part" / "checkpoint_best"
    assert (best / "best.json").exists() and (best / "state.safetensors").exists()
    best.rename(best.with_name("checkpoint_best.old"))
    resumed = Trainer(spec.to_config(), tmp_path / "part").run()
    assert resumed["best_step"] == full["best_step"] and resumed["exported_state"] == full["exported_state"]
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "part" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
