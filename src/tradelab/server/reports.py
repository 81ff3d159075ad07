"""Idempotent storage of what a run reports, its metric points and log lines.

A report may arrive more than once: the agent replays what it spooled during an outage (a post whose answer was
lost may have been stored already), and the worker stores what an attempt's ``outcome.json`` says was never
delivered. Both go through here, so a batch delivered twice stores nothing twice. No unique index backs this (the
schema is unchanged): the callers lock the run's row, so two deliveries to one run do not interleave.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from tradelab.server.models import MetricPoint, RunLog, utcnow

#: Values per ``IN (...)`` lookup, well under SQLite's bound-parameter limit.
_LOOKUP_CHUNK = 500


def store_metrics(session: Session, run_id: int, points: Sequence[Mapping[str, Any]]) -> int:
    """Store the points (mappings with ``key``, ``step`` and ``value``) the run does not have yet; how many were new.

    A ``(run, key, step)`` already stored keeps its value, and so does the first of a batch's repeats.

    :raises ValueError: for a point without a key, step or finite value (naming its index); nothing is stored then.
    """
    fresh: dict[tuple[str, int], float] = {}
    for index, point in enumerate(points):
        try:
            key, step, value = str(point["key"]), int(point["step"]), float(point["value"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"metric point {index}: needs a key, an integer step and a number value ({error})"
            ) from error
        if not math.isfinite(value):
            raise ValueError(f"metric point {index} ({key!r} at step {step}): value {value} is not finite")
        fresh.setdefault((key, step), value)
    if not fresh:
        return 0
    steps = [step for _, step in fresh]
    for keys in _chunks(sorted({key for key, _ in fresh})):
        stored = session.execute(
            select(MetricPoint.key, MetricPoint.step).where(
                MetricPoint.run_id == run_id,
                MetricPoint.key.in_(keys),
                MetricPoint.step.between(min(steps), max(steps)),
            )
        )
        for key, step in stored:
            fresh.pop((key, step), None)
    _insert_points(session, run_id, fresh)
    return len(fresh)


def store_logs(session: Session, run_id: int, lines: Sequence[str]) -> int:
    """Append the lines the run's log does not hold yet; how many were new.

    A log line carries its own timestamp, so a line identical to a stored one is the same record delivered again.
    Repeats within one batch are kept: a delivery is stored whole or skipped whole, line by line.
    """
    known: set[str] = set()
    for chunk in _chunks(sorted(set(lines))):
        known.update(session.scalars(select(RunLog.line).where(RunLog.run_id == run_id, RunLog.line.in_(chunk))))
    new = [line for line in lines if line not in known]
    if new:
        now = utcnow()
        session.execute(insert(RunLog), [{"run_id": run_id, "at": now, "line": line} for line in new])
    return len(new)


def _insert_points(session: Session, run_id: int, points: Mapping[tuple[str, int], float]) -> None:
    """Insert the points: Postgres ``COPY`` (about 3× an INSERT of many rows), elsewhere one bulk INSERT."""
    if not points:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        cursor = connection.connection.driver_connection.cursor()  # psycopg 3, in this session's transaction
        with cursor.copy("COPY metric_points (run_id, key, step, value) FROM STDIN") as copy:
            for (key, step), value in points.items():
                copy.write_row((run_id, key, step, value))
        return
    rows = [{"run_id": run_id, "key": key, "step": step, "value": value} for (key, step), value in points.items()]
    session.execute(insert(MetricPoint), rows)


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _LOOKUP_CHUNK):
        yield values[start : start + _LOOKUP_CHUNK]
