"""Response models (they document the API in OpenAPI) and the job resource renderer."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from .job_store import Job
from .problems import field_error

State = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class ProgressOut(BaseModel):
    step: int | None = None
    steps: int | None = None
    fraction: float | None = Field(None, description="step / steps")
    loss: float | None = None
    rel_l2: float | None = Field(None, description="latest relative L2 error on the test set")
    aniso_ratio: float | None = Field(None, description="rel_l2 / constant-null rel_l2 (below 1: learned more)")
    val_residual: float | None = Field(None, description="held-out PDE residual (RMS), with or without an exact u")
    train_s: float | None = None
    steps_per_s: float | None = None
    eta_s: float | None = None
    event: str | None = None


class Links(BaseModel):
    self: str
    events: str
    cancel: str
    artifacts: str
    evaluate: str


class JobOut(BaseModel):
    id: str
    state: State
    reason: str | None = Field(None, description="why the job is in its state (error message when failed)")
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    attempt: int = Field(description="runs started (a restart resumes from the last checkpoint)")
    cancel_requested: bool
    queue_position: int | None = Field(None, description="queued jobs ahead of this one")
    progress: ProgressOut
    metrics: dict[str, Any] | None = Field(None, description="final metrics.json once finished")
    spec: dict[str, Any] = Field(description="the spec with defaults applied")
    spec_sha256: str
    links: Links


class JobList(BaseModel):
    data: list[JobOut]
    has_more: bool
    next_cursor: str | None = Field(None, description="pass as ?after= for the next page")


class EventOut(BaseModel):
    seq: int
    ts: str
    kind: str = Field(description="state | progress")
    data: dict[str, Any]


class EventList(BaseModel):
    data: list[EventOut]
    has_more: bool
    next_cursor: str | None = None


class ArtifactOut(BaseModel):
    name: str
    size: int
    sha256: str
    media_type: str
    url: str


class ArtifactList(BaseModel):
    data: list[ArtifactOut]


class EvaluateOut(BaseModel):
    u: list[float | None]
    n: int
    dim: int


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def render_job(job: Job, queue_position: int | None = None) -> dict[str, Any]:
    base = f"/v1/jobs/{job.id}"
    return {
        "id": job.id,
        "state": job.state,
        "reason": job.reason,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "attempt": job.attempt,
        "cancel_requested": job.cancel_requested,
        "queue_position": queue_position,
        "progress": {k: job.progress.get(k) for k in ProgressOut.model_fields},
        "metrics": job.metrics,
        "spec": job.spec,
        "spec_sha256": job.spec_sha256,
        "links": {
            "self": base,
            "events": base + "/events",
            "cancel": base + "/cancel",
            "artifacts": base + "/artifacts",
            "evaluate": base + "/evaluate",
        },
    }


def encode_cursor(num: int) -> str:
    return base64.urlsafe_b64encode(f"j:{num}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, num = raw.partition(":")
        if kind != "j" or not num.isdigit():
            raise ValueError
        return int(num)
    except ValueError as e:
        raise field_error("after", "not a cursor returned by this API") from e
