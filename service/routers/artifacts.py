"""Artifacts (list, streamed download) and evaluation of a trained solution at user points."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response

from sdze_core.parabolic.problems import PARABOLIC_NAMES

from ..points import NPY, EvaluateIn
from ..problems import PROBLEM, Problem, field_error
from ..schemas import ArtifactList, EvaluateOut
from .jobs import ERRORS, Owner, get_job_or_404

router = APIRouter(prefix="/v1/jobs", tags=["artifacts"])
_P = {"content": {PROBLEM: {}}}


@router.get("/{job_id}/artifacts", response_model=ArtifactList, summary="List a job's artifacts", responses=ERRORS)
def list_artifacts(job_id: str, request: Request, owner: Owner) -> dict[str, Any]:
    """Files appear once the job finished: model.safetensors, metrics.json, history.csv, loss.png, samples.npz."""
    get_job_or_404(request, job_id, owner)
    items = request.app.state.store.list_artifacts(job_id)
    return {
        "data": [
            {
                **{k: a[k] for k in ("name", "size", "sha256", "media_type")},
                "url": f"/v1/jobs/{job_id}/artifacts/{a['name']}",
            }
            for a in items
        ]
    }


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of ``If-None-Match`` (a list of tags, or ``*``) with our strong ``etag``."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


@router.api_route(
    "/{job_id}/artifacts/{name}",
    methods=["GET", "HEAD"],
    summary="Download an artifact (streamed; HEAD, and If-None-Match → 304)",
    response_class=FileResponse,
    responses={
        **ERRORS,
        200: {"description": "the file; ETag is its quoted sha256", "content": {"application/octet-stream": {}}},
        304: {"description": "If-None-Match holds the current ETag: not modified, no body"},
    },
)
def download(job_id: str, request: Request, owner: Owner, name: Annotated[str, Path(max_length=255)]) -> Response:
    get_job_or_404(request, job_id, owner)
    # Only names recorded in the store are served, so a crafted name can never leave the job's folder.
    rec = next((a for a in request.app.state.store.list_artifacts(job_id) if a["name"] == name), None)
    path = request.app.state.dispatcher.job_dir(job_id) / name
    if rec is None or not path.is_file():
        raise Problem(404, f"job {job_id} has no artifact {name!r}", "not-found")
    # The content hash is the validator: it changes exactly when the bytes do (mtime-based tags do not).
    headers = {"ETag": f'"{rec["sha256"]}"', "X-Content-SHA256": rec["sha256"], "Cache-Control": "private, no-cache"}
    if etag_matches(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=rec["media_type"], filename=name, headers=headers)


class _SolutionCache:
    """Loaded solutions of recently evaluated jobs (loading parses safetensors and rebuilds the problem)."""

    def __init__(self, size: int = 4):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, job_id: str, out_dir: Any) -> Any:
        from sdze_core.inference import load_solution

        with self.lock:
            if job_id in self.items:
                self.items.move_to_end(job_id)
                return self.items[job_id]
        sol = load_solution(out_dir)
        with self.lock:
            self.items[job_id] = sol
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return sol


_cache = _SolutionCache()


@router.post(
    "/{job_id}/evaluate",
    summary="Evaluate the trained solution at points",
    response_model=EvaluateOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": EvaluateIn.model_json_schema()},
                NPY: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
    responses={
        **ERRORS,
        200: {
            "description": "u at the points; .npy when Accept (or the request) is application/x-npy",
            "content": {NPY: {}},
        },
        409: {"description": "the job has no trained model (yet)", **_P},
        400: {"description": "the body is not JSON (invalid-json)", **_P},
        413: {"description": "too many points or bytes (JSON: max_eval_json_bytes, .npy: max_eval_bytes)", **_P},
        415: {"description": "unsupported content type", **_P},
        422: {"description": "malformed points or wrong dimension", **_P},
    },
)
async def evaluate(job_id: str, request: Request, owner: Owner) -> Response:
    """``{"points": [[x_1, …, x_d], …]}`` → ``{"u": […]}``; or an (n, d) ``.npy`` in, an (n,) ``.npy`` out."""
    settings = request.app.state.settings
    job = await run_in_threadpool(get_job_or_404, request, job_id, owner)
    body = await request.body()
    ctype = request.headers.get("content-type", "application/json").lower()
    # Decoding up to max_eval_json_bytes of JSON takes seconds and holds the GIL: done in another process, so
    # status polls and event streams keep being served meanwhile (service.points).
    x = await request.app.state.points.decode(body, ctype, settings.max_eval_points)
    out_dir = request.app.state.dispatcher.job_dir(job_id)
    if job.state not in ("succeeded", "cancelled") or not (out_dir / "model.safetensors").is_file():
        raise Problem(409, f"job is {job.state}; it has no trained model to evaluate", "no-model")
    # time-dependent problems (catalogue or written out with a time block): a point is (x, t)
    timed = job.spec["problem"].get("name") in PARABOLIC_NAMES or job.spec["problem"].get("time") is not None
    dim = int(job.spec["problem"]["dim"]) + int(timed)
    if x.shape[1] != dim:
        what = "the job's problem.dim, then t" if timed else "the job's problem.dim"
        raise field_error("points", f"each point needs {dim} coordinates ({what}), got {x.shape[1]}")

    def run() -> np.ndarray:
        import torch

        sol = _cache.get(job_id, out_dir)
        return sol.predict(torch.from_numpy(x)).numpy()

    u = await run_in_threadpool(run)
    accept = request.headers.get("accept", "")
    if NPY in accept or (ctype.startswith(NPY) and "application/json" not in accept):
        buf = io.BytesIO()
        np.save(buf, u.astype(np.float64), allow_pickle=False)
        return Response(buf.getvalue(), media_type=NPY)
    vals = [float(v) if np.isfinite(v) else None for v in u]
    return JSONResponse({"u": vals, "n": len(vals), "dim": dim})
