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

from tradelab.server.models import Run, RunState, Token
from tradelab.server.routes.common import Id
from tradelab.server.security import digest, run_token_open

_bearer = HTTPBearer(auto_error=False)

#: What every ``/api`` endpoint may answer besides its own codes (documented in the OpenAPI schema).
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "no bearer token, or an unknown or revoked one, or a run token whose attempt has ended (its "
        "run is final, queued again or on a later attempt)"
    },
    403: {"description": "the token may not do this (a run token outside its own run's reports)"},
    503: {"description": "the database is unavailable"},
}

#: What an endpoint that adds to a run's reports may answer besides: what a final run reported is immutable.
RUN_FINAL_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"description": "the run is final: nothing may be added to what it reported (admin tokens included)"}
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
    """The caller's valid token: an admin token, or a run token while the attempt it was issued for is open.

    A run token's run stays locked until the request ends, so the attempt cannot end (a final status, the worker
    queueing the run again) while the request adds to it.

    :raises HTTPException: 401 without a bearer token, with an unknown or revoked one, or with a run token whose
        attempt has ended.
    """
    if credentials is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
    token = session.scalar(select(Token).where(Token.digest == digest(credentials.credentials)))
    if token is None or token.revoked_at is not None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid token", {"WWW-Authenticate": "Bearer"})
    if token.role == "run":
        run = session.get(Run, token.run_id, with_for_update=True)
        if run is None or not run_token_open(token, run):
            detail = f"this run token has expired: attempt {token.attempt} of run {token.run_id} has ended"
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail, {"WWW-Authenticate": "Bearer"})
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


def require_run_reader(run_id: Id, token: TokenDep) -> Token:
    """The caller's token, which must be an admin token or the token of run ``run_id``.

    :raises HTTPException: 403 for another run's token.
    """
    if token.role != "admin" and token.run_id != run_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this token may only report on its own run")
    return token


RunReaderDep = Annotated[Token, Depends(require_run_reader)]


def require_run_writer(run_id: Id, token: RunReaderDep, session: SessionDep) -> Token:
    """The caller's token, which may add to the reports of run ``run_id``: that of :func:`require_run_reader`, while
    the run is not final (its run stays locked until the request ends; an unknown run is the handler's 404).

    :raises HTTPException: 403 for another run's token; 409 when the run is final.
    """
    run = session.get(Run, run_id, with_for_update=True)
    if run is not None and RunState(run.state).final:
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id} is already {run.state}: its reports are final")
    return token


RunWriterDep = Annotated[Token, Depends(require_run_writer)]
