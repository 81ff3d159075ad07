"""Runs of the other kinds: a sweep, an ensemble of finished runs, a run's re-evaluation on the newest data, and
watches (re-evaluations the worker queues on a schedule).

A sweep, an ensemble or an evaluation is a run like any other: queued, claimed by the worker of its backend,
executed by the agent (:mod:`tradelab.server.jobs`), followed live and charged to the budgets.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, ConfigDict, Field, StrictFloat
from sqlalchemy import select
from sqlalchemy.orm import Session

from tradelab.server.deps import AdminDep, SessionDep
from tradelab.server.models import Experiment, Run, RunKind, RunState, Watch
from tradelab.server.routes.common import JSON_INTEGER, MAX_ID, Id, JsonInt, UtcDatetime
from tradelab.server.routes.runs import (
    BackendName,
    LaunchOptions,
    RunPublic,
    Seed,
    get_run,
    launch_seed,
    queue_run,
)

router = APIRouter(tags=["runs"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such experiment or run"}}
_NOT_SUCCEEDED: dict[int | str, dict[str, Any]] = {409: {"description": "the run has no trained model (yet)"}}
#: Longest window and shortest period a watch may have.
MAX_WINDOW_DAYS = 3_650
MIN_EVERY_S = 60.0


class SweepCreate(LaunchOptions):
    """A sweep of the experiment's ``sweep`` section: ``trials`` Optuna trials in one run, with the seed given or
    the experiment's first."""

    trials: JsonInt = Field(ge=1, le=1_000)
    seed: Seed | None = None


class EnsembleCreate(LaunchOptions):
    """An ensemble of the experiment's finished runs (``members``: run ids), evaluated on their test segment."""

    members: list[Annotated[int, Field(ge=1, le=MAX_ID), JSON_INTEGER]] = Field(
        min_length=2, max_length=64, json_schema_extra={"uniqueItems": True}
    )


class EvaluationCreate(LaunchOptions):
    """A re-evaluation of a finished run on the last ``days`` days of its dataset's newest bars."""

    days: JsonInt = Field(30, ge=1, le=MAX_WINDOW_DAYS)


class WatchSet(BaseModel):
    """Re-evaluate the run on the last ``window_days`` days every ``every_s`` seconds, on ``backend``."""

    window_days: JsonInt = Field(30, ge=1, le=MAX_WINDOW_DAYS)
    every_s: StrictFloat = Field(86_400.0, ge=MIN_EVERY_S)
    backend: BackendName = "local"


class WatchPublic(WatchSet):
    """A watch as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    run_id: int
    created_at: UtcDatetime
    last_queued_at: UtcDatetime | None


@router.post(
    "/experiments/{experiment_id}/sweeps",
    response_model=RunPublic,
    status_code=status.HTTP_201_CREATED,
    responses={**_NOT_FOUND, 409: {"description": "the experiment's config has no valid sweep section"}},
)
def create_sweep(experiment_id: Id, body: SweepCreate, session: SessionDep, _admin: AdminDep) -> Run:
    """Queue a sweep run of experiment ``experiment_id`` (its config must have a ``sweep`` section)."""
    from tradelab.experiments.config import ConfigError, ExperimentConfig
    from tradelab.experiments.sweep import check_sweep

    experiment = _experiment(session, experiment_id)
    try:
        check_sweep(ExperimentConfig.model_validate(experiment.config))
    except ConfigError as error:
        detail = _at(["body", "config", "sweep"], str(error))
        raise HTTPException(status.HTTP_409_CONFLICT, detail) from None
    seed = launch_seed(experiment, body.seed)
    return queue_run(session, experiment, body, seed=seed, kind=RunKind.SWEEP, params={"trials": body.trials})


@router.post(
    "/experiments/{experiment_id}/ensembles",
    response_model=RunPublic,
    status_code=status.HTTP_201_CREATED,
    responses={**_NOT_FOUND, 409: {"description": "a member is not a succeeded training run of the experiment"}},
)
def create_ensemble(experiment_id: Id, body: EnsembleCreate, session: SessionDep, _admin: AdminDep) -> Run:
    """Queue the evaluation of an ensemble of the experiment's succeeded runs."""
    experiment = _experiment(session, experiment_id)
    if len(set(body.members)) != len(body.members):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, _at(["body", "members"], "repeats a run"))
    for index, member in enumerate(body.members):
        run = session.get(Run, member)
        problem = model_problem(run, experiment_id, member)
        if problem:
            raise HTTPException(status.HTTP_409_CONFLICT, _at(["body", "members", index], problem))
    seed = session.get(Run, body.members[0]).seed  # type: ignore[union-attr]  # checked above
    return queue_run(session, experiment, body, seed=seed, kind=RunKind.ENSEMBLE, params={"members": body.members})


@router.post(
    "/runs/{run_id}/evaluations",
    response_model=RunPublic,
    status_code=status.HTTP_201_CREATED,
    responses={**_NOT_FOUND, **_NOT_SUCCEEDED},
)
def create_evaluation(run_id: Id, body: EvaluationCreate, session: SessionDep, _admin: AdminDep) -> Run:
    """Queue a re-evaluation of run ``run_id`` on its dataset's newest ``days`` days (``oos/…`` metrics, filed
    under the run as well)."""
    return evaluate_later(session, get_run(session, run_id), body, body.days)


def evaluate_later(session: Session, target: Run, options: LaunchOptions, days: int) -> Run:
    """Queue an ``evaluate`` run of ``target`` (which must have succeeded with an artifact folder)."""
    problem = model_problem(target, target.experiment_id, target.id)
    if problem:
        raise HTTPException(status.HTTP_409_CONFLICT, problem)
    experiment = _experiment(session, target.experiment_id)
    params = {"run_id": target.id, "days": days}
    return queue_run(session, experiment, options, seed=target.seed, kind=RunKind.EVALUATE, params=params)


@router.put(
    "/runs/{run_id}/watch",
    response_model=WatchPublic,
    responses={**_NOT_FOUND, **_NOT_SUCCEEDED},
)
def set_watch(run_id: Id, body: WatchSet, session: SessionDep, _admin: AdminDep) -> Watch:
    """Re-evaluate run ``run_id`` on a schedule (replaces its watch); the worker of ``backend`` queues each one."""
    run = get_run(session, run_id)
    problem = model_problem(run, run.experiment_id, run.id)
    if problem:
        raise HTTPException(status.HTTP_409_CONFLICT, problem)
    watch = session.get(Watch, run_id) or Watch(run_id=run_id)
    watch.window_days, watch.every_s, watch.backend = body.window_days, body.every_s, body.backend
    session.add(watch)
    session.flush()
    session.refresh(watch)
    return watch


@router.get("/runs/{run_id}/watch", response_model=WatchPublic, responses={404: {"description": "not watched"}})
def read_watch(run_id: Id, session: SessionDep, _admin: AdminDep) -> Watch:
    """Run ``run_id``'s watch."""
    watch = session.get(Watch, run_id)
    if watch is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} is not watched")
    return watch


@router.delete("/runs/{run_id}/watch", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
def delete_watch(run_id: Id, session: SessionDep, _admin: AdminDep) -> Response:
    """Stop re-evaluating run ``run_id`` (its recorded ``oos/…`` metrics stay)."""
    watch = session.get(Watch, run_id)
    if watch is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} is not watched")
    session.delete(watch)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/watches", response_model=list[WatchPublic])
def list_watches(session: SessionDep, _admin: AdminDep) -> list[Watch]:
    """Every watch, by run."""
    return list(session.scalars(select(Watch).order_by(Watch.run_id)))


def _experiment(session: Session, experiment_id: int) -> Experiment:
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"experiment {experiment_id} not found")
    return experiment


def model_problem(run: Run | None, experiment_id: int, run_id: int) -> str | None:
    """Why ``run`` (id ``run_id``) cannot be read as a finished model of experiment ``experiment_id``, or None."""
    if run is None or run.experiment_id != experiment_id:
        return f"run {run_id} is not a run of experiment {experiment_id}"
    if run.kind not in (RunKind.TRAIN, RunKind.SWEEP):
        return f"run {run_id} is an {run.kind} run, not a trained model"
    if run.state != RunState.SUCCEEDED or not run.artifact_url:
        return f"run {run_id} is {run.state}; only a succeeded run with artifacts has a model"
    return None


def _at(loc: list[str | int], message: str) -> list[dict[str, Any]]:
    return [{"type": "value_error", "loc": loc, "msg": message}]
