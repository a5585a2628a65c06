"""Checkpoint tensors read back in place (sdze_core.state_io) against safetensors' own loader."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from sdze_core import state_io
from sdze_core.state_io import load_into


def _saved(tmp_path):
    g = torch.Generator().manual_seed(0)
    sd = {
        "model.w": torch.randn(7, 301, generator=g),
        "model.b": torch.randn(7, generator=g, dtype=torch.float64),
        "engine.step": torch.tensor(5),
        "engine.U": torch.randn(3, 2, generator=g),
    }
    f = tmp_path / "state.safetensors"
    save_file(sd, str(f), metadata={"note": "x"})
    return f, sd


def test_load_into_fills_live_tensors_in_place_and_returns_the_rest(tmp_path, monkeypatch):
    f, sd = _saved(tmp_path)
    monkeypatch.setattr(state_io, "BLOCK_BYTES", 1000)  # several reads per tensor
    w, b = torch.zeros(7, 301), torch.zeros(7, dtype=torch.float64)
    ptr = w.data_ptr()
    rest = load_into(f, {"model.w": w, "model.b": b})
    assert w.data_ptr() == ptr
    assert torch.equal(w, sd["model.w"]) and torch.equal(b, sd["model.b"])
    ref = load_file(str(f))
    assert set(rest) == {"engine.step", "engine.U"}
    assert all(torch.equal(rest[k], ref[k]) for k in rest)


def test_load_into_converts_when_the_stored_dtype_differs(tmp_path):
    f, sd = _saved(tmp_path)
    w = torch.zeros(7, 301, dtype=torch.float64)
    load_into(f, {"model.w": w})
    assert torch.equal(w, sd["model.w"].double())


def test_load_into_names_missing_tensors(tmp_path):
    f, _ = _saved(tmp_path)
    with pytest.raises(KeyError, match="model.nope"):
        load_into(f, {"model.nope": torch.zeros(1)})


def test_load_into_detects_a_truncated_file(tmp_path):
    f, _ = _saved(tmp_path)
    data = f.read_bytes()
    f.write_bytes(data[:-100])
    with pytest.raises(EOFError):
        load_into(f, {"model.w": torch.zeros(7, 301), "model.b": torch.zeros(7, dtype=torch.float64)})


def test_solver_restores_a_checkpoint_into_its_live_tensors(tmp_path, monkeypatch):
    """Solver.load_checkpoint writes the saved state into the model's own tensors: none is loaded whole."""
    from sdze_core.solver import Solver
    from sdze_core.spec import JobSpec

    spec = {"problem": {"name": "poisson_two_body", "dim": 6}, "solver": {"steps": 2, "batch_size": 8}}
    s = Solver(JobSpec.model_validate(spec).to_config())
    s.local_step(0)
    saved = {k: v.clone() for k, v in s.model.state_dict().items()}
    engine_saved = {k: v.clone() for k, v in s.engine.state_dict().items()}
    s.save_checkpoint(tmp_path / "ck")
    ptrs = {k: v.data_ptr() for k, v in s.model.state_dict().items()}
    s.local_step(1)  # moves the weights and the engine state on
    assert not all(torch.equal(v, saved[k]) for k, v in s.model.state_dict().items())
    whole: list[str] = []
    real_open = state_io.safe_open

    class Recording:
        def __init__(self, *a, **k):
            self.fh = real_open(*a, **k)

        def __enter__(self):
            self.inner = self.fh.__enter__()
            return self

        def __exit__(self, *exc):
            return self.fh.__exit__(*exc)

        def get_tensor(self, name):
            whole.append(name)
            return self.inner.get_tensor(name)

    monkeypatch.setattr(state_io, "safe_open", Recording)
    s.load_checkpoint(tmp_path / "ck")
    assert whole and not [k for k in whole if k.startswith("model.")]  # only the engine's state is loaded whole
    for k, v in s.model.state_dict().items():
        assert v.data_ptr() == ptrs[k] and torch.equal(v, saved[k])
    for k, v in s.engine.state_dict().items():
        assert torch.equal(v, engine_saved[k])


def test_checkpoint_keeps_each_workers_gn_holdout_damping(tmp_path):
    """gn_holdout's per-worker λ (the next step starts from it ÷ 3) is engine state: saved and restored."""
    from sdze_core.solver import Solver
    from sdze_core.spec import JobSpec

    spec = {
        "problem": {"name": "poisson_two_body", "dim": 6},
        "solver": {"steps": 2, "batch_size": 8, "gn_holdout": "on"},
    }
    s = Solver(JobSpec.model_validate(spec).to_config())
    s.local_step(0)
    s.engine.gn_lambda = {0: 3.7, 2: 0.25}
    s.save_checkpoint(tmp_path / "ck")
    fresh = Solver(JobSpec.model_validate(spec).to_config())
    assert fresh.engine.gn_lambda == {}
    fresh.load_checkpoint(tmp_path / "ck")
    assert fresh.engine.gn_lambda == {0: 3.7, 2: 0.25}
