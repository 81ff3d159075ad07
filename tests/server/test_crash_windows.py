"""The worker killed inside each window of a run's start, then restarted, on SQLite and Postgres.

A fault point (:mod:`tradelab.faults`) or the RunPod backend's retry wait raises :class:`Killed` at exactly the
moment under test; a fresh :class:`Reconciler` is then the restarted worker (it keeps no state of its own). The
run must be adopted and finish, or end with a clear error; a cancel must stop it; its concurrency slot and its
reservation must be freed, the reservation settled to what its compute really cost.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.server import test_runpod_worker
from tests.server.test_runpod_worker import PRICE, billed, queue, reconciler, settle, update_run
from tests.server.test_worker import _queue, _runs, _until
from tradelab.compute.base import ComputeSpec, Handle
from tradelab.compute.fake_runpod import FakeRunPod
from tradelab.compute.local import LocalBackend
from tradelab.faults import Killed, armed
from tradelab.processes import pid_alive
from tradelab.server.budgets import remaining_budget
from tradelab.server.db import make_engine, session_factory, transaction
from tradelab.server.models import Budget, Run, RunState
from tradelab.server.worker import Reconciler, WorkerConfig

ROOT = Path(__file__).resolve().parents[2]
fake = test_runpod_worker.fake  # the fake RunPod whose pods run the stub agent


class StubAgentReconciler(Reconciler):
    """Runs the stub agent of :mod:`tests.server.stub_pod` as a local process: it reports ``running`` through the
    database, works ``seconds``, then reports ``succeeded``."""

    def __init__(self, db_url: str, root: Path, seconds: float, **config: Any) -> None:
        super().__init__(make_engine(db_url), LocalBackend(root, hourly_price=1.0), WorkerConfig(**config))
        self.db_url, self.seconds = db_url, seconds

    def _spec(self, session: Session, run: Run) -> ComputeSpec:
        env = {"PYTHONPATH": str(ROOT), "STUB_DB_URL": self.db_url, "STUB_SECONDS": str(self.seconds)}
        env["TRADELAB_RUN_ID"] = str(run.id)
        return ComputeSpec([sys.executable, "-m", "tests.server.stub_pod"], env, 3600.0)


def _remaining(db_url: str) -> float | None:
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:
        left = remaining_budget(session, None)
    engine.dispose()
    return left


def _once_running(db_url: str, run_id: int) -> Callable[[], None]:
    """A fault action: wait until the run's agent reported ``running``, then die (the widest window)."""

    def die_once_running() -> None:
        _until(lambda: _runs(db_url)[run_id].state == RunState.RUNNING)
        raise Killed

    return die_once_running


def _tick_until_final(worker: Reconciler, db_url: str, run_id: int) -> Run:
    """Tick until the run is final and settled (nothing reserved); the run."""
    run = _runs(db_url)[run_id]

    def settled() -> bool:
        nonlocal run
        worker.tick()
        run = _runs(db_url)[run_id]
        return RunState(run.state).final and run.reserved == 0

    _until(settled, timeout_s=40.0)
    return run


@pytest.fixture
def spawns() -> Iterator[list[str]]:
    """Counts the local processes spawned while it is in use (through the ``local.spawned`` fault point)."""
    seen: list[str] = []
    with armed("local.spawned", lambda: seen.append("spawned")):
        yield seen


# local backend


@pytest.mark.parametrize("window", ["local.spawned", "worker.compute_started"])
def test_local_worker_killed_between_spawn_and_record_adopts_the_process_and_cancel_stops_it(
    db_url: str, tmp_path: Path, window: str
) -> None:
    run_id, waiting = _queue(db_url, 2)
    compute = tmp_path / "compute"
    with armed(window, _once_running(db_url, run_id)), pytest.raises(Killed):
        StubAgentReconciler(db_url, compute, 60.0, concurrency=1).tick()
    assert _runs(db_url)[run_id].compute_id is None  # started and running, never recorded
    restarted = StubAgentReconciler(db_url, compute, 60.0, concurrency=1)
    with armed("local.spawned", lambda: pytest.fail("the restarted worker started a second process")):
        adopted = restarted.tick().adopted
    run = _runs(db_url)[run_id]
    key = f"run{run_id}-a1"
    assert adopted == [run_id] and run.state == RunState.RUNNING and run.compute_id == key and run.attempts == 1
    assert [o.idempotency_key for o in restarted.backend.list_owned()] == [key]  # found, not reaped
    update_run(db_url, run_id, cancel_requested=True)
    report = restarted.tick()
    run = _runs(db_url)[run_id]
    assert report.ended == {run_id: RunState.CANCELLED} and run.state == RunState.CANCELLED
    assert run.reserved == 0 and run.cost > 0  # settled to what it cost
    assert report.claimed == [waiting]  # its concurrency slot is free again
    assert restarted.backend.status(Handle("local", key)) != "running"
    assert [o.idempotency_key for o in restarted.backend.list_owned()] == [f"run{waiting}-a1"]


def test_local_worker_killed_between_spawn_and_record_then_the_run_finishes(db_url: str, tmp_path: Path) -> None:
    (run_id,) = _queue(db_url, 1)
    compute = tmp_path / "compute"
    with armed("worker.compute_started", _once_running(db_url, run_id)), pytest.raises(Killed):
        StubAgentReconciler(db_url, compute, 1.0).tick()
    run = _tick_until_final(StubAgentReconciler(db_url, compute, 1.0), db_url, run_id)
    assert run.state == RunState.SUCCEEDED and run.attempts == 1 and run.compute_id == f"run{run_id}-a1"
    assert run.cost > 0 and run.reserved == 0


def test_local_worker_killed_after_recording_a_start_before_spawning_spawns_it_once_on_restart(
    db_url: str, tmp_path: Path, spawns: list[str]
) -> None:
    (run_id,) = _queue(db_url, 1)
    compute = tmp_path / "compute"
    with armed("local.meta_written"), pytest.raises(Killed):
        StubAgentReconciler(db_url, compute, 1.0).tick()
    assert spawns == [] and _runs(db_url)[run_id].state == RunState.STARTING
    run = _tick_until_final(StubAgentReconciler(db_url, compute, 1.0, adopt_after_s=0.0), db_url, run_id)
    assert run.state == RunState.SUCCEEDED and run.attempts == 1 and spawns == ["spawned"]


def test_a_local_start_retried_while_its_process_runs_returns_it_and_spawns_nothing(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "compute")
    spec = ComputeSpec([sys.executable, "-c", "import signal; signal.pause()"])
    with armed("local.spawned"), pytest.raises(Killed):
        backend.start(7, spec, "run7-a1")  # the process runs; the worker died before it recorded anything more
    again = LocalBackend(tmp_path / "compute")
    with armed("local.spawned", lambda: pytest.fail("a second process for the same key")):
        handle = again.start(7, spec, "run7-a1")
    assert again.status(handle) == "running" and [o.run_id for o in again.list_owned()] == [7]
    again.terminate(handle)
    pid = int((tmp_path / "compute" / "run7-a1" / "pid").read_text())  # recorded by the process itself
    assert again.status(handle) == "failed" and again.list_owned() == [] and not pid_alive(pid)


# RunPod


def _die_in_create_retry(db_url: str, run_id: int, **pods: Any) -> None:
    """A worker whose pod create was lost (``ghost_create``): it dies in the retry's wait, once the pod's agent
    reported ``running``."""
    dying = reconciler(db_url, pods=pods)
    dying.backend.sleep = lambda _: _once_running(db_url, run_id)()  # type: ignore[attr-defined]
    with pytest.raises(Killed):
        dying.tick()


def test_runpod_worker_killed_while_retrying_a_lost_create_adopts_the_pod_and_settles_its_real_cost(
    db_url: str, fake: FakeRunPod
) -> None:
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:
        session.add(Budget(experiment_id=None, monthly_cap=10.0))
    engine.dispose()
    fake.inject(ghost_create=1, latency_s=0.05)
    (run_id,) = queue(db_url)
    _die_in_create_retry(db_url, run_id)
    (pod,) = fake.pods()
    assert _runs(db_url)[run_id].compute_id is None and _remaining(db_url) == pytest.approx(10.0 - PRICE)
    restarted = reconciler(db_url)
    restarted.tick()
    assert _runs(db_url)[run_id].compute_id == pod.id and not fake.pod(pod.id).terminated  # adopted, not reaped
    run = settle(db_url, restarted, fake, run_id)
    assert run.state == RunState.SUCCEEDED and run.attempts == 1 and len(fake.pods()) == 1
    assert run.cost == pytest.approx(billed(fake), abs=PRICE / 3600 * 1.5) and run.cost < PRICE / 10
    assert _remaining(db_url) == pytest.approx(10.0 - run.cost)  # the 0.69 reservation is released


def test_runpod_worker_killed_while_retrying_a_lost_create_then_cancel_terminates_the_pod_and_frees_the_slot(
    db_url: str, fake: FakeRunPod
) -> None:
    fake.inject(ghost_create=1)
    (run_id,) = queue(db_url)
    _die_in_create_retry(db_url, run_id, env={"STUB_SECONDS": "60"})
    (waiting,) = queue(db_url)
    restarted = reconciler(db_url, concurrency=1)
    assert restarted.tick().claimed == []  # the adopted run holds the only slot
    update_run(db_url, run_id, cancel_requested=True)
    report = restarted.tick()
    run = _runs(db_url)[run_id]
    assert run.state == RunState.CANCELLED and run.reserved == 0 and report.claimed == [waiting]
    assert fake.pods()[0].terminated and run.cost == pytest.approx(fake.pods()[0].cost, abs=PRICE / 3600 * 1.5)


def test_runpod_pod_gone_before_the_restart_ends_the_run_with_a_clear_error(db_url: str, fake: FakeRunPod) -> None:
    fake.inject(ghost_create=1)
    (run_id,) = queue(db_url)
    update_run(db_url, run_id, max_attempts=1)
    _die_in_create_retry(db_url, run_id)
    (pod,) = fake.pods()
    other = reconciler(db_url)
    other.backend.terminate(Handle("runpod", pod.id))  # e.g. by hand in RunPod's console
    run = settle(db_url, reconciler(db_url), fake, run_id)
    assert run.state == RunState.FAILED and run.reserved == 0 and run.compute_id is None
    assert f"its compute (run{run_id}-a1) is gone" in (run.error or "")


def test_runpod_agent_reporting_running_before_the_create_returned_is_recorded(db_url: str, fake: FakeRunPod) -> None:
    fake.inject(ghost_create=1)
    (run_id,) = queue(db_url)
    worker = reconciler(db_url)
    worker.backend.sleep = lambda _: _until(  # type: ignore[attr-defined]
        lambda: _runs(db_url)[run_id].state == RunState.RUNNING
    )  # a slow create: the pod booted and its agent reported before the worker heard back
    worker.tick()
    (pod,) = fake.pods()
    assert _runs(db_url)[run_id].compute_id == pod.id and not fake.pod(pod.id).terminated
    run = settle(db_url, worker, fake, run_id)
    assert run.state == RunState.SUCCEEDED and run.reserved == 0 and len(fake.pods()) == 1
