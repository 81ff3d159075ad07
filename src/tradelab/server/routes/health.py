"""``/health`` (the process is up; no token) and ``/ready`` (the database answers)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """The service's state."""

    status: str


@router.get("/health")
def health() -> Health:
    """Liveness: answers while the process runs, whatever the database does."""
    return Health(status="ok")


@router.get("/ready", responses={503: {"description": "the database does not answer"}})
def ready(request: Request) -> Health:
    """Readiness: the database answers a query."""
    try:
        with request.app.state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the database is unavailable") from error
    return Health(status="ready")
