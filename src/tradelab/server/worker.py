"""The reconciler: each tick moves the database's runs and the compute backend's resources towards agreement.

The database is the queue and the source of truth; the reconciler keeps no state of its own, so it can be
killed at any moment (``kill -9`` included) and restarted: it adopts the processes it finds, and never starts
a run twice (claims are atomic, starts are idempotent by key). Each tick starts with a **check-in** (its row in
``workers``: its backend and the hourly prices it knows), so the API can tell which backends have a live worker
and refuse at launch a ``max_cost`` that cannot cover one attempt. Then:

0. **schedule** the re-evaluations of watched runs that are due (an ``evaluate`` run each, on the watch's
   backend; one worker wins each due watch, and none is queued while the previous one is still active);
1. **claim** queued runs of its backend up to the concurrency limit, each in its own transaction (``SELECT …
   FOR UPDATE SKIP LOCKED`` on Postgres; a conditional ``UPDATE … RETURNING`` under SQLite's write lock),
   checking the budget atomically: the worst-case cost (hourly price × max wall time) is reserved against the
   budgets (``Run.reserved``), or the run fails with "budget exhausted";
2. **start** claimed runs on the backend with an idempotency key and a run-scoped token (its env also holds the
   attempt's number and wall-time deadline);
3. **adopt** active runs whose compute was started but never recorded (the worker died in between, or the run's
   agent reported ``running`` first): the backend finds it by the attempt's idempotency key and its id is
   recorded; a ``running`` run whose compute is gone ends its attempt (below). Every active run thus has a
   recorded compute that **watch** covers, or a start that a live worker (its lease) or this phase covers;
4. **watch** active runs: record what they cost so far (``Run.cost``, the reservation shrinking as the cost
   accrues); cancel on request; stop them at the max wall time, when idle (no heartbeat, or heartbeats that
   show no CPU or GPU work) or when their budget is spent; retry runs whose process ended without reporting;
   requeue runs whose interruptible pod was preempted (they resume from their last checkpoint). An attempt
   ends only once its compute is terminated (no attempt reports beside the next one), and first by the outcome
   its agent left in the run's folder (``attempts/<k>/outcome.json``, :mod:`tradelab.server.outcomes`): a run
   that finished while the API was unreachable is recorded as it ended, with the reports that never arrived;
5. **settle** runs that ended: their compute is terminated and its final cost recorded, the reservation released;
6. **reap** orphans: backend resources that no active run owns are terminated.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, delete, or_, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from tradelab.compute.base import ComputeBackend, ComputeError, ComputeSpec, ComputeState, Handle
from tradelab.faults import fault_point
from tradelab.server.budgets import attempt_wall_time_s, remaining_budget
from tradelab.server.db import is_sqlite, session_factory, transaction
from tradelab.server.models import Event, Experiment, Run, RunKind, RunState, Token, Watch, Worker, utcnow
from tradelab.server.outcomes import Outcome, read_outcome
from tradelab.server.reports import store_logs, store_metrics
from tradelab.server.routes.jobs import evaluate_later, model_problem
from tradelab.server.routes.runs import LaunchOptions, input_runs
from tradelab.server.run_folders import check_artifact_url, run_folder
from tradelab.server.security import issue_token

logger = logging.getLogger(__name__)
_ACTIVE = (RunState.STARTING, RunState.RUNNING)
#: A worker row unseen this long is deleted at the next check-in of any worker (its process died).
_FORGET_AFTER = timedelta(days=1)


@dataclass
class WorkerConfig:
    """How the reconciler behaves.

    :param api_url: the API the runs report to.
    :param concurrency: most runs active at once.
    :param heartbeat_timeout_s: an active run silent this long is stopped (and retried if it has attempts left).
    :param start_grace_s: how long a starting run may take to send its first heartbeat (a pod pulls its image).
    :param idle_timeout_s: a running run whose heartbeats show no CPU or GPU work this long is stopped.
    :param max_preemptions: how often a run may lose its interruptible pod and resume elsewhere.
    :param adopt_after_s: a run claimed by another worker and still not started after this long is taken over
        (that worker died between the claim and the start; longer than a start with all its retries).
    :param storage_url: where runs write their artifact folders (``<storage_url>/runs/run-<id>``);
        ``file://<home>/artifacts`` when None.
    :param data_url: where pods pull their datasets from (``tradelab data push`` puts them there); None when the
        runs see the worker's own store.
    :param env: extra environment for the runs (e.g. ``TRADELAB_HOME``); never a secret of the lab.
    """

    api_url: str = "http://127.0.0.1:8000"
    concurrency: int = 2
    heartbeat_timeout_s: float = 120.0
    start_grace_s: float = 600.0
    idle_timeout_s: float = 900.0
    max_preemptions: int = 5
    adopt_after_s: float = 120.0
    storage_url: str | None = None
    data_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class TickReport:
    """What one tick did (for logs and tests)."""

    scheduled: list[int] = field(default_factory=list)
    claimed: list[int] = field(default_factory=list)
    started: list[int] = field(default_factory=list)
    adopted: list[int] = field(default_factory=list)
    ended: dict[int, str] = field(default_factory=dict)
    reaped: list[str] = field(default_factory=list)


class Reconciler:
    """Drives runs through their states on one compute backend.

    :param engine: the control-plane database.
    :param backend: where runs execute.
    :param config: limits and timeouts.
    """

    def __init__(self, engine: Engine, backend: ComputeBackend, config: WorkerConfig | None = None) -> None:
        self.engine = engine
        self.sessions: sessionmaker[Session] = session_factory(engine)
        self.backend = backend
        self.config = config or WorkerConfig()
        #: This reconciler's name on the start leases of the runs it claims.
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"[-64:]
        #: Hourly price by GPU type ("" for the backend's default) as looked up for budget checks: published at
        #: each check-in for the API's launch check.
        self.prices: dict[str, float] = {}

    def tick(self) -> TickReport:
        """One pass of check-in, schedule, adopt, watch, settle, claim, start and reap."""
        report = TickReport()
        self._check_in()
        self._schedule(report)
        self._adopt(report)
        self._watch(report)
        self._settle()
        self._claim(report)
        self._start(report)
        self._reap(report)
        return report

    def run_forever(self, stop: threading.Event, interval_s: float = 1.0) -> None:
        """Tick every ``interval_s`` until ``stop`` is set; back off (up to 30 s) while the database is down."""
        backoff = interval_s
        while not stop.is_set():
            try:
                report = self.tick()
                backoff = interval_s
                if report.scheduled or report.claimed or report.adopted or report.ended or report.reaped:
                    extra = {"scheduled": report.scheduled, "claimed": report.claimed, "adopted": report.adopted}
                    logger.info("tick", extra={**extra, "ended": report.ended, "reaped": report.reaped})
            except OperationalError as error:
                backoff = min(backoff * 2, 30.0)
                logger.warning(
                    "database unavailable, retrying", extra={"retry_in_s": backoff, "error": str(error)[:200]}
                )
            except ComputeError as error:  # the backend is unreachable: nothing changed, try again next tick
                backoff = min(backoff * 2, 30.0)
                logger.warning("compute backend unavailable, retrying", extra={"error": str(error)[:200]})
            stop.wait(backoff)
        self.sign_off()

    def sign_off(self) -> None:
        """Delete this worker's check-in: its backend is no longer reported available on its account (when the
        database is down, the check-in simply goes stale)."""
        try:
            with transaction(self.sessions) as session:
                session.execute(delete(Worker).where(Worker.id == self.id))
        except OperationalError as error:
            logger.warning("could not sign off", extra={"error": str(error)[:200]})

    def _check_in(self) -> None:
        """Record that this worker is live, with the prices it knows (its default GPU type's looked up once)."""
        if "" not in self.prices:
            try:
                self.prices[""] = self.backend.price_per_hour(None)
            except ComputeError as error:  # published once the lookup succeeds; claims check it again anyway
                logger.warning("could not look up the default price", extra={"error": str(error)[:200]})
        now = utcnow()
        with transaction(self.sessions) as session:
            session.execute(delete(Worker).where(Worker.seen_at < now - _FORGET_AFTER))
            worker = session.get(Worker, self.id) or Worker(id=self.id, backend=self.backend.name, started_at=now)
            worker.seen_at, worker.prices = now, dict(self.prices)
            session.add(worker)

    # 0. schedule
    def _schedule(self, report: TickReport) -> None:
        now = utcnow()
        with transaction(self.sessions) as session:
            pending = select(Run).where(Run.kind == RunKind.EVALUATE, Run.state.in_([RunState.QUEUED, *_ACTIVE]))
            busy = {(run.params or {}).get("run_id") for run in session.scalars(pending)}
            for watch in session.scalars(select(Watch).where(Watch.backend == self.backend.name)).all():
                if watch.run_id in busy:
                    continue
                cutoff = now - timedelta(seconds=watch.every_s)
                due = (Watch.last_queued_at.is_(None)) | (Watch.last_queued_at <= cutoff)
                won = session.execute(
                    update(Watch)
                    .where(Watch.run_id == watch.run_id, due)
                    .values(last_queued_at=now)
                    .execution_options(synchronize_session=False)
                )
                if won.rowcount != 1:  # not due, or another worker queued it first
                    continue
                target = session.get(Run, watch.run_id)
                if target is not None and model_problem(target, target.experiment_id, target.id) is None:
                    options = LaunchOptions(backend=watch.backend)
                    report.scheduled.append(evaluate_later(session, target, options, watch.window_days).id)

    # 1. claim
    def _claim(self, report: TickReport) -> None:
        while True:
            with transaction(self.sessions) as session:
                active = session.query(Run).filter(Run.state.in_(_ACTIVE), Run.backend == self.backend.name).count()
                if active >= self.config.concurrency:
                    return
                run = self._claim_one(session)
                if run is None:
                    return
                self._reserve_or_refuse(session, run)
                report.claimed.append(run.id)

    def _claim_one(self, session: Session) -> Run | None:
        """Atomically move the oldest queued run to ``starting`` (attempt + 1), or None when the queue is empty."""
        if is_sqlite(self.engine):
            row = session.execute(
                text(
                    "UPDATE runs SET state = 'starting', attempts = attempts + 1 WHERE id = ("
                    "SELECT id FROM runs WHERE state = 'queued' AND backend = :backend ORDER BY queued_at, id LIMIT 1"
                    ") AND state = 'queued' RETURNING id"
                ),
                {"backend": self.backend.name},
            ).first()
            run = session.get(Run, row[0], populate_existing=True) if row else None
        else:
            queued = (Run.state == RunState.QUEUED) & (Run.backend == self.backend.name)
            query = select(Run).where(queued).order_by(Run.queued_at, Run.id).limit(1)
            run = session.scalar(query.with_for_update(skip_locked=True))
            if run is not None:
                run.state, run.attempts = RunState.STARTING, run.attempts + 1
        if run is not None:
            run.idempotency_key = f"run{run.id}-a{run.attempts}"
            run.started_at = run.heartbeat_at = run.start_lease_at = utcnow()
            run.start_lease = self.id
            _event(session, run, RunState.QUEUED)
        return run

    def _reserve_or_refuse(self, session: Session, run: Run) -> None:
        """Reserve the run's worst-case cost against the budgets, or fail it when they (or its own cap) cannot
        cover it."""
        if not is_sqlite(self.engine):  # serialise claimers on the budget rows (SQLite's write lock already does)
            session.execute(text("SELECT id FROM budgets FOR UPDATE"))
        worst = self._worst_case(session, run)
        remaining = remaining_budget(session, run.experiment_id)
        if run.max_cost is not None and run.cost + worst > run.max_cost + 1e-9:
            error = (
                f"budget exhausted: an attempt may cost up to {worst:.2f}, over the run's max cost {run.max_cost:.2f}"
            )
            self._end(session, run, RunState.FAILED, error)
        elif remaining is not None and worst > remaining + 1e-9:
            self._end(session, run, RunState.FAILED, f"budget exhausted: needs up to {worst:.2f}, {remaining:.2f} left")
        else:
            run.reserved, run.attempt_cost = worst, 0.0

    def _worst_case(self, session: Session, run: Run) -> float:
        """What one attempt of ``run`` may cost: the backend's hourly price × the max wall time."""
        price = self.prices[run.gpu_type or ""] = self.backend.price_per_hour(run.gpu_type)
        return price * self._max_wall_time(session, run) / 3600.0

    def _max_wall_time(self, session: Session, run: Run) -> float:
        experiment = session.get(Experiment, run.experiment_id)
        return attempt_wall_time_s(run.max_wall_time_s, experiment.config if experiment else None)

    # 2. start
    def _start(self, report: TickReport) -> None:
        """Start the claimed runs this reconciler holds the lease of, or whose lease went stale (taken atomically)."""
        now = utcnow()
        startable = (
            (Run.state == RunState.STARTING)
            & Run.compute_id.is_(None)
            & (Run.backend == self.backend.name)
            & self._free_start(now)
        )
        jobs = []
        with transaction(self.sessions) as session:
            for run_id in session.scalars(select(Run.id).where(startable)).all():
                lease = (
                    update(Run).where(startable & (Run.id == run_id)).values(start_lease=self.id, start_lease_at=now)
                )
                if session.execute(lease).rowcount == 1:  # type: ignore[attr-defined]  # another worker may have won
                    run = session.get(Run, run_id, populate_existing=True)
                    assert run is not None
                    if run.cancel_requested:  # cancelled between its claim and its start: never start it
                        self._end(session, run, RunState.CANCELLED, "cancelled on request")
                        continue
                    jobs.append((run.id, run.idempotency_key, self._spec(session, run)))
        for run_id, key, spec in jobs:
            try:
                handle = self.backend.start(run_id, spec, key)  # idempotent: a retried start returns the same one
            except ComputeError as error:
                self._start_failed(run_id, error, report)
                continue
            fault_point("worker.compute_started")
            with transaction(self.sessions) as session:
                run = session.get(Run, run_id)
                # its agent may have reported running already; adopted meanwhile by another worker: the same compute
                if run is not None and run.state in _ACTIVE and run.compute_id in (None, handle.resource_id):
                    run.compute_id = handle.resource_id
                    report.started.append(run_id)
                else:  # cancelled or ended meanwhile: the next reap stops what was started
                    logger.info("run ended while starting", extra={"run_id": run_id})

    def _free_start(self, now: datetime) -> ColumnElement[bool]:
        """Runs whose start is this reconciler's, or nobody's: unleased, or leased by a worker that died (its lease
        went stale)."""
        stale = now - timedelta(seconds=self.config.adopt_after_s)
        return or_(Run.start_lease == self.id, Run.start_lease.is_(None), Run.start_lease_at < stale)

    def _start_failed(self, run_id: int, error: ComputeError, report: TickReport) -> None:
        """A refused start fails the attempt; a transient one is retried next tick, until the start grace ends."""
        with transaction(self.sessions) as session:
            run = session.get(Run, run_id)
            if run is None or run.state != RunState.STARTING:
                return
            waited = utcnow() - (_aware(run.started_at) or utcnow())
            if error.transient and waited < timedelta(seconds=self.config.start_grace_s):
                logger.warning("start failed, retrying next tick", extra={"run_id": run_id, "error": str(error)})
                return
            run.reserved = 0.0
            self._retry_or_end(session, run, RunState.FAILED, f"could not start: {error}")
            report.ended[run.id] = run.state

    def _spec(self, session: Session, run: Run) -> ComputeSpec:
        """The run agent's command; its environment holds the API, a fresh run-scoped token and the run's folder.

        The agent reads its config from the API: RunPod's API takes env values only without quotes.
        """
        for token in session.scalars(select(Token).where(Token.run_id == run.id, Token.revoked_at.is_(None))):
            token.revoked_at = utcnow()  # one live token per run: the current attempt's
        secret = issue_token(session, f"run {run.id} attempt {run.attempts}", role="run", run_id=run.id)
        wall_time = self._max_wall_time(session, run)
        deadline = (_aware(run.started_at) or utcnow()).timestamp() + wall_time  # as watch's max wall time counts
        env = {
            **self.config.env,
            "TRADELAB_API_URL": self.config.api_url,
            "TRADELAB_RUN_TOKEN": secret,
            "TRADELAB_RUN_URL": self._run_url(run.id),
            "TRADELAB_ATTEMPT": str(run.attempts),
            "TRADELAB_DEADLINE": str(deadline),
        }
        if self.config.data_url:
            env["TRADELAB_DATA_URL"] = self.config.data_url
        command = ["tradelab", "worker", "run", "--run-id", str(run.id), "--seed", str(run.seed)]
        return ComputeSpec(command, env, wall_time, run.gpu_type)

    def _run_url(self, run_id: int) -> str:
        """The run's artifact folder (every attempt writes there)."""
        return run_folder(run_id, self.config.storage_url)

    # 3. adopt
    def _adopt(self, report: TickReport) -> None:
        """Record the compute of active runs whose start was never recorded; end the attempt of a ``running`` one
        whose compute is gone (a ``starting`` one without compute is left to :meth:`_start`)."""
        now = utcnow()
        unrecorded = (
            Run.state.in_(_ACTIVE)
            & Run.compute_id.is_(None)
            & (Run.backend == self.backend.name)
            & ((Run.state == RunState.RUNNING) | self._free_start(now))  # a running one's start is over, whoever's
        )
        with transaction(self.sessions) as session:
            for run in session.scalars(select(Run).where(unrecorded)).all():
                try:
                    handle = self.backend.find(run.idempotency_key)  # type: ignore[arg-type]  # set at the claim
                    if handle is not None:
                        run.compute_id = handle.resource_id
                        report.adopted.append(run.id)
                    elif run.state == RunState.RUNNING:
                        gone = f"its compute ({run.idempotency_key}) is gone, and was never recorded"
                        self._attempt_over(session, run, RunState.FAILED, gone)
                        report.ended[run.id] = run.state
                except (ComputeError, OSError) as error:  # the backend or the storage is unreachable: next tick
                    logger.warning("could not adopt a run", extra={"run_id": run.id, "error": str(error)[:200]})

    # 4. watch
    def _watch(self, report: TickReport) -> None:
        now = utcnow()
        with transaction(self.sessions) as session:
            active = session.scalars(
                select(Run).where(Run.state.in_(_ACTIVE), Run.backend == self.backend.name, Run.compute_id.is_not(None))
            ).all()
            for run in active:
                try:
                    self._accrue(session, run)
                    verdict = self._verdict(session, run, now)
                    if verdict is None:
                        continue
                    self._stop(session, run)
                    self._attempt_over(session, run, *verdict)
                except (ComputeError, OSError) as error:  # its compute or its folder could not be read: next tick
                    logger.warning("compute call failed", extra={"run_id": run.id, "error": str(error)[:200]})
                    continue
                report.ended[run.id] = run.state

    def _accrue(self, session: Session, run: Run) -> None:
        """Record what the active attempt has cost so far; its reservation shrinks by as much."""
        cost = self.backend.cost_so_far(Handle(self.backend.name, run.compute_id))  # type: ignore[arg-type]
        if cost > run.attempt_cost:
            run.cost += cost - run.attempt_cost
            run.reserved = max(run.reserved - (cost - run.attempt_cost), 0.0)
            run.attempt_cost = cost

    def _stop(self, session: Session, run: Run) -> None:
        """Terminate the run's compute and settle what its attempt cost.

        :raises ComputeError: (transient) the compute still runs: nothing is settled, and its attempt goes on.
        """
        handle = Handle(self.backend.name, run.compute_id)  # type: ignore[arg-type]
        self.backend.terminate(handle)
        if self.backend.status(handle) in (ComputeState.PENDING, ComputeState.RUNNING):
            raise ComputeError(f"{handle.resource_id} still runs after its termination", transient=True)
        self._accrue(session, run)
        run.reserved = 0.0

    def _attempt_over(self, session: Session, run: Run, state: RunState, error: str | None) -> None:
        """The attempt's compute is stopped or gone: end the run as the outcome its agent left says, else go to
        ``state`` (a retry when attempts remain, a requeue when preempted).

        :raises OSError: the run's folder could not be read (the attempt is over, its outcome unknown yet).
        """
        if state != RunState.CANCELLED:
            try:
                outcome = read_outcome(self._run_url(run.id), run.attempts)
                if outcome is not None:
                    self._record_outcome(session, run, outcome)
                    return
            except ValueError as problem:  # an unreadable outcome, or reports in it the lab refuses
                error = f"{error}; its outcome was not recorded: {problem}"
        if state == RunState.QUEUED:
            self._requeue_preempted(session, run, error)
        else:
            self._retry_or_end(session, run, state, error)

    def _record_outcome(self, session: Session, run: Run, outcome: Outcome) -> None:
        """End the run as its attempt's outcome says, storing the reports that never reached the API (a run's own
        failure is not retried; a success is never recorded failed).

        :raises ValueError: a metric point the lab refuses (nothing is stored then).
        """
        store_metrics(session, run.id, outcome.metrics)
        store_logs(session, run.id, outcome.logs)
        if outcome.state == "failed":
            self._end(session, run, RunState.FAILED, outcome.error or "failed (its outcome gives no error)")
            return
        note = None
        if outcome.artifact_url is not None:
            reads, root = input_runs(run.params or {}), self.config.storage_url
            try:
                run.artifact_url = check_artifact_url(session, run.id, reads, outcome.artifact_url, root)
            except ValueError as problem:
                note = f"its artifact folder was not recorded: {problem}"
        self._end(session, run, RunState.SUCCEEDED, note)

    def _verdict(self, session: Session, run: Run, now: datetime) -> tuple[RunState, str | None] | None:
        """Why an active run must stop now (its next state and error), or None to let it go on."""
        handle = Handle(self.backend.name, run.compute_id)  # type: ignore[arg-type]
        if run.cancel_requested:
            return RunState.CANCELLED, "cancelled on request"
        started = _aware(run.started_at) or now
        if run.max_wall_time_s is not None and now - started > timedelta(seconds=run.max_wall_time_s):
            return RunState.FAILED, f"max wall time of {run.max_wall_time_s:.0f} s exceeded"
        if run.max_cost is not None and run.cost >= run.max_cost:
            return RunState.FAILED, f"budget exhausted: it cost {run.cost:.2f} of its max cost {run.max_cost:.2f}"
        remaining = remaining_budget(session, run.experiment_id)
        if remaining is not None and remaining < -1e-9:  # a cap was lowered under what is committed
            return RunState.FAILED, f"budget exhausted: the cap is {-remaining:.2f} under what runs committed"
        state = self.backend.status(handle)
        if state == ComputeState.PREEMPTED:
            return RunState.QUEUED, f"attempt {run.attempts}: its interruptible pod was preempted"
        if state in (ComputeState.SUCCEEDED, ComputeState.FAILED, ComputeState.GONE):
            tail = "\n".join(self.backend.logs(handle, 20))
            return RunState.FAILED, f"its process ended ({state}) without reporting a result:\n{tail}".rstrip()
        limit = self.config.start_grace_s if run.state == RunState.STARTING else self.config.heartbeat_timeout_s
        last = _aware(run.heartbeat_at) or started
        if now - last > timedelta(seconds=limit):
            return RunState.FAILED, f"no heartbeat for {(now - last).total_seconds():.0f} s"
        busy = _aware(run.active_at)
        if (
            run.state == RunState.RUNNING
            and busy is not None
            and now - busy > timedelta(seconds=self.config.idle_timeout_s)
        ):
            return RunState.FAILED, f"idle: no CPU or GPU work for {(now - busy).total_seconds():.0f} s"
        return None

    def _requeue_preempted(self, session: Session, run: Run, error: str | None) -> None:
        """Queue a preempted run again (a free attempt, up to ``max_preemptions``): it resumes from its checkpoint."""
        if run.preemptions >= self.config.max_preemptions:
            self._end(session, run, RunState.FAILED, f"{error}; preempted {run.preemptions + 1} times, giving up")
            return
        run.preemptions += 1
        run.max_attempts += 1  # a preemption does not use up one of the run's attempts
        self._requeue(session, run, f"{error}; queued again to resume from its last checkpoint")

    def _retry_or_end(self, session: Session, run: Run, state: RunState, error: str | None) -> None:
        if state == RunState.FAILED and run.attempts < run.max_attempts:
            self._requeue(session, run, f"attempt {run.attempts} failed: {error}")
            return
        self._end(session, run, state, error)

    def _requeue(self, session: Session, run: Run, error: str) -> None:
        previous = run.state
        run.state, run.compute_id, run.error, run.active_at = RunState.QUEUED, None, error, None
        run.reserved, run.attempt_cost = 0.0, 0.0
        _event(session, run, previous)

    def _end(self, session: Session, run: Run, state: RunState, error: str | None) -> None:
        previous = run.state
        run.reserved = 0.0 if run.compute_id is None else run.reserved  # started ones are settled by _settle
        run.state, run.error, run.ended_at = state, error, utcnow()
        _event(session, run, previous)

    # 5. settle
    def _settle(self) -> None:
        """Runs that ended (by their own report, or here) with compute still accounted: stop it, record its cost."""
        with transaction(self.sessions) as session:
            ended = session.scalars(
                select(Run).where(
                    Run.state.not_in((*_ACTIVE, RunState.QUEUED)),
                    Run.backend == self.backend.name,
                    Run.reserved > 0,
                    Run.compute_id.is_not(None),
                )
            ).all()
            for run in ended:
                try:
                    self._stop(session, run)
                except ComputeError as error:
                    logger.warning("could not settle a run", extra={"run_id": run.id, "error": str(error)[:200]})

    # 6. reap
    def _reap(self, report: TickReport) -> None:
        owned = self.backend.list_owned()
        if not owned:
            return
        with transaction(self.sessions) as session:
            runs = {r.id: r for r in session.scalars(select(Run).where(Run.id.in_([o.run_id for o in owned])))}
            for resource in owned:
                run = runs.get(resource.run_id)
                active = run is not None and run.state in _ACTIVE and run.compute_id == resource.handle.resource_id
                finishing = (  # started, not recorded yet (by the worker starting it, or by the next adopt)
                    run is not None
                    and run.state in _ACTIVE
                    and run.compute_id is None
                    and run.idempotency_key == resource.idempotency_key
                )
                if not (active or finishing):
                    self.backend.terminate(resource.handle)
                    report.reaped.append(resource.handle.resource_id)


def _event(session: Session, run: Run, previous: str) -> None:
    session.add(Event(kind="run_state", run_id=run.id, payload={"state": str(run.state), "previous": str(previous)}))


def _aware(moment: datetime | None) -> datetime | None:
    """``moment`` as an aware UTC time (SQLite returns naive datetimes)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def worker_env() -> dict[str, Any]:
    """The environment a run inherits from the worker: its home and database, nothing secret."""
    return {key: value for key, value in os.environ.items() if key in ("TRADELAB_HOME", "TRADELAB_STORAGE_URL")}
