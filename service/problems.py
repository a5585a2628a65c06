"""RFC 9457 problem details (``application/problem+json``) for every error the API returns.

Validation errors name the offending field (dotted path and JSON pointer) in an ``errors`` extension, so a
client can tell exactly what to fix; nothing about bad input ever surfaces as a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("sdze.service")

PROBLEM = "application/problem+json"
TYPE_BASE = "https://sdze.dev/problems/"

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    421: "Misdirected Request",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


# The problem type of an error raised without one (Starlette's own 404/405, FastAPI's 400): every error answer
# carries a type from docs/api.md, never about:blank.
DEFAULT_KINDS = {
    400: "bad-request",
    401: "unauthorized",
    404: "not-found",
    405: "method-not-allowed",
    413: "too-large",
    415: "unsupported-media-type",
    421: "host-not-allowed",
    422: "invalid-request",
    429: "queue-full",
    500: "internal",
    503: "not-ready",
}


class Problem(StarletteHTTPException):
    """An error response; raise it anywhere (a Starlette HTTPException, so FastAPI's body reader lets it pass)."""

    def __init__(
        self,
        status: int,
        detail: str,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ):
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.kind = kind
        self.extensions = extensions


def field_error(field: str, msg: str, status: int = 422) -> Problem:
    """A 4xx naming one field of the request (dotted path)."""
    pointer = "/" + "/".join(field.split(".")) if field else ""
    return Problem(
        status, f"{field}: {msg}", "invalid-request", errors=[{"field": field, "pointer": pointer, "msg": msg}]
    )


def problem_response(
    status: int,
    detail: str | None,
    kind: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    kind = kind or DEFAULT_KINDS.get(status, "bad-request" if status < 500 else "internal")
    body: dict[str, Any] = {
        "type": TYPE_BASE + kind,
        "title": TITLES.get(status, "Error"),
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM)


def _loc_field(loc: tuple | list) -> tuple[str, str]:
    parts = list(loc)
    where = parts.pop(0) if parts and parts[0] in ("body", "query", "path", "header", "cookie") else "body"
    return ".".join(str(p) for p in parts), where


def validation_errors(errors: list[dict]) -> list[dict]:
    out = []
    for e in errors:
        field, where = _loc_field(e.get("loc", ()))
        out.append(
            {
                "field": field,
                "in": where,
                "pointer": "/" + "/".join(field.split(".")) if field else "",
                "msg": str(e.get("msg", "invalid")),
                "code": str(e.get("type", "invalid")),
            }
        )
    return out


def json_error_location(doc: str, pos: int) -> tuple[int, int]:
    """(line, column), both from 1, of character offset ``pos`` in ``doc`` (as ``json.JSONDecodeError`` counts)."""
    pos = max(0, min(pos, len(doc)))
    line = doc.count("\n", 0, pos) + 1
    return line, pos - (doc.rfind("\n", 0, pos) + 1) + 1


def _invalid_json(request: Request, exc: RequestValidationError, err: dict) -> JSONResponse:
    """A body that is not JSON: 400, located by line and column (the field is the whole body, not an offset)."""
    loc = err.get("loc", ())
    pos = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else 0
    doc = exc.body if isinstance(exc.body, str) else ""
    line, col = json_error_location(doc, pos)
    why = str((err.get("ctx") or {}).get("error", "not JSON"))
    msg = f"invalid JSON at line {line} column {col}: {why}"
    where = {"line": line, "column": col}
    errors = [{"field": "", "in": "body", "pointer": "", "msg": msg, "code": "json_invalid", **where}]
    return problem_response(400, msg, "invalid-json", request.url.path, errors=errors)


def install(app: FastAPI) -> None:
    """Register the problem+json handlers on ``app``."""

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        bad_json = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
        if bad_json is not None:
            return _invalid_json(request, exc, bad_json)
        errs = validation_errors(list(exc.errors()))
        detail = "; ".join(f"{e['field'] or '(body)'}: {e['msg']}" for e in errs[:5])
        return problem_response(422, detail, "invalid-request", request.url.path, errors=errs)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = getattr(exc, "kind", None)
        ext = getattr(exc, "extensions", {})
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return problem_response(exc.status_code, detail, kind, request.url.path, dict(exc.headers or {}), **ext)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "internal error (logged on the server)", "internal", request.url.path)
