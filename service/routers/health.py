"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from ..problems import Problem

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process serves requests")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the store answers and the dispatcher is connected to Ray",
    responses={503: {"description": "not ready (problem+json)"}},
)
async def readyz(request: Request) -> dict[str, object]:
    d = request.app.state.dispatcher
    try:
        await run_in_threadpool(request.app.state.store.ping)
    except Exception as e:
        raise Problem(503, f"job store unreachable: {type(e).__name__}", "not-ready") from e
    if not d.ready:
        raise Problem(503, d.error or "connecting to Ray", "not-ready", headers={"Retry-After": "2"})
    return {"status": "ready", "running": d.running_count}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    body = await run_in_threadpool(request.app.state.metrics.render)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
