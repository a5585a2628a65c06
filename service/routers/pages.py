"""The web pages beyond the job list: compare view, metrics help, and the API docs served offline.

``/docs`` (Swagger UI) and ``/redoc`` load their scripts from ``/static/vendor`` (shipped in the package,
see its README.md), never from a CDN, so they work on a cluster without internet access. The app must be
built with ``docs_url=None, redoc_url=None`` so these routes replace FastAPI's CDN ones.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

STATIC = Path(__file__).resolve().parents[1] / "static"
VENDOR = "/static/vendor"
router = APIRouter(include_in_schema=False)


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=request.app.title + " — Swagger UI",
        swagger_js_url=f"{VENDOR}/swagger-ui-bundle.js",
        swagger_css_url=f"{VENDOR}/swagger-ui.css",
        swagger_favicon_url=f"{VENDOR}/favicon-32x32.png",
    )


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(
        openapi_url=request.app.openapi_url,
        title=request.app.title + " — ReDoc",
        redoc_js_url=f"{VENDOR}/redoc.standalone.js",
        redoc_favicon_url=f"{VENDOR}/favicon-32x32.png",
        with_google_fonts=False,
    )


@router.get("/compare")
def compare_page() -> FileResponse:
    """Several jobs' curves on one plot: ``/compare?ids=job_a,job_b``."""
    return FileResponse(STATIC / "compare.html", media_type="text/html")


@router.get("/help/metrics")
def metrics_help() -> FileResponse:
    """What loss, rel L2, the constant null and aniso_ratio mean (linked from every page that shows them)."""
    return FileResponse(STATIC / "metrics.html", media_type="text/html")
