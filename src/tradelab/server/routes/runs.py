"""Runs: queue one for an experiment, list and read them, cancel them; what a run reports (heartbeat, status, logs).

Every state change goes through :func:`change_state`, which writes a ``run_state`` event in the same transaction.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, WithJsonSchema
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tradelab.server.budgets import attempt_wall_time_s
from tradelab.server.deps import AdminDep, RunReaderDep, RunWriterDep, SessionDep
from tradelab.server.models import Event, Experiment, Run, RunKind, RunState, utcnow
from tradelab.server.routes.common import JSON_INTEGER, MAX_ID, MAX_JSON_INT, Id, Text, UtcDatetime
from tradelab.server.routes.compute import BACKENDS, live_workers
from tradelab.server.run_folders import check_artifact_url

router = APIRouter(tags=["runs"])

#: The answers of an endpoint on one run: 404 for an unknown run; 409 for a transition its state forbids.
RUN_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such run"}}
_CONFLICT: dict[int | str, dict[str, Any]] = {**RUN_NOT_FOUND, 409: {"description": "not allowed in the run's state"}}

#: The states a run's own reports may move it between (the worker moves it out of ``queued``).
REPORTED_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.STARTING: frozenset({RunState.RUNNING, RunState.FAILED}),
    RunState.RUNNING: frozenset({RunState.SUCCEEDED, RunState.FAILED}),
}


def _known_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}, one of {sorted(BACKENDS)}")
    return backend


#: The name of a compute backend the control plane knows: a pattern of exactly those names in the schema (an enum
#: would make the dashboard's typed client reject the names it reads from GET /api/compute/backends).
BackendName = Annotated[
    str,
    AfterValidator(_known_backend),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": f"^({'|'.join(map(re.escape, sorted(BACKENDS)))})$",
            "description": "a compute backend",
        }
    ),
]


#: A run's seed.
Seed = Annotated[int, Field(ge=0, le=MAX_ID), JSON_INTEGER]


class LaunchOptions(BaseModel):
    """Where and how a run executes: ``backend``, its GPU type, the most it may cost and run for."""

    max_wall_time_s: StrictFloat | None = Field(None, gt=0)
    backend: BackendName = "local"
    gpu_type: Text | None = Field(None, max_length=64, description="the backend's GPU type id; its default when null")
    max_cost: StrictFloat | None = Field(None, gt=0, description="the most the run may cost, every attempt included")


class RunCreate(LaunchOptions):
    """A training run to queue: the seed defaults to the experiment's first."""

    seed: Seed | None = None


class RunPublic(BaseModel):
    """A run as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    experiment_id: int
    state: RunState
    kind: RunKind
    params: dict[str, Any] | None
    seed: int
    attempts: int
    max_attempts: int
    backend: str
    idempotency_key: str | None
    compute_id: str | None
    cancel_requested: bool
    max_wall_time_s: float | None
    gpu_type: str | None
    max_cost: float | None
    cost: float
    reserved: float
    preemptions: int
    artifact_url: str | None
    error: str | None
    queued_at: UtcDatetime
    started_at: UtcDatetime | None
    heartbeat_at: UtcDatetime | None
    active_at: UtcDatetime | None
    ended_at: UtcDatetime | None


class RunsPublic(BaseModel):
    """A page of runs and how many match in all."""

    data: list[RunPublic]
    count: int


class RunStatusUpdate(BaseModel):
    """A run's report of its own progress."""

    state: Literal[RunState.RUNNING, RunState.SUCCEEDED, RunState.FAILED]
    error: Text | None = None
    artifact_url: Text | None = None


class Heartbeat(BaseModel):
    """A run's sign of life: whether it did work (CPU or GPU) since its previous heartbeat."""

    busy: StrictBool = True


class RunSpec(BaseModel):
    """What a run executes: its kind, its experiment's config and its seed, the kind's parameters, and the
    artifact folders of the runs it reads (an ensemble's members, the run an evaluation scores)."""

    kind: RunKind = RunKind.TRAIN
    config: dict[str, Any]
    seed: int
    params: dict[str, Any] = Field(default_factory=dict)
    inputs: list[str] = Field(default_factory=list, description="artifact folders of the runs named in params")


def change_state(session: Session, run: Run, state: RunState) -> None:
    """Move ``run`` to ``state``, stamping its times, and record a ``run_state`` event in the same transaction."""
    previous = run.state
    run.state = state
    now = utcnow()
    if state == RunState.RUNNING and run.started_at is None:
        run.started_at = now
    if state.final:
        run.ended_at = now
    session.add(Event(kind="run_state", run_id=run.id, payload={"state": state.value, "previous": previous}))


def get_run(session: Session, run_id: int, *, lock: bool = False) -> Run:
    """Run ``run_id`` (locked for update when ``lock``, on databases that lock rows).

    :raises HTTPException: 404 when there is no such run.
    """
    run = session.get(Run, run_id, with_for_update=lock or None)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} not found")
    return run


@router.post(
    "/experiments/{experiment_id}/runs",
    response_model=RunPublic,
    status_code=status.HTTP_201_CREATED,
    responses={404: {"description": "no such experiment"}},
)
def create_run(experiment_id: Id, body: RunCreate, session: SessionDep, _admin: AdminDep) -> Run:
    """Queue a training run of experiment ``experiment_id``."""
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"experiment {experiment_id} not found")
    return queue_run(session, experiment, body, seed=launch_seed(experiment, body.seed))


def launch_seed(experiment: Experiment, seed: int | None) -> int:
    """The seed asked for, else the experiment's first."""
    return seed if seed is not None else int((experiment.config.get("seeds") or [0])[0])


def queue_run(
    session: Session,
    experiment: Experiment,
    options: LaunchOptions,
    *,
    seed: int,
    kind: RunKind = RunKind.TRAIN,
    params: dict[str, Any] | None = None,
) -> Run:
    """Add a queued run of ``experiment`` with its ``run_state`` event.

    :raises HTTPException: 422 when its ``max_cost`` cannot cover one attempt (:func:`check_max_cost`).
    """
    check_max_cost(session, experiment, options)
    run = Run(
        experiment_id=experiment.id,
        kind=kind,
        params=params,
        seed=seed,
        max_wall_time_s=options.max_wall_time_s,
        backend=options.backend,
        gpu_type=options.gpu_type,
        max_cost=options.max_cost,
        state=RunState.QUEUED,
    )
    session.add(run)
    session.flush()
    session.add(Event(kind="run_state", run_id=run.id, payload={"state": RunState.QUEUED.value, "previous": None}))
    session.flush()
    session.refresh(run)
    return run


def check_max_cost(session: Session, experiment: Experiment, options: LaunchOptions) -> None:
    """Refuse at launch a ``max_cost`` under one attempt's worst case, the reservation a worker makes before it
    starts the run (hourly price × max wall time): otherwise the run is queued only to fail "budget exhausted".

    The price is the lowest the backend's live workers published for the GPU type; while one of them has not
    looked it up yet, the worker's own check at the claim decides.

    :raises HTTPException: 422 naming ``max_cost`` and ``max_wall_time_s``, with the numbers that would fit.
    """
    if options.max_cost is None:
        return
    prices = [worker.prices.get(options.gpu_type or "") for worker in live_workers(session, options.backend)]
    known = [float(price) for price in prices if price is not None]
    if not known or len(known) < len(prices):
        return
    price = min(known)
    wall_s = attempt_wall_time_s(options.max_wall_time_s, experiment.config)
    worst = price * wall_s / 3600.0
    if options.max_cost + 1e-9 >= worst:
        return
    gpu = options.gpu_type or "its default GPU type"
    message = (
        f"max_cost {options.max_cost:.2f} cannot cover one attempt: a {options.backend} worker reserves the hourly "
        f"price × max_wall_time_s before it starts the run ({gpu}: {price:.2f}/h × {wall_s:.0f} s = {worst:.2f}); "
        f"raise max_cost to {worst:.2f} or set max_wall_time_s to at most {options.max_cost / price * 3600:.0f}"
    )
    detail = [{"loc": ["body", "max_cost"], "msg": message, "type": "value_error"}]
    raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


@router.get("/runs", response_model=RunsPublic)
def list_runs(
    session: SessionDep,
    _admin: AdminDep,
    state: RunState | None = None,
    experiment_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_JSON_INT)] = 0,
) -> RunsPublic:
    """Runs, newest first, optionally of one state and one experiment."""
    conditions = []
    if state is not None:
        conditions.append(Run.state == state.value)
    if experiment_id is not None:
        conditions.append(Run.experiment_id == experiment_id)
    count = session.scalar(select(func.count()).select_from(Run).where(*conditions)) or 0
    runs = session.scalars(select(Run).where(*conditions).order_by(Run.id.desc()).limit(limit).offset(offset)).all()
    return RunsPublic(data=[RunPublic.model_validate(run) for run in runs], count=count)


@router.get("/runs/{run_id}", response_model=RunPublic, responses=RUN_NOT_FOUND)
def read_run(run_id: Id, session: SessionDep, _admin: AdminDep) -> Run:
    """Run ``run_id``."""
    return get_run(session, run_id)


@router.post("/runs/{run_id}/cancel", response_model=RunPublic, responses=_CONFLICT)
def cancel_run(run_id: Id, session: SessionDep, _admin: AdminDep) -> Run:
    """Cancel a run: a queued one at once; a starting or running one is flagged for its worker to stop.

    :raises HTTPException: 409 when the run is already final.
    """
    run = get_run(session, run_id, lock=True)
    current = RunState(run.state)
    if current.final:
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id} is already {current.value}")
    if current == RunState.QUEUED:
        change_state(session, run, RunState.CANCELLED)
    else:
        run.cancel_requested = True
    return run


@router.post("/runs/{run_id}/heartbeat", response_model=RunPublic, responses=_CONFLICT)
def heartbeat(run_id: Id, session: SessionDep, _writer: RunWriterDep, body: Heartbeat | None = None) -> Run:
    """Record that the run is alive (and working, when ``busy``); the answer tells it whether to cancel.

    :raises HTTPException: 409 when the run is final.
    """
    run = get_run(session, run_id, lock=True)
    if RunState(run.state).final:
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id} is already {run.state}")
    run.heartbeat_at = utcnow()
    if body is None or body.busy or run.active_at is None:
        run.active_at = run.heartbeat_at
    return run


@router.get("/runs/{run_id}/spec", response_model=RunSpec, responses=RUN_NOT_FOUND)
def read_spec(run_id: Id, session: SessionDep, _reader: RunReaderDep) -> RunSpec:
    """What the run executes (read by its agent with the run's own token)."""
    run = get_run(session, run_id)
    experiment = session.get(Experiment, run.experiment_id)
    assert experiment is not None  # runs are deleted with their experiment
    params = run.params or {}
    inputs = [get_run(session, member).artifact_url or "" for member in input_runs(params)]
    return RunSpec(kind=RunKind(run.kind), config=experiment.config, seed=run.seed, params=params, inputs=inputs)


def input_runs(params: dict[str, Any]) -> list[int]:
    """The runs whose artifacts a run reads: an ensemble's ``members``, or the ``run_id`` an evaluation scores."""
    if "run_id" in params:
        return [int(params["run_id"])]
    return [int(member) for member in params.get("members", [])]


@router.post("/runs/{run_id}/status", response_model=RunPublic, responses=_CONFLICT)
def report_status(run_id: Id, body: RunStatusUpdate, session: SessionDep, _writer: RunWriterDep) -> Run:
    """Move the run on: ``starting → running``, ``running → succeeded | failed``, ``starting → failed``.

    :raises HTTPException: 409 for any other transition; 422 for an ``artifact_url`` outside the run's folder.
    """
    run = get_run(session, run_id, lock=True)
    current = RunState(run.state)
    if body.state not in REPORTED_TRANSITIONS.get(current, frozenset()):
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id} cannot go from {current.value} to {body.state}")
    if body.error is not None:
        run.error = body.error
    if body.artifact_url is not None:
        run.artifact_url = _artifact_folder(session, run, body.artifact_url)
    if body.state == RunState.RUNNING:  # its first sign of life: the heartbeat timeout counts from here
        run.heartbeat_at = run.active_at = utcnow()
    change_state(session, run, RunState(body.state))
    return run


def _artifact_folder(session: Session, run: Run, url: str) -> str:
    """``url`` if the run may report it as its artifact folder (see :func:`.run_folders.check_artifact_url`).

    :raises HTTPException: 422 naming ``artifact_url``: a run's token must not point the lab at other files.
    """
    try:
        return check_artifact_url(session, run.id, input_runs(run.params or {}), url)
    except ValueError as error:
        message = f"the artifact folder must be the run's own folder or inside it: {error}"
        detail = [{"loc": ["body", "artifact_url"], "msg": message, "type": "value_error"}]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from None
