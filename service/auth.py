"""Bearer-token auth: tokens come from configuration; each job belongs to the token that created it.

With no tokens configured (allowed on loopback only, see ``Settings.check``) every caller is ``anonymous``.
Only a token's SHA-256 prefix is stored, never the token.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from .problems import Problem

ANONYMOUS = "anonymous"


def owner_id(token: str) -> str:
    return "tok_" + hashlib.sha256(token.encode()).hexdigest()[:24]


def _unauthorized(detail: str, error: str | None = None) -> Problem:
    challenge = 'Bearer realm="sdze"' + (f', error="{error}"' if error else "")
    return Problem(401, detail, "unauthorized", headers={"WWW-Authenticate": challenge})


async def current_owner(request: Request) -> str:
    """FastAPI dependency: the caller's owner id (401 problem when a token is required and missing/wrong).

    Async on purpose: it is pure CPU, and a sync dependency would cost every request a thread-pool hop."""
    tokens: list[str] = request.app.state.settings.tokens
    if not tokens:
        return ANONYMOUS
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise _unauthorized("missing bearer token (Authorization: Bearer <token>)")
    given = given.strip()
    ok = False
    for t in tokens:  # compare with every token in constant time, so timing says nothing about which matched
        ok |= hmac.compare_digest(t.encode(), given.encode())
    if not ok:
        raise _unauthorized("invalid bearer token", "invalid_token")
    return owner_id(given)
