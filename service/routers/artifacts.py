"""Artifacts (list, streamed download) and evaluation of a trained solution at user points."""

from __future__ import annotations

import io
import json
import threading
from collections import OrderedDict
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, ValidationError

from ..problems import PROBLEM, Problem, field_error, validation_errors
from ..schemas import ArtifactList, EvaluateOut
from .jobs import ERRORS, Owner, get_job_or_404

router = APIRouter(prefix="/v1/jobs", tags=["artifacts"])
NPY = "application/x-npy"
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


@router.get(
    "/{job_id}/artifacts/{name}",
    summary="Download an artifact (streamed)",
    response_class=FileResponse,
    responses={**ERRORS, 200: {"description": "the file", "content": {"application/octet-stream": {}}}},
)
def download(job_id: str, request: Request, owner: Owner, name: Annotated[str, Path(max_length=255)]) -> FileResponse:
    get_job_or_404(request, job_id, owner)
    # Only names recorded in the store are served, so a crafted name can never leave the job's folder.
    rec = next((a for a in request.app.state.store.list_artifacts(job_id) if a["name"] == name), None)
    path = request.app.state.dispatcher.job_dir(job_id) / name
    if rec is None or not path.is_file():
        raise Problem(404, f"job {job_id} has no artifact {name!r}", "not-found")
    return FileResponse(path, media_type=rec["media_type"], filename=name, headers={"X-Content-SHA256": rec["sha256"]})


class EvaluateIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=False)
    points: list[list[float]]


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


def _parse_points(body: bytes, content_type: str, max_points: int) -> np.ndarray:
    if content_type.startswith(NPY):
        try:
            arr = np.load(io.BytesIO(body), allow_pickle=False)
        except Exception as e:
            raise field_error("body", f"not a .npy array ({type(e).__name__})") from e
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
            raise field_error("body", "the .npy array must hold numbers")
        if arr.ndim != 2:
            raise field_error("body", f"the array must be 2-D (n, d), got shape {arr.shape}")
        if arr.shape[0] > max_points:
            raise Problem(413, f"{arr.shape[0]} points; at most {max_points} per call", "too-large")
        arr = arr.astype(np.float64)
        if not np.isfinite(arr).all():
            raise field_error("body", "points must be finite (no NaN/inf)")
        return arr
    if content_type and not content_type.startswith("application/json"):
        raise Problem(415, f"send application/json or {NPY}", "unsupported-media-type")
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise field_error("body", "invalid JSON") from e
    if isinstance(raw, dict) and isinstance(raw.get("points"), list) and len(raw["points"]) > max_points:
        raise Problem(413, f"{len(raw['points'])} points; at most {max_points} per call", "too-large")
    try:
        req = EvaluateIn.model_validate(raw)
    except ValidationError as e:
        errs = validation_errors([{**err, "loc": ("body", *err["loc"])} for err in e.errors()])
        detail = "; ".join(f"{x['field'] or '(body)'}: {x['msg']}" for x in errs[:5])
        raise Problem(422, detail, "invalid-request", errors=errs) from e
    lengths = {len(p) for p in req.points}
    if len(lengths) > 1:
        raise field_error("points", "all points need the same number of coordinates")
    arr = np.asarray(req.points, dtype=np.float64)
    return arr.reshape(len(req.points), lengths.pop() if lengths else 0)


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
        413: {"description": "too many points or bytes", **_P},
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
    x = _parse_points(body, ctype, settings.max_eval_points)
    out_dir = request.app.state.dispatcher.job_dir(job_id)
    if job.state not in ("succeeded", "cancelled") or not (out_dir / "model.safetensors").is_file():
        raise Problem(409, f"job is {job.state}; it has no trained model to evaluate", "no-model")
    dim = int(job.spec["problem"]["dim"])
    if x.shape[1] != dim:
        raise field_error("points", f"each point needs {dim} coordinates (the job's problem.dim), got {x.shape[1]}")

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
