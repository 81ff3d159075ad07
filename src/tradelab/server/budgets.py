"""Monthly spending caps: what runs cost this UTC month, and what is left under the global and experiment caps.

The worker calls :func:`remaining_budget` inside its claim transaction before starting a run, and reserves an
attempt's worst case: the hourly price × :func:`attempt_wall_time_s`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from tradelab.server.models import Budget, Run

#: Max wall time assumed for budget reservations when neither the run nor its experiment sets one.
DEFAULT_MAX_WALL_TIME_S = 24 * 3600.0


def attempt_wall_time_s(max_wall_time_s: float | None, experiment_config: dict[str, Any] | None) -> float:
    """How long one attempt of a run may last: its own max wall time, else its experiment's
    ``budget.max_wall_time_s``, else :data:`DEFAULT_MAX_WALL_TIME_S` (the launch check and the worker agree)."""
    if max_wall_time_s is not None:
        return max_wall_time_s
    budget = (experiment_config or {}).get("budget") or {}
    return float(budget.get("max_wall_time_s") or DEFAULT_MAX_WALL_TIME_S)


def month_bounds(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The first instant of the UTC month of ``now`` (default: the current time) and of the next month."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def spent(session: Session, experiment_id: int | None = None, now: datetime | None = None) -> float:
    """What the runs queued in the current UTC month have cost, plus what their active attempts may still cost
    at worst (their reservations): of one experiment, or of all when None."""
    start, end = month_bounds(now)
    committed = func.coalesce(func.sum(Run.cost + Run.reserved), 0.0)
    query = select(committed).where(Run.queued_at >= start, Run.queued_at < end)
    if experiment_id is not None:
        query = query.where(Run.experiment_id == experiment_id)
    return float(session.scalar(query) or 0.0)


def remaining_budget(session: Session, experiment_id: int | None, now: datetime | None = None) -> float | None:
    """What may still be spent this month on ``experiment_id``: the least of the global and its own remaining.

    A cap's remaining is its ``monthly_cap`` minus what was :func:`spent` against it (negative when overspent).

    :returns: None when neither a global nor an experiment cap exists.
    """
    caps = session.scalars(
        select(Budget).where(or_(Budget.experiment_id.is_(None), Budget.experiment_id == experiment_id))
    ).all()
    remaining = [cap.monthly_cap - spent(session, cap.experiment_id, now) for cap in caps]
    return min(remaining) if remaining else None
