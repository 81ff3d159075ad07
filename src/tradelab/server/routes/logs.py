"""A run's log: the lines its agent appends (idempotently, so a batch replayed after an outage appends nothing
twice) and the pages the dashboard reads.

Its own router, so its body limit (a batch of log lines, ``max_logs_body``) is not every run route's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from tradelab.server.deps import RUN_FINAL_RESPONSES, AdminDep, RunWriterDep, SessionDep
from tradelab.server.models import RunLog
from tradelab.server.reports import store_logs
from tradelab.server.routes.common import MAX_JSON_INT, Id, Text, UtcDatetime
from tradelab.server.routes.runs import RUN_NOT_FOUND, get_run

router = APIRouter(tags=["runs"])


class RunLogsCreate(BaseModel):
    """Lines to append to a run's log."""

    lines: list[Text] = Field(min_length=1, max_length=10_000)


class RunLogPublic(BaseModel):
    """One line of a run's log."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: UtcDatetime
    line: str


class RunLogsPublic(BaseModel):
    """A page of a run's log (after a cursor) and how many lines the log holds in all."""

    data: list[RunLogPublic]
    count: int


class Appended(BaseModel):
    """How many rows a call appended."""

    count: int


@router.post(
    "/runs/{run_id}/logs",
    response_model=Appended,
    status_code=status.HTTP_201_CREATED,
    responses={**RUN_NOT_FOUND, **RUN_FINAL_RESPONSES},
)
def append_logs(run_id: Id, body: RunLogsCreate, session: SessionDep, _writer: RunWriterDep) -> Appended:
    """Append the lines the run's log does not hold yet (a batch replayed after an outage appends nothing twice)."""
    get_run(session, run_id, lock=True)  # one delivery at a time: a retry racing its original appends once
    return Appended(count=store_logs(session, run_id, body.lines))


@router.get("/runs/{run_id}/logs", response_model=RunLogsPublic, responses=RUN_NOT_FOUND)
def read_logs(
    run_id: Id,
    session: SessionDep,
    _admin: AdminDep,
    after_id: Annotated[int, Query(ge=0, le=MAX_JSON_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1_000,
) -> RunLogsPublic:
    """The run's log lines after line ``after_id`` (pass the last id seen to page on), oldest first."""
    get_run(session, run_id)
    count = session.scalar(select(func.count()).select_from(RunLog).where(RunLog.run_id == run_id)) or 0
    lines = session.scalars(
        select(RunLog).where(RunLog.run_id == run_id, RunLog.id > after_id).order_by(RunLog.id).limit(limit)
    ).all()
    return RunLogsPublic(data=[RunLogPublic.model_validate(line) for line in lines], count=count)
