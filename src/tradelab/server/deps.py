"""What endpoints depend on, declared once: a database session, and the caller's token.

Every permission check lives here (FastAPI's full-stack template repeats them in every handler; we don't).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tradelab.server.models import Token
from tradelab.server.routes.common import Id
from tradelab.server.security import digest

_bearer = HTTPBearer(auto_error=False)

#: What every ``/api`` endpoint may answer besides its own codes (documented in the OpenAPI schema).
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "no bearer token, or an unknown or revoked one"},
    403: {"description": "the token may not do this (a run token outside its own run's reports)"},
    503: {"description": "the database is unavailable"},
}


def get_session(request: Request) -> Iterator[Session]:
    """A session for one request, committed when the handler returns, rolled back when it raises.

    :raises HTTPException: 503 when the database cannot be reached.
    """
    factory = request.app.state.sessions
    try:
        with factory() as session, session.begin():
            yield session
    except OperationalError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the database is unavailable") from error


SessionDep = Annotated[Session, Depends(get_session)]


def current_token(
    session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Token:
    """The caller's valid token.

    :raises HTTPException: 401 without a bearer token, or with an unknown or revoked one.
    """
    if credentials is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
    token = session.scalar(select(Token).where(Token.digest == digest(credentials.credentials)))
    if token is None or token.revoked_at is not None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid token", {"WWW-Authenticate": "Bearer"})
    return token


TokenDep = Annotated[Token, Depends(current_token)]


def require_admin(token: TokenDep) -> Token:
    """The caller's token, which must be an admin token.

    :raises HTTPException: 403 for a run token.
    """
    if token.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "an admin token is required")
    return token


AdminDep = Annotated[Token, Depends(require_admin)]


def require_run_writer(run_id: Id, token: TokenDep) -> Token:
    """The caller's token, which must be an admin token or the token of run ``run_id``.

    :raises HTTPException: 403 for another run's token.
    """
    if token.role != "admin" and token.run_id != run_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this token may only report on its own run")
    return token


RunWriterDep = Annotated[Token, Depends(require_run_writer)]
