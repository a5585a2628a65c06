"""The training loop: drives any ``Executor`` step by step to completion (SPEC §2, issue: trainer).

Budget: ``solver.steps`` and/or ``solver.time_limit_s`` of *training* time (evaluation and checkpoint time
are measured separately and excluded). With a time budget the learning-rate horizon is fixed once from
the measured speed after ``WARMUP`` steps and checkpointed, so resumed runs replay the same schedule.
Stops: budget reached, ``should_stop()`` true (cancelled), or a non-finite loss (diverged, with a reason).
"""

from __future__ import annotations

import json
import math
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .artifacts import plot_history, write_history, write_json
from .config import RunConfig
from .solver import Executor, LocalExecutor, initial_horizon

WARMUP = 20


class Diverged(RuntimeError):
    """The loss or an update became NaN/inf."""


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
    event: str = "step"  # "step" | "eval" | "checkpoint"


@dataclass
class RunState:
    step: int = 0
    train_s: float = 0.0
    eval_s: float = 0.0
    horizon_fixed: bool = False
    history: list[dict] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)
    comm_bytes: list[int] = field(default_factory=list)


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
        self.last_eval: dict[str, float] = {}
        self.best: dict[str, float] = {}

    # -------------------------------------------------------------------------------------- checkpoints
    def _save(self) -> None:
        t0 = time.perf_counter()
        self.ex.save_checkpoint(self.ckpt_dir)
        st = asdict(self.state)
        write_json(self.ckpt_dir / "run_state.json", {**st, "best": self.best, "last_eval": self.last_eval})
        self.state.eval_s += time.perf_counter() - t0

    def _resume(self) -> bool:
        f = self.ckpt_dir / "run_state.json"
        if not f.exists():
            return False
        self.ex.load_checkpoint(self.ckpt_dir)
        st = json.loads(f.read_text())
        self.best = st.pop("best", {}) or {}
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

    def _evaluate(self) -> dict[str, float]:
        t0 = time.perf_counter()
        m = self.ex.evaluate()
        self.state.eval_s += time.perf_counter() - t0
        self.last_eval = m
        if not self.best or m["rel_l2"] < self.best["rel_l2"]:
            self.best = {"rel_l2": m["rel_l2"], "aniso_ratio": m["aniso_ratio"], "step": self.state.step}
        row = self.state.history[-1] if self.state.history else {"step": 0, "train_s": 0.0, "loss": None}
        row.update(rel_l2=m["rel_l2"], aniso_ratio=m["aniso_ratio"])
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
                self._evaluate()
                st.history.append(
                    {
                        "step": 0,
                        "train_s": 0.0,
                        "loss": None,
                        **{k: self.last_eval[k] for k in ("rel_l2", "aniso_ratio")},
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
        if status != "failed" and (not st.history or st.history[-1].get("rel_l2") is None):
            self._evaluate()
        metrics = self._finish(status, reason)
        if self.progress:
            self.progress(self._progress(st.history[-1].get("loss") or float("nan"), "done"))
        return metrics

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
        )

    def _finish(self, status: str, reason: str | None) -> dict:
        cfg, st = self.cfg, self.state
        info = self.ex.export(self.out_dir) if status != "failed" else {}
        comm = statistics.median(st.comm_bytes) if st.comm_bytes else 0
        params = info.get("params") or (self.ex.describe().get("params") if hasattr(self.ex, "describe") else None)
        metrics = {
            "status": status,
            "reason": reason,
            "method": cfg.solver.method,
            "problem": cfg.problem.name,
            "dim": cfg.problem.dim,
            "workers": cfg.workers,
            "rel_l2": self.last_eval.get("rel_l2"),
            "null_rel_l2": self.last_eval.get("null_rel_l2"),
            "aniso_ratio": self.last_eval.get("aniso_ratio"),
            "best_rel_l2": self.best.get("rel_l2"),
            "best_aniso_ratio": self.best.get("aniso_ratio"),
            "best_step": self.best.get("step"),
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
        }
        write_json(self.out_dir / "metrics.json", metrics)
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
        self.ex.close()
        return metrics
