"""The FastAPI application: :func:`create_app` wires the database, the routers with their body limits, request
ids, logging and the built dashboard.

``tradelab serve`` runs it with uvicorn. CORS is off unless ``TRADELAB_CORS_ORIGINS`` lists origins.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

from tradelab import __version__
from tradelab.server.db import make_engine, session_factory
from tradelab.server.deps import AUTH_RESPONSES
from tradelab.server.errors import install_error_handlers
from tradelab.server.limits import TOO_LARGE_RESPONSES, AuthBeforeBody, bounded_validation_error, max_body_size
from tradelab.server.routes import catalog, health, operations
from tradelab.server.web_app import serve_web_app
from tradelab.settings import get_settings

logger = logging.getLogger("tradelab.server")


def create_app(database_url: str | None = None) -> FastAPI:
    """The API over the database at ``database_url`` (see :func:`tradelab.server.db.database_url`).

    The schema must be migrated already (``tradelab init`` or ``tradelab db upgrade``). The built dashboard
    (``Settings.web_app_dir``) is served at ``/``.
    """
    app = FastAPI(title="tradelab control plane", version=__version__)
    app.state.engine = make_engine(database_url)
    app.state.sessions = session_factory(app.state.engine)
    settings = get_settings()
    app.include_router(health.router, responses=TOO_LARGE_RESPONSES, max_body_size=settings.max_body)
    responses = {**AUTH_RESPONSES, **TOO_LARGE_RESPONSES}
    for router in [*catalog.routers, *operations.routers]:
        app.include_router(router, prefix="/api", responses=responses, max_body_size=max_body_size(router, settings))
    serve_web_app(app, settings.web_app_dir)
    app.add_middleware(AuthBeforeBody)
    origins = [o for o in os.environ.get("TRADELAB_CORS_ORIGINS", "").split(",") if o]
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["*"], allow_headers=["*"])
    app.exception_handler(DataError)(_refused_value)
    app.exception_handler(RequestValidationError)(bounded_validation_error)
    install_error_handlers(app)
    app.middleware("http")(_request_ids)
    return app


async def _refused_value(request: Request, error: Exception) -> Response:
    """A 422 (shaped like FastAPI's) for a value the database refuses: a NUL in text, a number out of its range.

    Postgres refuses both where SQLite stores them; the answer names no value (it may be anything the client sent).
    """
    logger.warning("the database refused a value", extra={"path": request.url.path, "error": type(error).__name__})
    detail = [{"type": "value_error", "loc": ["request"], "msg": "a value the database cannot store or compare"}]
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _request_ids(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Give every request an id (the client's ``X-Request-ID`` or a new one), echo it and log one line."""
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    started = time.perf_counter()
    response = await call_next(request)
    response.headers["X-Request-ID"] = request_id
    logger.info(
        "request",
        extra={
            "request_id": request_id,
            "method": request.method,
            "path": request.url.path,  # never the query string or headers: no token can leak
            "status": response.status_code,
            "ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )
    return response
