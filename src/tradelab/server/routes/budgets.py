"""``/budgets``: the global and per-experiment monthly caps, with what was spent this UTC month."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field, StrictFloat
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tradelab.server.budgets import spent
from tradelab.server.deps import SessionDep, require_admin
from tradelab.server.models import Budget, Experiment
from tradelab.server.routes.common import Id

router = APIRouter(prefix="/budgets", tags=["budgets"], dependencies=[Depends(require_admin)])

_CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "the cap was set concurrently; retry"}}


class BudgetUpdate(BaseModel):
    """A monthly cap to set."""

    monthly_cap: StrictFloat = Field(ge=0.0, description="USD per UTC month")


class BudgetPublic(BaseModel):
    """A monthly cap (global when ``experiment_id`` is null), what runs cost this UTC month, and what is left."""

    experiment_id: int | None
    monthly_cap: float
    spent: float
    remaining: float = Field(description="monthly_cap - spent; negative when overspent")


class BudgetsPublic(BaseModel):
    """The global cap first (when set), then the experiments' caps."""

    data: list[BudgetPublic]
    count: int


def _public(session: Session, budget: Budget) -> BudgetPublic:
    used = spent(session, budget.experiment_id)
    return BudgetPublic(
        experiment_id=budget.experiment_id,
        monthly_cap=budget.monthly_cap,
        spent=used,
        remaining=budget.monthly_cap - used,
    )


def _set(session: Session, experiment_id: int | None, monthly_cap: float) -> BudgetPublic:
    """Create or update the cap of ``experiment_id`` (the global cap when None)."""
    budget = session.scalars(
        select(Budget).where(
            Budget.experiment_id.is_(None) if experiment_id is None else Budget.experiment_id == experiment_id
        )
    ).first()
    if budget is None:
        budget = Budget(experiment_id=experiment_id, monthly_cap=monthly_cap)
        session.add(budget)
    budget.monthly_cap = monthly_cap
    try:
        session.flush()
    except IntegrityError:
        raise HTTPException(status.HTTP_409_CONFLICT, "the cap was set concurrently; retry") from None
    return _public(session, budget)


@router.get("")
def list_budgets(session: SessionDep) -> BudgetsPublic:
    """Every cap, with this month's spend and remaining."""
    budgets = session.scalars(select(Budget).order_by(Budget.experiment_id.is_not(None), Budget.experiment_id)).all()
    data = [_public(session, b) for b in budgets]
    return BudgetsPublic(data=data, count=len(data))


@router.put("/global", responses=_CONFLICT)
def set_global(body: BudgetUpdate, session: SessionDep) -> BudgetPublic:
    """Set the monthly cap on all runs together."""
    return _set(session, None, body.monthly_cap)


@router.put("/experiments/{experiment_id}", responses={404: {"description": "no such experiment"}, **_CONFLICT})
def set_experiment(experiment_id: Id, body: BudgetUpdate, session: SessionDep) -> BudgetPublic:
    """Set the monthly cap on one experiment's runs."""
    if session.get(Experiment, experiment_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no experiment {experiment_id}")
    return _set(session, experiment_id, body.monthly_cap)


@router.delete(
    "/experiments/{experiment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "this experiment has no cap"}},
)
def delete_experiment_cap(experiment_id: Id, session: SessionDep) -> None:
    """Remove one experiment's cap (the global cap still applies)."""
    budget = session.scalar(select(Budget).where(Budget.experiment_id == experiment_id))
    if budget is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"experiment {experiment_id} has no cap")
    session.delete(budget)
