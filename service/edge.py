"""Checks at the edge, before any route runs: the Host allowlist and the request body's content type.

Host: a tokenless server on loopback trusts whoever can reach it, and a web page on another site can reach it
through DNS rebinding (its own name resolving to 127.0.0.1). Such a request still carries the page's name in
``Host``, so a loopback server answers only to loopback names (``Settings.host_allowlist``); 421 otherwise.

Content type: ``POST /v1/jobs`` takes JSON only; another declared type (``curl -d`` sends a form type) is 415
rather than a confusing 422 about the body's shape.
"""

from __future__ import annotations

from typing import Any

from . import problems
from .settings import Settings

JSON_BODY_ROUTES = frozenset({("POST", "/v1/jobs")})


def host_name(raw: str) -> str:
    """The name in a Host header, lower case: ``Example.org:80`` → ``example.org``, ``[::1]:8000`` → ``::1``."""
    raw = raw.strip().lower()
    if raw.startswith("["):  # IPv6 literal, optionally with a port
        return raw[1:].split("]", 1)[0]
    return raw.rsplit(":", 1)[0] if raw.count(":") == 1 else raw


def is_json_type(content_type: str) -> bool:
    """``application/json`` or any ``application/*+json``, parameters (charset) ignored."""
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))


class EdgeMiddleware:
    """Pure ASGI: refuses a foreign Host (421) and a non-JSON body on JSON routes (415) with problem+json."""

    def __init__(self, app: Any, settings: Settings):
        self.app = app
        self.allowed = settings.host_allowlist

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        if self.allowed is not None:
            host = host_name(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.allowed:
                detail = (
                    f"this server answers to {', '.join(sorted(self.allowed))} only (Host {host or '(none)'!r}); "
                    "set SDZE_ALLOWED_HOSTS to serve another name"
                )
                await problems.problem_response(421, detail, "host-not-allowed", scope["path"])(scope, receive, send)
                return
        ctype = headers.get(b"content-type")
        json_route = (scope["method"], scope["path"].rstrip("/")) in JSON_BODY_ROUTES
        if ctype is not None and json_route and not is_json_type(ctype.decode("latin-1")):
            detail = "send the job spec as Content-Type: application/json"
            resp = problems.problem_response(415, detail, "unsupported-media-type", scope["path"])
            await resp(scope, receive, send)
            return
        await self.app(scope, receive, send)
