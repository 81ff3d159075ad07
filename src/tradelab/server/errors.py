"""HTTP errors answered as the OpenAPI schema states them, whichever part of the stack raised them.

Two of Starlette's and FastAPI's defaults contradict the schema: a path whose methods are declared by several
routes answers 405 with only the first route's methods in ``Allow`` (and the dashboard's catch-all GET turns a wrong
method on an API path into a 404); and a body that is not UTF-8 (or nests too deep to parse) is a bare 400, where
a body that is not JSON is a 422. :func:`install_error_handlers` answers both as documented.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Scope


def install_error_handlers(app: FastAPI) -> None:
    """Answer wrong methods and unparseable bodies of ``app`` as its schema documents them."""
    app.exception_handler(HTTPException)(_http_error)


def documented_methods(app: FastAPI, scope: Scope) -> set[str]:
    """The methods the schema documents for the path of the request ``scope`` (every route matching it, not just
    the first)."""
    methods: set[str] = set()
    for route in iter_route_contexts(app.router.routes):
        if route.include_in_schema and route.methods and route.matches(scope)[0] is not Match.NONE:
            methods |= route.methods
    return methods


async def _http_error(request: Request, error: Exception) -> Response:
    """405 with the path's full ``Allow`` for a method it does not document; 422 for a body that cannot be
    parsed; any other HTTP error as FastAPI answers it."""
    assert isinstance(error, HTTPException)
    if error.status_code in (status.HTTP_404_NOT_FOUND, status.HTTP_405_METHOD_NOT_ALLOWED):
        allowed = documented_methods(request.app, request.scope)
        if allowed and request.method not in allowed:
            return JSONResponse(
                {"detail": f"{request.method} is not allowed here; use {', '.join(sorted(allowed))}"},
                status_code=status.HTTP_405_METHOD_NOT_ALLOWED,
                headers={"Allow": ", ".join(sorted(allowed))},
            )
    if error.status_code == status.HTTP_400_BAD_REQUEST and isinstance(error.__cause__, ValueError | RecursionError):
        # FastAPI's answer when decoding the body raised (not UTF-8, or nested past the recursion limit): the
        # same 422 as a body that is not JSON, which names no byte of it.
        detail = [{"type": "json_invalid", "loc": ["body"], "msg": "the body is not UTF-8 JSON, or nests too deep"}]
        return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    return await http_exception_handler(request, error)
