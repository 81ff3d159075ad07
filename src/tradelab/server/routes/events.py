"""Live events as Server-Sent Events: the ``events`` table is the bus (workers in other processes write to it too).

The stream polls the table every ``app.state.events_poll_s`` seconds (0.5) with a short session per poll, sends
a ``: ping`` comment every ``app.state.events_ping_s`` seconds (15), and ends when the client goes away or after
``app.state.events_max_s`` seconds (None: never; tests set it).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from tradelab.server.db import transaction
from tradelab.server.deps import current_token, require_admin
from tradelab.server.models import Event, Token
from tradelab.server.routes.common import MAX_JSON_INT

router = APIRouter(tags=["events"])

_bearer = HTTPBearer(auto_error=False)
#: Events sent per poll at most; the next poll goes on from the last one.
BATCH = 500


def _stream_admin(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Token:
    """The caller's admin token, checked in a transaction of its own (a stream must not hold one open).

    :raises HTTPException: 401 or 403 as :func:`~tradelab.server.deps.require_admin`; 503 without a database.
    """
    try:
        with transaction(request.app.state.sessions) as session:
            return require_admin(current_token(session, credentials))
    except OperationalError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the database is unavailable") from error


StreamAdminDep = Annotated[Token, Depends(_stream_admin)]


def _latest_id(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.max(Event.id))) or 0


def _events_after(factory: sessionmaker[Session], after: int) -> list[dict[str, Any]]:
    with factory() as session:
        events = session.scalars(select(Event).where(Event.id > after).order_by(Event.id).limit(BATCH)).all()
        return [
            {"id": e.id, "at": e.at.isoformat(), "kind": e.kind, "run_id": e.run_id, "payload": e.payload}
            for e in events
        ]


def format_event(event: dict[str, Any]) -> str:
    """One event in the SSE wire format."""
    return f"id: {event['id']}\nevent: {event['kind']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "a stream of events"}},
)
async def stream_events(
    request: Request,
    _admin: StreamAdminDep,
    after: Annotated[int | None, Query(ge=0, le=MAX_JSON_INT, description="send the events after this id")] = None,
    last_event_id: Annotated[int | None, Header(ge=0, le=MAX_JSON_INT)] = None,
) -> StreamingResponse:
    """Events as they are written: after ``Last-Event-ID`` (a reconnect), else ``after``, else from now on."""
    factory: sessionmaker[Session] = request.app.state.sessions
    state = request.app.state
    start = last_event_id if last_event_id is not None else after
    if start is None:
        start = await to_thread.run_sync(_latest_id, factory)
    poll_s = float(getattr(state, "events_poll_s", 0.5))
    ping_s = float(getattr(state, "events_ping_s", 15.0))
    max_s: float | None = getattr(state, "events_max_s", None)

    async def events() -> AsyncIterator[str]:
        cursor = start
        began = last_sent = time.monotonic()
        while not await request.is_disconnected():
            batch = await to_thread.run_sync(_events_after, factory, cursor)
            for event in batch:
                yield format_event(event)
                cursor = event["id"]
            now = time.monotonic()
            if batch:
                last_sent = now
            elif now - last_sent >= ping_s:
                yield ": ping\n\n"
                last_sent = now
            if max_s is not None and now - began >= max_s:
                return
            if len(batch) < BATCH:
                await asyncio.sleep(poll_s)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
