"""A job's training history (the curves' data), served incrementally while it runs.

Two sources, one row format (``sdze_core.artifacts.HISTORY_FIELDS``: step, train_s, loss, lr, rel_l2,
aniso_ratio, val_residual, ref_rel_error, plus any residual metrics a problem without an exact solution reports):

- ``history.csv`` in the job's artifacts folder: every step, written by the trainer when the run ends
  (succeeded, cancelled or diverged), so a finished job's curves are complete.
- the job's stored progress events while no ``history.csv`` exists (running, or lost with its worker): the
  dispatcher stores a step event at most every ``progress_interval_s`` and every evaluation, so these curves
  are thinned. Test metrics come only from evaluation rows (a step event repeats the last evaluation).

A client polls ``?after=<last step it has>``; when ``source`` changes (``events`` → ``history.csv``) it reloads
from the start (the file has the steps the events skipped). Should the trainer write ``history.csv`` while it
runs (e.g. at each checkpoint), the rows after the file's last step come from the events (``history.csv+events``).
"""

from __future__ import annotations

import csv
import math
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from ..job_store import TERMINAL, Job
from ..problems import Problem
from ..reasons import strip_ansi
from .jobs import ERRORS, Owner, get_job_or_404

router = APIRouter(prefix="/v1/jobs", tags=["history"])
HISTORY = "history.csv"
ERROR_LOG = "error.log"
EVAL_EVENTS = frozenset({"eval", "done"})  # progress events whose test metrics were measured at their step
EVAL_KEYS = ("rel_l2", "aniso_ratio", "ref_rel_error")  # test metrics an evaluation event carries
RESIDUAL_PREFIXES = ("val_residual", "residual_", "boundary_")  # what problems without an exact solution report
EVENTS_PAGE = 5000


class HistoryRow(BaseModel):
    model_config = {"extra": "allow"}
    step: int
    train_s: float | None = Field(None, description="training time [s] up to this step (evaluation excluded)")
    loss: float | None = Field(None, description="mean squared PDE residual on the step's batch")
    lr: float | None = None
    rel_l2: float | None = Field(None, description="relative L2 error on the test set (evaluation rows only)")
    aniso_ratio: float | None = Field(None, description="rel_l2 / null_rel_l2: below 1 the model beat a constant")
    ref_rel_error: float | None = Field(
        None, description="|u(0, x0) - u_ref| / |u_ref| at the reference point (time-dependent problems; eval rows)"
    )


class HistoryOut(BaseModel):
    data: list[HistoryRow]
    source: str = Field(description="history.csv (every step), events (thinned, while running) or history.csv+events")
    complete: bool = Field(description="the job has finished and data comes from its history.csv")
    has_more: bool
    next_after: int | None = Field(None, description="pass as ?after= for the next page (the last step sent)")
    null_rel_l2: float | None = Field(None, description="rel L2 of the best constant multiple of the boundary factor")
    state: str


def _num(v: str) -> float | int | None:
    if v == "":
        return None
    try:
        f = float(v)
    except ValueError:
        return None
    if not math.isfinite(f):  # not JSON; a diverged run's last loss reads as missing
        return None
    return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f


class _CsvCache:
    """Parsed history.csv files keyed by (path, mtime, size): a long run's file is parsed once, not per page."""

    def __init__(self, size: int = 8):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def rows(self, path: Path) -> list[dict[str, Any]]:
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size)
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        with path.open(newline="") as fh:
            rows = [{k: _num(v or "") for k, v in r.items() if k} for r in csv.DictReader(fh)]
        rows = [r for r in rows if isinstance(r.get("step"), int)]
        with self.lock:
            self.items[key] = rows
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return rows


_csv = _CsvCache()


def rows_from_events(store: Any, job_id: str) -> list[dict[str, Any]]:
    """One row per step seen in the job's progress events (a later event for a step updates its row)."""
    by_step: dict[int, dict[str, Any]] = {}
    seq = 0
    while True:
        evs = store.events_after(job_id, seq, EVENTS_PAGE)
        for e in evs:
            seq = e.seq
            d = e.data
            if e.kind != "progress" or not isinstance(d.get("step"), int):
                continue
            row = by_step.setdefault(d["step"], {"step": d["step"]})
            if d.get("train_s") is not None:
                row["train_s"] = d["train_s"]
            if d["step"] > 0 and d.get("loss") is not None:
                row["loss"] = d["loss"]
            if d.get("event") in EVAL_EVENTS:
                for k, v in d.items():
                    if (k in EVAL_KEYS or k.startswith(RESIDUAL_PREFIXES)) and v is not None:
                        row[k] = v
        if len(evs) < EVENTS_PAGE:
            break
    return [by_step[s] for s in sorted(by_step)]


def null_rel_l2(job: Job, rows: list[dict[str, Any]]) -> float | None:
    """The constant null: from metrics.json once finished, else rel_l2 / aniso_ratio of an evaluation row."""
    if job.metrics and job.metrics.get("null_rel_l2") is not None:
        return float(job.metrics["null_rel_l2"])
    for r in rows:
        rel, aniso = r.get("rel_l2"), r.get("aniso_ratio")
        if rel is not None and aniso:
            return float(rel) / float(aniso)
    return None


@router.get("/{job_id}/history", response_model=HistoryOut, summary="Training history (curves)", responses=ERRORS)
def history(
    job_id: str,
    request: Request,
    owner: Owner,
    after: Annotated[int, Query(ge=-1, le=2**31, description="only rows with step > after")] = -1,
    limit: Annotated[int, Query(ge=1, le=100_000, description="rows per page")] = 20_000,
) -> dict[str, Any]:
    """Rows ordered by step; ``complete`` once the job finished and its ``history.csv`` is read."""
    job = get_job_or_404(request, job_id, owner)
    path = request.app.state.dispatcher.job_dir(job_id) / HISTORY
    store = request.app.state.store
    if path.is_file():
        rows, source = _csv.rows(path), HISTORY
        if job.state not in TERMINAL:  # a trainer that writes the file as it goes: newer steps are in the events
            last = rows[-1]["step"] if rows else -1
            tail = [r for r in rows_from_events(store, job_id) if r["step"] > last]
            if tail:
                rows, source = rows + tail, HISTORY + "+events"
    else:
        rows, source = rows_from_events(store, job_id), "events"
    page = [r for r in rows if r["step"] > after]
    more = len(page) > limit
    page = page[:limit]
    return {
        "data": page,
        "source": source,
        "complete": source == HISTORY and job.state in TERMINAL,
        "has_more": more,
        "next_after": page[-1]["step"] if page else (after if after >= 0 else None),
        "null_rel_l2": null_rel_l2(job, rows),
        "state": job.state,
    }


@router.get(
    "/{job_id}/log",
    summary="The job's full failure text (error.log), or its reason",
    response_class=PlainTextResponse,
    responses={**ERRORS, 200: {"description": "plain text", "content": {"text/plain": {}}}},
)
def log(job_id: str, request: Request, owner: Owner) -> PlainTextResponse:
    """``error.log`` when the dispatcher wrote one (failed jobs: reason and traceback), else the stored reason."""
    job = get_job_or_404(request, job_id, owner)
    path = request.app.state.dispatcher.job_dir(job_id) / ERROR_LOG
    if path.is_file():
        text = path.read_text(errors="replace")
    elif job.reason:
        text = strip_ansi(job.reason) + "\n"
    else:
        raise Problem(404, f"job {job_id} has no failure log (state {job.state})", "not-found")
    headers = {"Content-Disposition": f'attachment; filename="{job_id}-{ERROR_LOG}"'}
    return PlainTextResponse(text, headers=headers)
