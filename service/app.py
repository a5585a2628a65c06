"""The FastAPI application: ``create_app(settings)`` wires the store, dispatcher, routers and handlers."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from . import problems
from .dispatcher import Dispatcher
from .edge import EdgeMiddleware
from .job_store import JobStore
from .metrics import Metrics
from .points import PointsDecoder
from .routers import artifacts, health, history, jobs, pages
from .settings import Settings

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("sdze.service")


class LimitsMiddleware:
    """Body-size limits (413 before the app reads a byte too many) and per-route request metrics.

    Pure ASGI, so streamed responses (SSE, downloads) pass through untouched.
    """

    def __init__(self, app: Any, settings: Settings, metrics: Metrics):
        self.app, self.settings, self.metrics = app, settings, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = body_limit(self.settings, path, dict(scope.get("headers", [])).get(b"content-type", b""))
        started = time.perf_counter()
        status_box = {"status": 500}
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = True
                if too_big:
                    resp = problems.problem_response(413, f"request body over {limit} bytes", "too-large", path)
                    await resp(scope, receive, send)
                    self.metrics.observe(scope["method"], "(limit)", 413, started)
                    return
        seen = 0

        async def limited_receive() -> dict:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    # A Starlette HTTPException: FastAPI's body reader re-raises it and the handler renders it.
                    raise problems.Problem(413, f"request body over {limit} bytes", "too-large")
            return msg

        async def tracking_send(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                status_box["status"] = msg["status"]
                route = scope.get("route")
                self.metrics.observe(scope["method"], getattr(route, "path", "(other)"), msg["status"], started)
            await send(msg)

        await self.app(scope, limited_receive, tracking_send)


def body_limit(settings: Settings, path: str, content_type: bytes) -> int:
    """Bytes a request body may have: evaluate takes a large ``.npy`` but a smaller JSON (slower to parse)."""
    if path.endswith("/evaluate"):
        npy = content_type.split(b";", 1)[0].strip().lower() == b"application/x-npy"
        return settings.max_eval_bytes if npy else settings.max_eval_json_bytes
    return settings.max_body_bytes


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the store opens and the dispatcher starts (Ray connects) in the lifespan."""
    settings = settings or Settings.from_env()
    settings.check()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.artifacts_root.mkdir(parents=True, exist_ok=True)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = JobStore(settings.db_url)
        dispatcher = Dispatcher(store, settings)
        app.state.store = store
        app.state.dispatcher = dispatcher
        metrics.watch(store.count_by_state, lambda: dispatcher.ready, lambda: dispatcher.running_count)
        # Ray's core worker installs a C-level SIGTERM handler that ends the process at once, skipping this
        # lifespan's shutdown (stop jobs at a step boundary, re-queue them). Put uvicorn's handlers back, from
        # the main thread, once Ray is connected.
        saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        loop = asyncio.get_running_loop()

        def restore() -> None:
            for sig, handler in saved.items():
                if callable(handler):
                    signal.signal(sig, handler)

        dispatcher.after_connect = lambda: loop.call_soon_threadsafe(restore)
        dispatcher.start()
        app.state.points = PointsDecoder()
        log.info("sdze service: store %s, artifacts %s", settings.db_url, settings.artifacts_root)
        try:
            yield
        finally:
            app.state.points.close()
            dispatcher.stop()
            store.close()

    app = FastAPI(
        title="SDZE job service",
        version="1",
        summary="Solve very high-dimensional PDEs with backprop-free PINNs on Ray",
        description="Submit a job spec, follow its progress, download the trained solution and evaluate it. "
        "Errors are RFC 9457 problem+json. See docs/api.md.",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc come from routers.pages, with assets shipped in the package
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    problems.install(app)
    app.include_router(jobs.router)
    app.include_router(artifacts.router)
    app.include_router(health.router)
    app.include_router(history.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/job", include_in_schema=False)
    async def job_page() -> FileResponse:
        return FileResponse(STATIC / "job.html", media_type="text/html")

    app.add_middleware(EdgeMiddleware, settings=settings)
    app.add_middleware(LimitsMiddleware, settings=settings, metrics=metrics)  # outermost: sees every answer
    return app
