"""The training loop: drives any ``Executor`` step by step to completion (SPEC §2, issue: trainer).

Budget: ``solver.steps`` and/or ``solver.time_limit_s`` of *training* time (evaluation and checkpoint time
are measured separately and excluded). With a time budget the learning-rate horizon is fixed once from
the measured speed after ``WARMUP`` steps and checkpointed, so resumed runs replay the same schedule.
Stops: budget reached, ``should_stop()`` true (cancelled), or divergence (failed, with a reason): a non-finite
loss, a training loss (running median of ``SMOOTH`` steps) ``RISE_FACTOR`` times above its lowest running median,
or a held-out residual ``VAL_RISE_FACTOR`` times above the best one.

Best state: every evaluation also measures the held-out PDE residual (``validation``: a fixed seeded batch, never
the exact solution); the state with the lowest one is checkpointed beside the run's checkpoint, and the exported
artifact is that best state. Metrics report the final state under the plain keys and the best one under best_*.
Artifacts are all written before metrics.json, which is written last (the result is recorded from it).
"""

from __future__ import annotations

import json
import math
import resource
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .artifacts import plot_history, write_history, write_json
from .config import RunConfig
from .parabolic.evaluation import EXTRA_METRICS
from .pde.metrics import PDE_METRICS
from .solver import Executor, LocalExecutor, initial_horizon

WARMUP = 20
SMOOTH = 5  # steps in the running median of the training loss that the rise guard watches
RISE_FACTOR = 1e4  # mean squared residual: four orders of magnitude above its lowest running median
VAL_RISE_FACTOR = 1e2  # RMS held-out residual: the same four orders in squared terms
EVAL_ROW_KEYS = ("rel_l2", "aniso_ratio", "val_residual", "ref_rel_error")  # an evaluation's figures in its history row


class Diverged(RuntimeError):
    """The loss or an update became NaN/inf, or rose by orders of magnitude."""


@dataclass
class Progress:
    step: int
    steps: int | None
    loss: float
    train_s: float
    steps_per_s: float
    rel_l2: float | None = None
    aniso_ratio: float | None = None
    eta_s: float | None = None
    event: str = "step"  # "step" | "eval" | "checkpoint" | "done"
    val_residual: float | None = None
    counters: dict | None = None  # the engine's rejected/zeroed steps and backtracks, where it counts them
    ref_rel_error: float | None = None  # terminal-value problems with a point reference (parabolic/)


@dataclass
class RunState:
    step: int = 0
    train_s: float = 0.0
    eval_s: float = 0.0
    horizon_fixed: bool = False
    history: list[dict] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)
    comm_bytes: list[int] = field(default_factory=list)
    loss_floor: float | None = None  # lowest running median of the training loss (the rise guard's reference)
    constant_start: dict = field(default_factory=dict)  # the fresh run's constant start (``constant_start``), if any
    output_refit: dict = field(default_factory=dict)  # the finished run's output refit (``output_refit``), if any


def _sibling(folder: Path, tag: str) -> Path:
    return folder.with_name(f"{folder.name}.{tag}")


def _complete(folder: Path, marker: str) -> Path | None:
    """The complete copy of a ``Trainer._write_swapped`` folder: itself, or ``folder.old`` when a kill came
    between the two renames; None when neither holds ``marker`` (its JSON, written last into the folder)."""
    for d in (folder, _sibling(folder, "old")):
        if (d / marker).exists():
            return d
    return None


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Trainer:
    """Run a ``RunConfig`` on an executor, writing artifacts to ``out_dir``.

    ``checkpoint_dir`` (default ``out_dir/checkpoint``) holds the last checkpoint; an existing one is resumed.
    ``progress`` is called after every step (and every evaluation); ``should_stop`` is polled every step.
    """

    def __init__(
        self,
        cfg: RunConfig,
        out_dir: Path,
        executor: Executor | None = None,
        progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        checkpoint_dir: Path | None = None,
        progress_every_s: float = 0.0,
    ):
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.ckpt_dir = Path(checkpoint_dir) if checkpoint_dir else self.out_dir / "checkpoint"
        self.ex = executor or LocalExecutor(cfg)
        self.progress = progress
        self.should_stop = should_stop or (lambda: False)
        self.progress_every_s = progress_every_s
        self.state = RunState()
        self.best_dir = self.ckpt_dir.with_name(self.ckpt_dir.name + "_best")
        self.last_eval: dict[str, float] = {}
        self.best: dict[str, float] = {}

    # -------------------------------------------------------------------------------------- checkpoints
    def _save(self) -> None:
        t0 = time.perf_counter()
        st = asdict(self.state)
        self._write_swapped(self.ckpt_dir, {"run_state.json": {**st, "best": self.best, "last_eval": self.last_eval}})
        self.state.eval_s += time.perf_counter() - t0

    def _write_swapped(self, target: Path, files: dict[str, dict]) -> None:
        """The executor's state and ``files`` (JSON) are written into ``target.next`` and swapped in by two renames,
        so a kill at any instant leaves one complete folder — the state and its JSON of the same step — in
        ``target`` or, between the renames, in ``target.old`` (``_complete``). One mechanism for the run's
        checkpoint (with run_state.json) and the best state (with best.json)."""
        nxt, old = _sibling(target, "next"), _sibling(target, "old")
        if nxt.exists():
            shutil.rmtree(nxt)
        self.ex.save_checkpoint(nxt)
        for name, obj in files.items():
            write_json(nxt / name, obj)
        if old.exists():
            shutil.rmtree(old)
        if target.exists():
            target.rename(old)
        nxt.rename(target)
        shutil.rmtree(old, ignore_errors=True)

    def _resume(self) -> bool:
        ckpt = _complete(self.ckpt_dir, "run_state.json")
        if ckpt is None:
            return False
        self.ex.load_checkpoint(ckpt)
        st = json.loads((ckpt / "run_state.json").read_text())
        self.best = st.pop("best", {}) or {}
        best = _complete(self.best_dir, "best.json")  # the best state on disk may be newer than the run checkpoint
        if best is not None:
            self.best = json.loads((best / "best.json").read_text())
        self.last_eval = st.pop("last_eval", {}) or {}
        self.state = RunState(**st)
        return True

    # ------------------------------------------------------------------------------------------ the loop
    def _budget_left(self) -> bool:
        s = self.cfg.solver
        if s.steps is not None and self.state.step >= s.steps:
            return False
        return not (s.time_limit_s is not None and self.state.train_s >= s.time_limit_s)

    def _fix_horizon(self) -> None:
        s, st = self.cfg.solver, self.state
        horizon = initial_horizon(self.cfg)
        if s.time_limit_s is not None and s.lr_decay_steps is None:
            per_step = statistics.median(st.step_times[-WARMUP:])
            est = st.step + int(max(s.time_limit_s - st.train_s, 0.0) / max(per_step, 1e-9))
            horizon = min(horizon, max(est, st.step + 1))
        self.ex.set_horizon(horizon)
        st.horizon_fixed = True

    def _check_rise(self, loss: float) -> None:
        """Fail when the running median of the training loss is RISE_FACTOR above its lowest value so far."""
        st = self.state
        recent = [r["loss"] for r in st.history[-SMOOTH:] if r.get("loss") is not None]
        med = statistics.median(recent) if recent else loss
        if st.loss_floor is not None and med > RISE_FACTOR * st.loss_floor:
            raise Diverged(
                f"training loss rose to {med:.3g} (median of the last {len(recent)} steps) at step {st.step}, "
                f"{med / st.loss_floor:.3g}x its lowest running median {st.loss_floor:.3g}"
            )
        st.loss_floor = med if st.loss_floor is None else min(st.loss_floor, med)

    def _evaluate(self) -> dict[str, float]:
        t0 = time.perf_counter()
        m = self.ex.evaluate()
        self.last_eval = m
        row = self.state.history[-1] if self.state.history else {"step": 0, "train_s": 0.0, "loss": None}
        row.update(
            rel_l2=m["rel_l2"],
            aniso_ratio=m["aniso_ratio"],
            val_residual=m.get("val_residual"),
            ref_rel_error=m.get("ref_rel_error"),  # point-reference problems have no rel_l2 to plot
        )
        v = m.get("val_residual")
        best_v = self.best.get("val_residual", math.inf)
        if v is not None and math.isfinite(v) and v < best_v:
            self.best = {
                "val_residual": v,
                "rel_l2": m["rel_l2"],
                "aniso_ratio": m["aniso_ratio"],
                "ref_rel_error": m.get("ref_rel_error"),  # terminal-value problems with a point reference
                "step": self.state.step,
            }
            self._write_swapped(self.best_dir, {"best.json": self.best})
        self.state.eval_s += time.perf_counter() - t0
        if v is not None and (not math.isfinite(v) or v > VAL_RISE_FACTOR * best_v):
            raise Diverged(
                f"held-out residual {v:.3g} at step {self.state.step}, {VAL_RISE_FACTOR:g}x above the best {best_v:.3g}"
            )
        return m

    def run(self) -> dict:
        """Train to the end of the budget (or stop/divergence) and write all artifacts; returns metrics."""
        resumed = self._resume()  # replaces self.state: bind it only afterwards
        cfg, st = self.cfg, self.state
        if not resumed:
            self.ex.set_horizon(initial_horizon(cfg))
        status, reason = "succeeded", None
        every = cfg.eval.every
        ckpt_every = cfg.checkpoint_every or every
        last_progress = 0.0
        try:
            if not resumed and st.step == 0:
                t0 = time.perf_counter()
                st.constant_start = self.ex.start()  # training work: its time counts in train_s
                st.train_s += time.perf_counter() - t0
                self._evaluate()
                st.history.append(
                    {
                        "step": 0,
                        "train_s": round(st.train_s, 4),  # the constant start's time, if any
                        "loss": None,
                        **{k: self.last_eval.get(k) for k in EVAL_ROW_KEYS},
                    }
                )
            while self._budget_left():
                if self.should_stop():
                    status, reason = "cancelled", "stopped by request"
                    break
                t0 = time.perf_counter()
                res = self.ex.step(st.step)
                dt = time.perf_counter() - t0
                if not math.isfinite(res.loss):
                    raise Diverged(f"loss became {res.loss} at step {st.step}")
                st.step += 1
                st.train_s += dt
                st.step_times.append(dt)
                st.comm_bytes.append(res.comm_bytes)
                st.step_times = st.step_times[-4096:]
                st.comm_bytes = st.comm_bytes[-64:]
                st.history.append({"step": st.step, "train_s": round(st.train_s, 4), "loss": res.loss})
                self._check_rise(res.loss)
                if not st.horizon_fixed and (st.step >= WARMUP or not self._budget_left()):
                    self._fix_horizon()
                event = "step"
                if st.step % every == 0:
                    self._evaluate()
                    event = "eval"
                if st.step % ckpt_every == 0:
                    self._save()
                now = time.perf_counter()
                if self.progress and (event != "step" or now - last_progress >= self.progress_every_s):
                    last_progress = now
                    self.progress(self._progress(res.loss, event))
        except (Diverged, FloatingPointError) as e:
            status, reason = "failed", f"diverged: {e}"
        if status == "succeeded":
            self._refit()
        if not st.history or st.history[-1].get("rel_l2") is None:
            self._final_evaluate(status == "failed")
        metrics = self._finish(status, reason)
        if self.progress:
            self.progress(self._progress(st.history[-1].get("loss") or float("nan"), "done"))
        return metrics

    def _refit(self) -> None:
        """The output refit after the last step (training work: its time counts in train_s). A state it changed
        is evaluated at once into the last step's history row (one row per step; the row's figures before the
        refit, where it had an evaluation, go into the refit's record as ``before``)."""
        st = self.state
        t0 = time.perf_counter()
        st.output_refit = self.ex.refit()
        st.train_s += time.perf_counter() - t0
        if st.output_refit.get("accepted") and st.history:
            row = st.history[-1]
            if row.get("val_residual") is not None:
                st.output_refit["before"] = {k: row.get(k) for k in EVAL_ROW_KEYS}
            row["train_s"] = round(st.train_s, 4)
            self._evaluate()

    def _final_evaluate(self, diverged: bool) -> None:
        """Evaluate the final state. After a divergence its figures are what the run ended with (possibly
        non-finite), never the last good evaluation's, which stays in the best_* keys."""
        if not diverged:
            self._evaluate()
            return
        try:
            self._evaluate()
        except Diverged:
            pass  # the held-out residual confirms the divergence; its figures are already in last_eval
        except Exception as e:  # non-finite weights can make evaluation itself fail
            self.last_eval = {"rel_l2": float("nan"), "aniso_ratio": float("nan"), "eval_error": str(e)}

    def _counters(self) -> dict | None:
        fn = getattr(self.ex, "counters", None)
        return dict(fn()) if callable(fn) else None

    def _progress(self, loss: float, event: str) -> Progress:
        st, s = self.state, self.cfg.solver
        med = statistics.median(st.step_times[-50:]) if st.step_times else 0.0
        eta = None
        if med > 0:
            left = []
            if s.steps is not None:
                left.append((s.steps - st.step) * med)
            if s.time_limit_s is not None:
                left.append(max(s.time_limit_s - st.train_s, 0.0))
            eta = min(left) if left else None
        return Progress(
            st.step,
            s.steps,
            loss,
            st.train_s,
            1.0 / med if med > 0 else 0.0,
            self.last_eval.get("rel_l2"),
            self.last_eval.get("aniso_ratio"),
            eta,
            event,
            self.last_eval.get("val_residual"),
            self._counters(),
            self.last_eval.get("ref_rel_error"),
        )

    def _export(self, status: str) -> tuple[dict, str | None]:
        """Export the best state by held-out residual (or the final one when it is the best, or none is known);
        after a divergence only a best state that was reached before it."""
        best = _complete(self.best_dir, "best.json") if self.best else None
        if best is not None and self.best.get("step") != self.state.step:
            self.ex.load_checkpoint(best)
            return self.ex.export(self.out_dir), "best"
        if status == "failed":
            return {}, None
        return self.ex.export(self.out_dir), "final"

    def _finish(self, status: str, reason: str | None) -> dict:
        cfg, st = self.cfg, self.state
        ev = self.last_eval
        counters = self._counters()  # before the export: loading the best state would bring back its counters
        info, exported = self._export(status)
        comm = statistics.median(st.comm_bytes) if st.comm_bytes else 0
        params = info.get("params") or (self.ex.describe().get("params") if hasattr(self.ex, "describe") else None)
        aniso = ev.get("aniso_ratio")
        metrics = {
            "status": status,
            "reason": reason,
            "diverged": status == "failed" and (reason or "").startswith("diverged"),
            "method": cfg.solver.method,
            "method_choice": cfg.solver.method_choice or None,  # why method "auto" chose it (null: the spec named it)
            "problem": cfg.problem.name,
            "dim": cfg.problem.dim,
            "workers": cfg.workers,
            # the final state's figures, also after a divergence (then possibly non-finite → null)
            "rel_l2": ev.get("rel_l2"),
            "null_rel_l2": ev.get("null_rel_l2"),
            "aniso_ratio": aniso,
            "above_null": None if aniso is None or not math.isfinite(aniso) else aniso > 1.0,
            "val_residual": ev.get("val_residual"),
            "val_points": ev.get("val_points"),
            # the best state by held-out residual (what is exported), with its test accuracy where u* is known
            "best_val_residual": self.best.get("val_residual"),
            "best_rel_l2": self.best.get("rel_l2"),
            "best_aniso_ratio": self.best.get("aniso_ratio"),
            "best_step": self.best.get("step"),
            "best_ref_rel_error": self.best.get("ref_rel_error"),
            # terminal-value problems (parabolic/): reference-point error, terminal-only null, best constant K
            **{k: ev[k] for k in EXTRA_METRICS if k in ev},
            # user PDEs (pde/): residual and boundary error always, rel L2 / null only where u* exists
            **{k: ev[k] for k in PDE_METRICS if k in ev},
            "exported_state": exported,
            "counters": counters,
            "steps_done": st.step,
            "wall_s": round(st.train_s, 3),
            "eval_s": round(st.eval_s, 3),
            "step_s_median": statistics.median(st.step_times) if st.step_times else None,
            "peak_rss_bytes": max(peak_rss_bytes(), int(info.get("peak_rss_bytes", 0))),
            "params": params,
            "comm_bytes_per_step": comm,
            "allreduce_bytes_per_step": 4 * params if params else None,
            "test_points": cfg.eval.test_points,
            "final_loss": st.history[-1].get("loss") if st.history else None,
            "constant_start": st.constant_start or None,
            "output_refit": st.output_refit or None,
        }
        warnings = []
        if aniso is not None and math.isfinite(aniso) and aniso > 1.0:
            warnings.append(f"final rel L2 is above the constant null (aniso_ratio {aniso:.3g})")
        flat, rel = ev.get("null_flat_rel_l2"), ev.get("rel_l2")
        if flat is not None and rel is not None and not rel < flat:  # time-dependent problems: u ≡ c (evaluation)
            metrics["above_null"] = True
            warnings.append(f"final rel L2 {rel:.3g} is not below the flat null u ≡ c ({flat:.3g})")
        if warnings:
            metrics["warning"] = "; ".join(warnings)
        write_history(self.out_dir / "history.csv", st.history)
        try:
            plot_history(
                self.out_dir / "loss.png",
                st.history,
                metrics["null_rel_l2"],
                f"{cfg.solver.method} on {cfg.problem.name}, d={cfg.problem.dim}",
            )
        except Exception as e:  # a plot must never fail a solve
            metrics["plot_error"] = str(e)
        write_json(self.out_dir / "metrics.json", metrics)  # last: every other artifact is already in place
        self.ex.close()
        return metrics
