"""Jobs: submit, list, get, cancel, and the progress event stream (SSE)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.sse import KEEPALIVE_COMMENT, format_sse_event

from sdze_core.spec import JobSpec

from .. import admission
from ..auth import current_owner
from ..job_store import TERMINAL, IdempotencyConflict, Job, NotCancellable, QueueFull
from ..problems import PROBLEM, Problem, field_error
from ..schemas import EventList, JobList, JobOut, State, decode_cursor, encode_cursor, iso, render_job

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
Owner = Annotated[str, Depends(current_owner)]

_P = {"content": {PROBLEM: {}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid bearer token", **_P},
    404: {"description": "no such job (or not yours)", **_P},
}
SSE_POLL_S = 0.25
SSE_KEEPALIVE_S = 15.0


def get_job_or_404(request: Request, job_id: str, owner: str) -> Job:
    job = request.app.state.store.get(job_id, owner)
    if job is None:
        raise Problem(404, f"no job {job_id!r}", "not-found")
    return job


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    summary="Submit a job",
    responses={
        **ERRORS,
        400: {"description": "the body is not JSON (invalid-json: line and column)", **_P},
        413: {"description": "body too large", **_P},
        415: {"description": "Content-Type is not application/json", **_P},
        422: {
            "description": "invalid spec (errors[] names each field), Idempotency-Key reused, or not admitted "
            "(not-admitted: workers that cannot be placed, memory estimate over the limit, test set too large)",
            **_P,
        },
        429: {"description": "queue full; see Retry-After", **_P},
    },
)
def submit(
    spec: JobSpec,
    request: Request,
    owner: Owner,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="retry-safe submission (same key + same body → the same job; a different body → 422)",
        ),
    ] = None,
) -> JSONResponse:
    """Queue a solve. Answers 202 with the job and its ``Location``."""
    settings = request.app.state.settings
    if spec.problem.dim > settings.max_dim:
        raise field_error("problem.dim", f"must be ≤ {settings.max_dim} on this server")
    if spec.resources.workers > settings.max_workers:
        raise field_error("resources.workers", f"must be ≤ {settings.max_workers} on this server")
    dispatcher = request.app.state.dispatcher
    admission.check(spec, spec.to_config(), settings, dispatcher.capacity, dispatcher.fresh_capacity)
    canonical = spec.model_dump(mode="json")
    sha = hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    store = request.app.state.store
    try:
        job, created = store.create_job(owner, canonical, sha, idempotency_key, settings.max_queue)
    except IdempotencyConflict as e:
        raise Problem(
            422,
            "Idempotency-Key was already used with a different request body",
            "idempotency-conflict",
            errors=[{"field": "Idempotency-Key", "in": "header", "pointer": "", "msg": "reused with a different body"}],
        ) from e
    except QueueFull as e:
        raise Problem(
            429,
            f"the queue is full ({settings.max_queue} jobs); retry later",
            "queue-full",
            headers={"Retry-After": str(settings.retry_after_s)},
        ) from e
    if created:
        request.app.state.dispatcher.wake()
    headers = {"Location": f"/v1/jobs/{job.id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    pos = store.queued_ahead(job.num) if job.state == "queued" else None
    return JSONResponse(render_job(job, pos), status_code=202, headers=headers)


@router.get("", response_model=JobList, summary="List your jobs (newest first)", responses=ERRORS)
def list_jobs(
    request: Request,
    owner: Owner,
    state: Annotated[State | None, Query(description="only jobs in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=100, description="cursor from the previous page")] = None,
) -> dict[str, Any]:
    before = decode_cursor(after) if after else None
    store = request.app.state.store
    jobs, has_more = store.list(None if owner == "*" else owner, state, limit, before)
    return {
        "data": [render_job(j) for j in jobs],
        "has_more": has_more,
        "next_cursor": encode_cursor(jobs[-1].num) if has_more and jobs else None,
    }


@router.get("/{job_id}", response_model=JobOut, summary="Get a job", responses=ERRORS)
async def get_job(job_id: str, request: Request, owner: Owner) -> dict[str, Any]:
    def read() -> dict[str, Any]:
        job = get_job_or_404(request, job_id, owner)
        pos = request.app.state.store.queued_ahead(job.num) if job.state == "queued" else None
        return render_job(job, pos)

    # The status poll is the hot path: on a local SQLite file a read takes well under a millisecond, cheaper
    # inline than a thread-pool hop; a networked database is read in the pool so it cannot stall the loop.
    return read() if request.app.state.store.local else await run_in_threadpool(read)


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=JobOut,
    summary="Cancel a job",
    responses={**ERRORS, 409: {"description": "the job already finished", **_P}},
)
def cancel(job_id: str, request: Request, owner: Owner) -> dict[str, Any]:
    """Queued jobs are cancelled at once; running ones stop at their next step (``cancel_requested``). Idempotent."""
    get_job_or_404(request, job_id, owner)
    try:
        job = request.app.state.store.request_cancel(job_id)
    except NotCancellable as e:
        cur = request.app.state.store.get(job_id)
        raise Problem(409, f"job already {cur.state if cur else 'gone'}", "not-cancellable") from e
    request.app.state.dispatcher.cancel(job_id)
    return render_job(job)


def _last_event_id(last_event_id: str | None, after: int | None) -> int:
    if after is not None:
        return after
    if last_event_id is None:
        return 0
    try:
        return max(0, int(last_event_id.strip()))
    except ValueError as e:
        raise field_error("Last-Event-ID", "must be an event id (integer)", 422) from e


@router.get(
    "/{job_id}/events",
    summary="Progress events: Server-Sent Events stream, or a JSON page",
    response_model=EventList,
    responses={
        **ERRORS,
        200: {
            "description": "SSE stream (text/event-stream, ids = event seq) or a JSON page with Accept: "
            "application/json",
            "content": {"text/event-stream": {}},
        },
    },
)
async def job_events(
    job_id: str,
    request: Request,
    owner: Owner,
    after: Annotated[int | None, Query(ge=0, le=2**31, description="events after this seq")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="JSON page size")] = 1000,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> Any:
    """The stream sends every stored event after ``Last-Event-ID`` (or ``?after=``) then follows the job live,
    ending after its terminal ``state`` event. ``Accept: application/json`` returns one page instead."""
    store = request.app.state.store
    await run_in_threadpool(get_job_or_404, request, job_id, owner)
    start = _last_event_id(last_event_id, after)
    accept = request.headers.get("accept", "")
    if "application/json" in accept and "text/event-stream" not in accept:
        evs = await run_in_threadpool(store.events_after, job_id, start, limit + 1)
        page = evs[:limit]
        return {
            "data": [{"seq": e.seq, "ts": iso(e.ts), "kind": e.kind, "data": e.data} for e in page],
            "has_more": len(evs) > limit,
            "next_cursor": str(page[-1].seq) if len(evs) > limit else None,
        }
    return StreamingResponse(
        _sse(request, job_id, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _sse(request: Request, job_id: str, cursor: int) -> AsyncIterator[bytes]:
    store = request.app.state.store
    yield format_sse_event(comment="sdze job events", retry=2000)
    last_sent = time.monotonic()
    while True:
        evs = await run_in_threadpool(store.events_after, job_id, cursor, 500)
        for e in evs:
            cursor = e.seq
            data = json.dumps({"seq": e.seq, "ts": iso(e.ts), **e.data}, separators=(",", ":"))
            yield format_sse_event(data_str=data, event=e.kind, id=str(e.seq))
            last_sent = time.monotonic()
            if e.kind == "state" and e.data.get("state") in TERMINAL:
                return
        if not evs:
            job = await run_in_threadpool(store.get, job_id)
            if job is None or (job.state in TERMINAL and job.last_seq <= cursor):
                return
            if await request.is_disconnected():
                return
            if time.monotonic() - last_sent > SSE_KEEPALIVE_S:
                yield KEEPALIVE_COMMENT
                last_sent = time.monotonic()
            await asyncio.sleep(SSE_POLL_S)
