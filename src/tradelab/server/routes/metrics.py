"""A run's metrics: bulk ingest from the run, the keys it has, and one series downsampled with LTTB."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BaseModel, Field, StrictFloat
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from tradelab.server.deps import RUN_FINAL_RESPONSES, AdminDep, RunWriterDep, SessionDep
from tradelab.server.lttb import lttb_indices
from tradelab.server.models import Event, MetricPoint, RunKind
from tradelab.server.reports import store_metrics
from tradelab.server.routes.common import MAX_JSON_INT, Id, JsonInt
from tradelab.server.routes.runs import RUN_NOT_FOUND, get_run

router = APIRouter(tags=["metrics"], responses=RUN_NOT_FOUND)


class MetricPointCreate(BaseModel):
    """One value of one metric at one training step; NaN and infinities are refused (422 naming the point)."""

    key: str = Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$", description="no control characters")
    step: JsonInt = Field(ge=0, le=MAX_JSON_INT)
    value: StrictFloat


class MetricPointsCreate(BaseModel):
    """A batch of points (thousands per call are fine)."""

    points: list[MetricPointCreate] = Field(min_length=1, max_length=100_000)


class MetricsIngested(BaseModel):
    """What a batch added."""

    count: int = Field(description="points newly stored (0 for a batch delivered again)")
    keys: list[str]
    last_step: int


class MetricKeyPublic(BaseModel):
    """One metric of a run: how many points it has and its last step."""

    key: str
    count: int
    last_step: int


class MetricKeysPublic(BaseModel):
    """The metrics of a run."""

    data: list[MetricKeyPublic]
    count: int


class MetricSeriesPublic(BaseModel):
    """One metric's series between two steps, downsampled to at most ``max_points`` points."""

    key: str
    steps: list[int]
    values: list[float]
    total: int = Field(description="points in the range before downsampling")


@router.post(
    "/runs/{run_id}/metrics",
    response_model=MetricsIngested,
    status_code=status.HTTP_201_CREATED,
    responses=RUN_FINAL_RESPONSES,
)
def ingest_metrics(run_id: Id, body: MetricPointsCreate, session: SessionDep, _writer: RunWriterDep) -> MetricsIngested:
    """Store the batch's new points (a point already stored, as in a batch replayed after an outage, is skipped) and
    announce them with one ``metrics`` event.

    An ``evaluate`` run's ``oos/…`` points are filed under the run it scores as well (its record over time).
    """
    values = np.fromiter((p.value for p in body.points), dtype=np.float64, count=len(body.points))
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):  # checked here, not by pydantic, whose 422 would echo the non-finite input (not valid JSON)
        index = int(bad[0])
        detail = [{"type": "finite_number", "loc": ["body", "points", index, "value"], "msg": "must be finite"}]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)
    run = get_run(session, run_id, lock=True)  # one delivery at a time: a retry racing its original stores once
    count = _file_points(session, run_id, body.points)
    if run.kind == RunKind.EVALUATE and run.params and "run_id" in run.params:
        scored = [p for p in body.points if p.key.startswith("oos/")]
        if scored:
            _file_points(session, int(run.params["run_id"]), scored)
    keys = sorted({p.key for p in body.points})
    return MetricsIngested(count=count, keys=keys, last_step=max(p.step for p in body.points))


def _file_points(session: Session, run_id: int, points: Sequence[MetricPointCreate]) -> int:
    """Store the points of one run the run does not have yet, announced with one ``metrics`` event; how many."""
    count = store_metrics(session, run_id, [p.model_dump() for p in points])
    if count:
        payload = {"keys": sorted({p.key for p in points}), "last_step": max(p.step for p in points)}
        session.add(Event(kind="metrics", run_id=run_id, payload=payload))
    return count


@router.get("/runs/{run_id}/metrics", response_model=MetricKeysPublic)
def list_metrics(run_id: Id, session: SessionDep, _admin: AdminDep) -> MetricKeysPublic:
    """The run's metric keys with their point counts."""
    get_run(session, run_id)
    rows = session.execute(
        select(MetricPoint.key, func.count(), func.max(MetricPoint.step))
        .where(MetricPoint.run_id == run_id)
        .group_by(MetricPoint.key)
        .order_by(MetricPoint.key)
    ).all()
    data = [MetricKeyPublic(key=key, count=count, last_step=last) for key, count, last in rows]
    return MetricKeysPublic(data=data, count=len(data))


@router.get("/runs/{run_id}/metrics/{key:path}", response_model=MetricSeriesPublic)
def read_metric(
    run_id: Id,
    key: str,
    session: SessionDep,
    _admin: AdminDep,
    max_points: Annotated[int, Query(ge=3, le=100_000)] = 2_000,
    start_step: Annotated[int | None, Query(ge=0, le=MAX_JSON_INT)] = None,
    end_step: Annotated[int | None, Query(ge=0, le=MAX_JSON_INT)] = None,
) -> MetricSeriesPublic:
    """The series of ``key`` from ``start_step`` to ``end_step`` (inclusive), ordered by step, LTTB-downsampled.

    :raises HTTPException: 404 for an unknown run or a key without points.
    """
    get_run(session, run_id)
    query = select(MetricPoint.step, MetricPoint.value).where(MetricPoint.run_id == run_id, MetricPoint.key == key)
    if start_step is not None:
        query = query.where(MetricPoint.step >= start_step)
    if end_step is not None:
        query = query.where(MetricPoint.step <= end_step)
    rows = _fetch_raw(session, query.order_by(MetricPoint.step, MetricPoint.id))
    if not rows and start_step is None and end_step is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} has no metric {key!r}")
    steps = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    values = np.fromiter((row[1] for row in rows), dtype=np.float64, count=len(rows))
    kept = lttb_indices(steps, values, max_points)
    # Serialised here: the model above documents the body, and validating thousands of floats again costs more
    # than the query.
    body = {"key": key, "steps": steps[kept].tolist(), "values": values[kept].tolist(), "total": len(rows)}
    return Response(json.dumps(body), media_type="application/json")  # type: ignore[return-value]


def _fetch_raw(session: Session, query: Select[Any]) -> list[tuple[Any, ...]]:
    """The rows of ``query`` as the driver's plain tuples: for long series, SQLAlchemy's row objects cost more
    than the query. Values are bound by the dialect's own compiler (no string formatting of inputs)."""
    connection = session.connection()
    compiled = query.compile(dialect=connection.dialect)
    cursor = connection.connection.cursor()
    try:
        parameters = compiled.construct_params()
        positional = compiled.positiontup
        cursor.execute(str(compiled), [parameters[name] for name in positional] if positional else parameters)
        return cursor.fetchall()
    finally:
        cursor.close()
