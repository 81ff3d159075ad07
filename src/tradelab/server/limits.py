"""What a request may make the server do before it is trusted: read a body only up to its route's limit, read
none at all for a caller without a valid token, and answer a 422 that never repeats a large input.

FastAPI enforces each router's ``max_body_size`` (:func:`max_body_size`) where the body is read: at once by
``Content-Length``, else by counting the bytes of a chunked body. But it reads and parses the body before the
endpoint's dependencies run, its token check included; :class:`AuthBeforeBody` runs that check first.
"""

from __future__ import annotations

import json
from collections.abc import Sized
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from tradelab.server.deps import current_token, get_session
from tradelab.server.routes import env_configs, experiments, logs, metrics
from tradelab.settings import Settings

#: What a route with a body limit may answer besides (documented in the OpenAPI schema).
TOO_LARGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"description": "the request body is larger than this route's limit (see the max_*body settings)"}
}

#: The longest JSON of an input that a validation error repeats, and the most errors one 422 lists.
MAX_ECHO_CHARS = 200
MAX_ERRORS = 20

_bearer = HTTPBearer(auto_error=False)


def max_body_size(router: APIRouter, settings: Settings) -> int:
    """The body limit of ``router``'s routes: a metrics batch, a run's log lines, a config, or the small default of
    every other route (a run's status and heartbeat included)."""
    if router is metrics.router:
        return settings.max_metrics_body
    if router is logs.router:
        return settings.max_logs_body
    if router is experiments.router or router is env_configs.router:
        return settings.max_config_body
    return settings.max_body


class AuthBeforeBody:
    """Answer an ``/api`` request that carries a body with 401 before a byte of it is read or buffered, when its
    bearer token is missing, unknown, revoked or expired (:func:`~tradelab.server.deps.current_token`'s check; the
    endpoint still applies it, with its role rules, once the body is parsed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/") and _has_body(Headers(scope=scope)):
            request = Request(scope)
            try:
                await run_in_threadpool(_authenticate, request, await _bearer(request))
            except HTTPException as refusal:
                handler = request.app.exception_handlers[HTTPException]
                response = await handler(request, refusal)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _has_body(headers: Headers) -> bool:
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


def _authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> None:
    """:func:`~tradelab.server.deps.current_token` in a session of its own (a 503 when the database is down)."""
    with contextmanager(get_session)(request) as session:
        current_token(session, credentials)


async def bounded_validation_error(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's 422 without what can make it large: an input whose JSON is longer than :data:`MAX_ECHO_CHARS`
    is left out of its error, and past :data:`MAX_ERRORS` errors one last entry counts the others."""
    assert isinstance(error, RequestValidationError)
    errors = error.errors()
    detail = [_without_large_input(entry) for entry in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        more = f"{len(errors) - MAX_ERRORS:,} more errors, not listed"
        detail.append({"type": "too_many_errors", "loc": [], "msg": more})
    return JSONResponse({"detail": jsonable_encoder(detail)}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def _without_large_input(entry: dict[str, Any]) -> dict[str, Any]:
    if "input" not in entry or _is_short(entry["input"]):
        return entry
    return {key: value for key, value in entry.items() if key != "input"}


def _is_short(value: Any) -> bool:
    if isinstance(value, Sized) and len(value) > MAX_ECHO_CHARS:
        return False  # a string, list or mapping of this many items has a longer JSON: not encoded to find out
    return len(json.dumps(jsonable_encoder(value))) <= MAX_ECHO_CHARS
