"""``/experiments``: validated experiment configs with tags and notes; a config never changes, a clone may."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, cast, func, literal, nulls_last, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from tradelab.experiments.config import ConfigError, ExperimentConfig, load_config
from tradelab.server.deps import SessionDep, require_admin
from tradelab.server.models import Experiment, Run
from tradelab.server.routes.common import MAX_JSON_INT, Id, Text, UtcDatetime
from tradelab.server.routes.dashboard import SHARPE, count_states, last_value

router = APIRouter(prefix="/experiments", tags=["experiments"], dependencies=[Depends(require_admin)])

#: A database time as UTC (SQLite returns them naive).
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such experiment"}}
Tags = list[Annotated[Text, Field(min_length=1, max_length=100)]]
#: A ``--set`` override: ``key.path=value`` (the value parsed as JSON, else YAML).
Override = Annotated[str, Field(pattern=r"^[^=\x00]+=[^\x00]*$")]


class ExperimentCreate(BaseModel):
    """A new experiment: its config, and tags and notes (the config's own when omitted)."""

    config: dict[str, Any] = Field(description="an ExperimentConfig (see GET /schemas/experiment)")
    tags: Tags | None = None
    notes: Text | None = None


class ExperimentUpdate(BaseModel):
    """What may change on an experiment: tags and notes (never the config)."""

    model_config = ConfigDict(extra="forbid")

    tags: Tags | None = None
    notes: Text | None = None


class ExperimentClone(BaseModel):
    """Overrides of the source's config, as ``key.path=value`` (values parsed as JSON, else YAML)."""

    model_config = ConfigDict(populate_by_name=True)

    overrides: list[Override] = Field(default_factory=list, alias="set", examples=[["n_envs=128", "seeds=[1,2]"]])


class ExperimentPublic(BaseModel):
    """An experiment, its config as validated (defaults filled in)."""

    id: int
    name: str
    config: dict[str, Any]
    tags: list[str]
    notes: str
    cloned_from: int | None
    created_at: UtcDatetime


class ExperimentSummary(ExperimentPublic):
    """An experiment with a summary of its runs."""

    runs_count: int
    runs_by_state: dict[str, int] = Field(description="every run state, 0 when no run is in it")
    best_test_sharpe: float | None = Field(description=f"the best last {SHARPE} of its runs")


class ExperimentsPublic(BaseModel):
    """A page of experiments in the order asked for, and how many match in all."""

    data: list[ExperimentSummary]
    count: int


#: How the list may be ordered (``-`` for descending); ties go to the newest experiment.
ExperimentSort = Literal["-created_at", "created_at", "name", "-name", "-best_sharpe"]


def _public(row: Experiment) -> ExperimentPublic:
    return ExperimentPublic.model_validate(row, from_attributes=True)


def _validated(config: dict[str, Any], overrides: Sequence[str] = ()) -> ExperimentConfig:
    """``load_config`` of ``config``; its problems as a 422 whose entries locate each one in the body."""
    try:
        return load_config(config, overrides)
    except ConfigError as error:
        errors = []
        for problem in error.problems:
            if problem.startswith("--set"):
                errors.append({"type": "value_error", "loc": ("body", "set"), "msg": problem})
                continue
            path, _, message = problem.partition(": ")
            loc = () if path == "(top level)" else tuple(path.split("."))
            errors.append({"type": "value_error", "loc": ("body", "config", *loc), "msg": message})
        raise RequestValidationError(errors) from None


def _get(session: Session, experiment_id: int) -> Experiment:
    row = session.get(Experiment, experiment_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no experiment {experiment_id}")
    return row


def _has_tag(session: Session, tag: str) -> ColumnElement[bool]:
    """Whether an experiment's JSON tag list holds ``tag`` (JSONB containment on Postgres, json_each on SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(Experiment.tags, JSONB).contains([tag])
    each = func.json_each(Experiment.tags).table_valued("value")
    return select(literal(1)).select_from(each).where(each.c.value == tag).exists()


@router.post("", status_code=status.HTTP_201_CREATED)
def create_experiment(body: ExperimentCreate, session: SessionDep) -> ExperimentPublic:
    """Validate the config (422 lists every problem with its path) and store the experiment."""
    config = _validated(body.config)
    row = Experiment(
        name=config.name,
        config=config.model_dump(mode="json", by_alias=True),
        tags=body.tags if body.tags is not None else list(config.tags),
        notes=body.notes if body.notes is not None else config.notes,
    )
    session.add(row)
    session.flush()
    return _public(row)


@router.get("")
def list_experiments(
    session: SessionDep,
    tag: Annotated[Text | None, Query(description="only experiments with this tag")] = None,
    name: Annotated[Text | None, Query(description="only experiments whose name contains this (any case)")] = None,
    sort: Annotated[ExperimentSort, Query(description="the order; -best_sharpe puts those without one last")] = (
        "-created_at"
    ),
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_JSON_INT)] = 0,
) -> ExperimentsPublic:
    """Experiments filtered by tag and name, with their runs summarised (at most four queries, whatever the page's
    size)."""
    where = []
    if tag is not None:
        where.append(_has_tag(session, tag))
    if name:
        where.append(func.lower(Experiment.name).contains(name.lower(), autoescape=True))
    count = session.scalar(select(func.count()).select_from(Experiment).where(*where)) or 0
    best = select(Run.experiment_id, func.max(last_value(SHARPE)).label("sharpe")).group_by(Run.experiment_id)
    query = select(Experiment).where(*where)
    if sort == "-best_sharpe":  # every experiment's best is needed to order them: read along
        ranked = best.subquery()
        query = query.add_columns(ranked.c.sharpe).outerjoin(ranked, ranked.c.experiment_id == Experiment.id)
        query = query.order_by(nulls_last(ranked.c.sharpe.desc()))
    else:
        column = Experiment.created_at if sort.endswith("created_at") else Experiment.name
        query = query.order_by(column.desc() if sort.startswith("-") else column)
    # ties (experiments created in one transaction share a time) follow the order asked for
    tie = Experiment.id if sort in ("created_at", "name") else Experiment.id.desc()
    page = session.execute(query.order_by(tie).limit(limit).offset(offset)).all()
    rows = [found[0] for found in page]
    ids = [row.id for row in rows]
    if sort == "-best_sharpe":
        sharpes = {experiment.id: sharpe for experiment, sharpe in page}
    else:
        sharpes = {i: sharpe for i, sharpe in session.execute(best.where(Run.experiment_id.in_(ids)))}
    states: dict[int, list[Any]] = {i: [] for i in ids}
    for experiment_id, state, runs in session.execute(
        select(Run.experiment_id, Run.state, func.count())
        .where(Run.experiment_id.in_(ids))
        .group_by(Run.experiment_id, Run.state)
    ):
        states[experiment_id].append((state, runs))
    data = [
        ExperimentSummary(
            **_public(row).model_dump(),
            runs_count=sum(runs for _, runs in states[row.id]),
            runs_by_state=count_states(states[row.id]),
            best_test_sharpe=sharpes.get(row.id),
        )
        for row in rows
    ]
    return ExperimentsPublic(data=data, count=count)


@router.get("/{experiment_id}", responses=_NOT_FOUND)
def get_experiment(experiment_id: Id, session: SessionDep) -> ExperimentPublic:
    """One experiment."""
    return _public(_get(session, experiment_id))


@router.patch("/{experiment_id}", responses=_NOT_FOUND)
def update_experiment(experiment_id: Id, body: ExperimentUpdate, session: SessionDep) -> ExperimentPublic:
    """Change an experiment's tags or notes; the config is immutable (clone it instead)."""
    row = _get(session, experiment_id)
    for key, value in body.model_dump(exclude_unset=True, exclude_none=True).items():
        setattr(row, key, value)
    session.flush()
    return _public(row)


@router.post("/{experiment_id}/clone", status_code=status.HTTP_201_CREATED, responses=_NOT_FOUND)
def clone_experiment(
    experiment_id: Id, session: SessionDep, body: Annotated[ExperimentClone | None, Body()] = None
) -> ExperimentPublic:
    """A new experiment from this one's config with ``set`` overrides applied, its tags and notes copied."""
    source = _get(session, experiment_id)
    config = _validated(source.config, body.overrides if body is not None else ())
    row = Experiment(
        name=config.name,
        config=config.model_dump(mode="json", by_alias=True),
        tags=list(source.tags),
        notes=source.notes,
        cloned_from=source.id,
    )
    session.add(row)
    session.flush()
    return _public(row)
