"""``/dashboard``: the home page's summary in one call: runs by state, the month's budget, recent and best runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ScalarSelect, Select, func, select
from sqlalchemy.orm import Session

from tradelab.server import budgets
from tradelab.server.deps import SessionDep, require_admin
from tradelab.server.models import Budget, Experiment, MetricPoint, Run, RunState
from tradelab.server.routes.common import UtcDatetime

router = APIRouter(prefix="/dashboard", tags=["dashboard"], dependencies=[Depends(require_admin)])

#: The metric that ranks runs: a run's last reported test Sharpe ratio.
SHARPE = "test/sharpe"
#: Shown beside it.
TOTAL_RETURN = "test/total_return"
#: Runs in each of the dashboard's lists.
TOP = 10


def last_value(key: str) -> ScalarSelect[float]:
    """The value of the last point (highest step, then latest) of metric ``key`` of the enclosing query's run.

    A correlated subquery: one seek into the covering index ``(run_id, key, step, id) + value`` per run, whatever
    the number of points.
    """
    return (
        select(MetricPoint.value)
        .where(MetricPoint.run_id == Run.id, MetricPoint.key == key)
        .order_by(MetricPoint.step.desc(), MetricPoint.id.desc())
        .limit(1)
        .correlate(Run)
        .scalar_subquery()
    )


def count_states(rows: list[Any]) -> dict[str, int]:
    """``(state, count)`` rows as a count for every :class:`RunState` (0 for the missing ones)."""
    counts = dict.fromkeys(RunState, 0)
    counts.update({RunState(state): count for state, count in rows})
    return {str(state): count for state, count in counts.items()}


class DashboardRun(BaseModel):
    """A run with its experiment's name and its last test metrics."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    experiment_id: int
    experiment_name: str
    state: RunState
    backend: str
    seed: int
    cost: float
    queued_at: UtcDatetime
    ended_at: UtcDatetime | None
    test_sharpe: float | None = Field(description=f"the last {SHARPE} point")
    test_total_return: float | None = Field(description=f"the last {TOTAL_RETURN} point")


class DashboardBudget(BaseModel):
    """The global monthly cap, what runs queued this UTC month have committed, and what is left (None: no cap)."""

    monthly_cap: float | None
    spent: float
    remaining: float | None


class DashboardPublic(BaseModel):
    """The dashboard's summary."""

    runs_by_state: dict[str, int] = Field(description="every run state, 0 when no run is in it")
    budget: DashboardBudget
    recent_runs: list[DashboardRun] = Field(description=f"the {TOP} newest runs, newest first")
    best_runs: list[DashboardRun] = Field(description=f"the {TOP} runs with the highest last {SHARPE}")


def _runs(query: Select[Any]) -> Select[Any]:
    """``query`` over runs (and possibly more) with the columns of :class:`DashboardRun`."""
    return query.add_columns(
        Run.id,
        Run.experiment_id,
        Experiment.name.label("experiment_name"),
        Run.state,
        Run.backend,
        Run.seed,
        Run.cost,
        Run.queued_at,
        Run.ended_at,
        last_value(SHARPE).label("test_sharpe"),
        last_value(TOTAL_RETURN).label("test_total_return"),
    ).join(Experiment, Experiment.id == Run.experiment_id)


def _dashboard_runs(session: Session, query: Select[Any]) -> list[DashboardRun]:
    return [DashboardRun.model_validate(row, from_attributes=True) for row in session.execute(query).all()]


@router.get("")
def get_dashboard(session: SessionDep) -> DashboardPublic:
    """Runs by state, the global budget of this month, the newest runs and the best by their last test Sharpe."""
    states = session.execute(select(Run.state, func.count()).group_by(Run.state)).all()
    recent = _runs(select().select_from(Run)).order_by(Run.queued_at.desc(), Run.id.desc()).limit(TOP)
    # Each run's last Sharpe once (a seek per run), then the best of those; the rest only for the kept ones.
    ranked = select(Run.id.label("run_id"), last_value(SHARPE).label("sharpe")).subquery()
    best = (
        _runs(select().select_from(ranked).join(Run, Run.id == ranked.c.run_id))
        .where(ranked.c.sharpe.is_not(None))
        .order_by(ranked.c.sharpe.desc(), Run.id.desc())
        .limit(TOP)
    )
    cap = session.scalar(select(Budget.monthly_cap).where(Budget.experiment_id.is_(None)))
    return DashboardPublic(
        runs_by_state=count_states(list(states)),
        budget=DashboardBudget(
            monthly_cap=cap, spent=budgets.spent(session), remaining=budgets.remaining_budget(session, None)
        ),
        recent_runs=_dashboard_runs(session, recent),
        best_runs=_dashboard_runs(session, best),
    )
