"""Run artifacts besides the weights: metrics.json, history.csv, loss.png (and time_slices.json, parabolic/)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

# ref_rel_error: relative error at the reference point (terminal-value problems, where it is the only accuracy figure)
# time-dependent problems: error against t, one entry per slice t = 0, T/4, …, T (``parabolic.evaluation.time_slices``)
TIME_SLICES = "time_slices.json"
HISTORY_FIELDS = ("step", "train_s", "loss", "lr", "rel_l2", "aniso_ratio", "val_residual", "ref_rel_error")


def write_json(path: Path, obj: dict) -> None:
    """Atomic JSON write (temporary file + rename); non-finite floats become null."""

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(clean(obj), indent=2, sort_keys=True))
    tmp.replace(path)


def write_history(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in HISTORY_FIELDS})


def plot_history(path: Path, rows: list[dict], null_rel_l2: float | None, title: str) -> None:
    """loss.png: training loss and test rel L2 (and the reference-point error where there is one) against step
    (top) and training time (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    times = [r["train_s"] for r in rows]
    losses = [r["loss"] for r in rows]
    ev = [r for r in rows if r.get("rel_l2") is not None]
    ref = [r for r in rows if r.get("ref_rel_error") is not None]  # time-dependent problems' point reference
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), constrained_layout=True)
    for row, (xs, xe, xlabel) in enumerate(
        [(steps, [r["step"] for r in ev], "step"), (times, [r["train_s"] for r in ev], "training time [s]")]
    ):
        ax = axes[row][0]
        ax.semilogy(xs, losses, lw=0.7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("loss (mean residual²)")
        ax = axes[row][1]
        if ev:
            ax.semilogy(xe, [r["rel_l2"] for r in ev], "o-", ms=3, label="rel L2 (test)")
        if ref:
            xr = [r["step" if row == 0 else "train_s"] for r in ref]
            ax.semilogy(xr, [r["ref_rel_error"] for r in ref], "s-", ms=3, label="rel. error at the reference point")
        if null_rel_l2:
            ax.axhline(null_rel_l2, color="gray", ls="--", label="constant null")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("relative error")
        if ev or ref or null_rel_l2:
            ax.legend(loc="best", fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
