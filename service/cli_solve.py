"""``sdze solve``: run one job spec here (or on Ray with ``--workers``/``--ray-address``) and print its metrics."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _load_spec(path: str, workers: int | None = None):
    """The validated spec (``--workers`` applied before validation, so it is checked with the rest)."""
    from pydantic import ValidationError

    from sdze_core.spec import JobSpec

    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"error: cannot read spec {path}: {e}")
    if workers is not None and isinstance(raw, dict):
        raw = {**raw, "resources": {**(raw.get("resources") or {}), "workers": workers}}
    try:
        return JobSpec.model_validate(raw)
    except ValidationError as e:
        sys.exit(f"error: invalid spec {path}: {spec_errors_line(e.errors())}")


def spec_errors_line(errors: list[dict]) -> str:
    """All validation errors on one line; a conflict that names several fields is printed once with all of them."""
    by_msg: dict[str, list[str]] = {}
    for err in errors:
        by_msg.setdefault(err["msg"], []).append(".".join(str(p) for p in err["loc"]) or "(root)")
    return "; ".join(f"{', '.join(fields)}: {msg}" for msg, fields in by_msg.items())


def _progress_bar(total: int | None):
    from tqdm import tqdm

    bar = tqdm(total=total, unit="step", dynamic_ncols=True, mininterval=0.5)

    def update(p) -> None:
        bar.n = p.step
        post = {"loss": f"{p.loss:.3e}"}
        if p.rel_l2 is not None:
            post["rel_l2"] = f"{p.rel_l2:.3e}"
            post["aniso"] = f"{p.aniso_ratio:.3f}"
        if p.ref_rel_error is not None:  # time-dependent problems with a point reference
            post["ref_err"] = f"{p.ref_rel_error:.3e}"
        bar.set_postfix(post, refresh=False)
        bar.refresh()
        if p.event == "done":
            bar.close()

    return update


def cmd_solve(args: argparse.Namespace) -> int:
    from sdze_core.artifacts import TIME_SLICES

    from .client_cli import slices_table

    spec = _load_spec(args.spec, workers=args.workers)
    cfg = spec.to_config()
    out = Path(args.out)
    update = None if args.quiet else _progress_bar(cfg.solver.steps)
    if cfg.workers > 1 or args.ray_address:
        from worker.runner import solve_on_ray

        metrics = solve_on_ray(spec, out, ray_address=args.ray_address, progress=update)
    else:
        from sdze_core.trainer import Trainer

        metrics = Trainer(cfg, out, progress=update, progress_every_s=0.5).run()
    keys = (
        "status",
        "reason",
        "rel_l2",
        "best_rel_l2",
        "null_rel_l2",
        "aniso_ratio",
        "steps_done",
        "wall_s",
        "step_s_median",
        "peak_rss_bytes",
        "params",
    )
    # time-dependent problems: the reference-point error and the terminal-only null, where they exist
    extra = ("ref_rel_error", "best_ref_rel_error", "ref_null_rel_error", "null_terminal_rel_l2")
    print(json.dumps({k: metrics.get(k) for k in keys} | {k: metrics[k] for k in extra if k in metrics}, indent=2))
    slices = out / TIME_SLICES
    if slices.is_file():
        print(slices_table(json.loads(slices.read_text())))
    names = "metrics.json, history.csv, loss.png, samples.npz, model.safetensors" + (
        f", {TIME_SLICES}" if slices.is_file() else ""
    )
    print(f"artifacts: {out.resolve()}  ({names})")
    return 0 if metrics.get("status") == "succeeded" else 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``solve`` verb to the ``sdze`` parser."""
    s = sub.add_parser("solve", help="run one job in this process (or on Ray with --workers/--ray-address)")
    s.add_argument("spec", help="job spec JSON file")
    s.add_argument("--out", required=True, help="output folder for artifacts")
    s.add_argument("--workers", type=int, default=None, help="Ray workers (overrides resources.workers)")
    s.add_argument("--ray-address", default=None, help="attach to a Ray cluster (default: RAY_ADDRESS or local)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_solve)
