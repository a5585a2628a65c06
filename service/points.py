"""Evaluate bodies to points: an (n, d) float64 array from JSON or ``.npy``, decoded away from the event loop.

``json.loads`` of a 16 MiB body takes about a second and holds the GIL for all of it, so a worker thread would
still stall every request and event stream. Large JSON bodies are therefore decoded and validated in a
separate process (one, started on first use, reused); small bodies and ``.npy`` (a copy, no parsing) are
decoded in a worker thread. Errors come back as ``Problem`` 4xx answers either way.
"""

from __future__ import annotations

import asyncio
import io
import json
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, ValidationError

from .problems import Problem, field_error, validation_errors

NPY = "application/x-npy"
INLINE_JSON_BYTES = 256 << 10  # below this a JSON body is decoded in a thread (a process hop costs more)


class EvaluateIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)
    points: list[list[float]]


def parse_points(body: bytes, content_type: str, max_points: int) -> np.ndarray:
    """An (n, d) float64 array from a .npy or ``{"points": [[…], …]}`` JSON body; ``Problem`` (4xx) otherwise."""
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
    except json.JSONDecodeError as e:
        msg = f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}"
        err = {"field": "", "in": "body", "pointer": "", "msg": msg, "code": "json_invalid"}
        raise Problem(400, msg, "invalid-json", errors=[{**err, "line": e.lineno, "column": e.colno}]) from e
    except (ValueError, RecursionError) as e:  # not UTF-8, or nested too deep
        raise Problem(400, f"invalid JSON: {type(e).__name__}", "invalid-json") from e
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


def _decode_in_child(body: bytes, content_type: str, max_points: int) -> tuple[str, Any]:
    """``parse_points`` in the decoder process: ("ok", array) or ("problem", fields) (exceptions with keyword
    arguments do not survive pickling)."""
    try:
        return "ok", parse_points(body, content_type, max_points)
    except Problem as p:
        return "problem", (p.status_code, p.detail, p.kind, p.extensions)


class PointsDecoder:
    """``await decoder.decode(body, content_type, max_points)``; ``close()`` ends its process."""

    def __init__(self, inline_bytes: int = INLINE_JSON_BYTES):
        self.inline_bytes = inline_bytes
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn: a fork of a process with Ray's and uvicorn's threads is not safe
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
            return self._pool

    async def decode(self, body: bytes, content_type: str, max_points: int) -> np.ndarray:
        if content_type.startswith(NPY) or len(body) <= self.inline_bytes:
            return await run_in_threadpool(parse_points, body, content_type, max_points)
        loop = asyncio.get_running_loop()
        pool = self._executor()
        try:
            kind, value = await loop.run_in_executor(pool, _decode_in_child, body, content_type, max_points)
        except BrokenProcessPool as e:  # the decoder died (e.g. killed for memory): a fresh one next time
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            raise Problem(503, "the points decoder stopped; retry the request", "not-ready") from e
        if kind == "problem":
            status, detail, problem_kind, extensions = value
            raise Problem(status, detail, problem_kind, **extensions)
        return value

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
